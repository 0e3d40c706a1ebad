//! What an audit record says was done and how it went, typed here and spelled once: the
//! spellings are what `standby audit` and `GET /extensions/audit` show and what the table keeps.

/// A write the audit trail names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AuditAction {
    Login,
    PlanPatch,
    PlanStart,
    PlanUndo,
    ActionCancel,
    ActionForget,
    SimFault,
    UserAdd,
    UserPassword,
    UserDisable,
    UserEnable,
    UserRemove,
    ApiKeyAdd,
    ServerAdd,
    ServerReenroll,
    ServerRemove,
    /// An agent traded an enrollment token for its credential (or tried to).
    AgentEnroll,
    /// A plan's RTO and RPO targets were set.
    PlanTargets,
    /// An operator note was added to a run's report.
    SessionNote,
    DrillCreate,
    DrillPause,
    DrillResume,
    DrillRun,
    DrillDelete,
    WebhookCreate,
    WebhookDelete,
    /// Any other write through the API (an unknown route, say), as `METHOD path`.
    Request(String),
}

impl AuditAction {
    /// Every action with a name of its own.
    pub const NAMED: &'static [AuditAction] = &[
        AuditAction::Login,
        AuditAction::PlanPatch,
        AuditAction::PlanStart,
        AuditAction::PlanUndo,
        AuditAction::ActionCancel,
        AuditAction::ActionForget,
        AuditAction::SimFault,
        AuditAction::UserAdd,
        AuditAction::UserPassword,
        AuditAction::UserDisable,
        AuditAction::UserEnable,
        AuditAction::UserRemove,
        AuditAction::ApiKeyAdd,
        AuditAction::ServerAdd,
        AuditAction::ServerReenroll,
        AuditAction::ServerRemove,
        AuditAction::AgentEnroll,
        AuditAction::PlanTargets,
        AuditAction::SessionNote,
        AuditAction::DrillCreate,
        AuditAction::DrillPause,
        AuditAction::DrillResume,
        AuditAction::DrillRun,
        AuditAction::DrillDelete,
        AuditAction::WebhookCreate,
        AuditAction::WebhookDelete,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            AuditAction::Login => "login",
            AuditAction::PlanPatch => "plan.patch",
            AuditAction::PlanStart => "plan.start",
            AuditAction::PlanUndo => "plan.undo",
            AuditAction::ActionCancel => "action.cancel",
            AuditAction::ActionForget => "action.forget",
            AuditAction::SimFault => "sim.fault",
            AuditAction::UserAdd => "user.add",
            AuditAction::UserPassword => "user.passwd",
            AuditAction::UserDisable => "user.disable",
            AuditAction::UserEnable => "user.enable",
            AuditAction::UserRemove => "user.remove",
            AuditAction::ApiKeyAdd => "apikey.add",
            AuditAction::ServerAdd => "server.add",
            AuditAction::ServerReenroll => "server.reenroll",
            AuditAction::ServerRemove => "server.remove",
            AuditAction::AgentEnroll => "agent.enroll",
            AuditAction::PlanTargets => "plan.targets",
            AuditAction::SessionNote => "session.note",
            AuditAction::DrillCreate => "drill.create",
            AuditAction::DrillPause => "drill.pause",
            AuditAction::DrillResume => "drill.resume",
            AuditAction::DrillRun => "drill.run",
            AuditAction::DrillDelete => "drill.delete",
            AuditAction::WebhookCreate => "webhook.create",
            AuditAction::WebhookDelete => "webhook.delete",
            AuditAction::Request(request) => request,
        }
    }

    /// Reads a stored spelling back; anything not named is a request.
    pub fn parse(text: &str) -> AuditAction {
        AuditAction::NAMED
            .iter()
            .find(|action| action.as_str() == text)
            .cloned()
            .unwrap_or_else(|| AuditAction::Request(text.to_owned()))
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an audited write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditOutcome {
    Success,
    /// Refused with a 4xx.
    Refused,
    /// A server error.
    Failed,
}

impl AuditOutcome {
    pub const ALL: &'static [AuditOutcome] = &[
        AuditOutcome::Success,
        AuditOutcome::Refused,
        AuditOutcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Refused => "refused",
            AuditOutcome::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<AuditOutcome> {
        AuditOutcome::ALL
            .iter()
            .copied()
            .find(|outcome| outcome.as_str() == text)
    }

    /// The outcome an HTTP status stands for.
    pub fn of_status(status: u16) -> AuditOutcome {
        match status {
            200..=299 => AuditOutcome::Success,
            400..=499 => AuditOutcome::Refused,
            _ => AuditOutcome::Failed,
        }
    }
}

impl std::fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for action in AuditAction::NAMED {
            assert_eq!(&AuditAction::parse(action.as_str()), action);
        }
        assert_eq!(
            AuditAction::parse("POST /api/v3/nope"),
            AuditAction::Request("POST /api/v3/nope".into())
        );
        for outcome in AuditOutcome::ALL {
            assert_eq!(AuditOutcome::parse(outcome.as_str()), Some(*outcome));
        }
        assert_eq!(AuditOutcome::of_status(201), AuditOutcome::Success);
        assert_eq!(AuditOutcome::of_status(404), AuditOutcome::Refused);
        assert_eq!(AuditOutcome::of_status(520), AuditOutcome::Failed);
    }
}

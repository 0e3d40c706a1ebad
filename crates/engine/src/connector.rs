//! The connector contract: how the engine drives one backup server's hypervisor, whatever it is
//! (the in-process `sim`, a `standby agent` on a DR host, a later driver).
//!
//! - Every operation has an [`OperationId`] built in one place from its session and VM (or
//!   script). `submit` is idempotent per id: a connector may receive the same id twice and must
//!   act once. The engine still never relies on that: before it submits again (a resume after a
//!   crash, a retry after an unanswered call) it asks `status`, and submits only on `Unknown`.
//! - Errors say what the engine should do ([`ConnectorError`]): retry with backoff until the
//!   step's deadline, or fail the VM (the session goes on).
//! - Work runs on the host, not in the call: `submit` returns at once, `wait` answers when the
//!   operation ends or its timeout passes (a long poll), `cancel` asks it to stop.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

/// The id a connector deduplicates by: `{session}/{vm}` for a VM's step, `{session}/pre` and
/// `{session}/post` for the plan's scripts. A step's id is the same in every attempt of the
/// session, which is what lets a resumed session find what its previous attempt started.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperationId(String);

impl OperationId {
    pub fn vm_step(session: Uuid, vm: Uuid) -> OperationId {
        OperationId(format!("{session}/{vm}"))
    }

    pub fn script(session: Uuid, when: ScriptWhen) -> OperationId {
        OperationId(format!("{session}/{}", when.as_str()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The session the operation belongs to.
    pub fn session(&self) -> Option<Uuid> {
        let (session, _) = self.0.split_once('/')?;
        Uuid::parse_str(session).ok()
    }

    /// Which script, for a script's operation.
    pub fn script_when(&self) -> Option<ScriptWhen> {
        match self.0.rsplit_once('/')?.1 {
            "pre" => Some(ScriptWhen::PreFailover),
            "post" => Some(ScriptWhen::PostFailover),
            _ => None,
        }
    }
}

impl fmt::Display for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which of the plan's two scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptWhen {
    PreFailover,
    PostFailover,
}

impl ScriptWhen {
    pub fn as_str(self) -> &'static str {
        match self {
            ScriptWhen::PreFailover => "pre",
            ScriptWhen::PostFailover => "post",
        }
    }
}

/// What to do on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Power on the VM's replica from a restore point (in an isolated network if `test`).
    FailOver {
        vm: Uuid,
        restore_point: Uuid,
        test: bool,
    },
    /// Power the replica off and discard its changes: the VM is back in production.
    Undo { vm: Uuid },
    /// Run a pre- or post-failover script on the backup server.
    Script { command: String },
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::FailOver { .. } => "failover",
            Action::Undo { .. } => "undo",
            Action::Script { .. } => "script",
        }
    }
}

/// One operation as the engine submits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub id: OperationId,
    /// The backup server whose host does the work.
    pub server: Uuid,
    pub action: Action,
    /// The server's settings for its connector (`backup_servers.connector_settings`).
    pub settings: std::sync::Arc<standby_fleet::ConnectorSettings>,
}

/// What a connector knows of an operation id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationStatus {
    /// Never submitted (or forgotten by the host): submitting it is safe.
    Unknown,
    Running,
    Succeeded {
        detail: String,
    },
    Failed {
        reason: String,
    },
    /// Stopped by `cancel` before it finished.
    Cancelled {
        reason: String,
    },
}

impl OperationStatus {
    pub fn is_finished(&self) -> bool {
        !matches!(self, OperationStatus::Unknown | OperationStatus::Running)
    }
}

/// A VM replica's state on its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// Off: the VM runs in production.
    Off,
    /// Failed over, or booted for a test.
    Running { test: bool },
}

/// A host's health, for `probe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub online: bool,
    pub detail: String,
}

/// A connector call that did not get an answer about the operation. Each variant says what the
/// engine does next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// The host cannot be reached or is busy: retry (after `retry_after` at least), asking
    /// `status` first, until the step's deadline.
    #[error("the host is unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Duration,
    },
    /// The call got no answer in time; whether it acted is unknown: treated as `Unavailable`,
    /// so the next try asks `status` before anything else.
    #[error("the host did not answer in time: {0}")]
    Timeout(String),
    /// The host refused the operation (a bad restore point, no such VM): the VM fails, the
    /// session goes on.
    #[error("the host refused the operation: {0}")]
    Rejected(String),
    /// The host answered something the connector cannot understand: the VM fails.
    #[error("the host's answer could not be understood: {0}")]
    Protocol(String),
}

impl ConnectorError {
    /// Worth another try (after the delay), or final for this step.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ConnectorError::Unavailable { retry_after, .. } => Some(*retry_after),
            ConnectorError::Timeout(_) => Some(Duration::ZERO),
            ConnectorError::Rejected(_) | ConnectorError::Protocol(_) => None,
        }
    }
}

#[async_trait]
pub trait Connector: Send + Sync {
    /// Whether the server's host answers.
    async fn probe(&self, server: Uuid) -> Result<Health, ConnectorError>;
    /// Starts an operation; idempotent per id (a known id is not started again). Answers the
    /// operation's status right after: usually `Running`, or already finished.
    async fn submit(&self, operation: &Operation) -> Result<OperationStatus, ConnectorError>;
    async fn status(
        &self,
        server: Uuid,
        id: &OperationId,
    ) -> Result<OperationStatus, ConnectorError>;
    /// Waits up to `timeout` for the operation to finish; answers its status then (`Running`
    /// if it has not finished).
    async fn wait(
        &self,
        server: Uuid,
        id: &OperationId,
        timeout: Duration,
    ) -> Result<OperationStatus, ConnectorError>;
    /// Asks a running operation to stop; answers its status after the request.
    async fn cancel(
        &self,
        server: Uuid,
        id: &OperationId,
    ) -> Result<OperationStatus, ConnectorError>;
    /// The VM's replica right now (a retried start skips VMs already failed over; undo reverts
    /// only replicas that run).
    async fn replica(&self, server: Uuid, vm: Uuid) -> Result<ReplicaState, ConnectorError>;
}

/// The connectors the binary built, by the kind a backup server names in the store
/// (`backup_servers.connector`). The engine looks a session's connector up here.
#[derive(Clone, Default)]
pub struct Registry {
    connectors: std::collections::BTreeMap<String, std::sync::Arc<dyn Connector>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    pub fn with(mut self, kind: &str, connector: std::sync::Arc<dyn Connector>) -> Registry {
        self.connectors.insert(kind.to_owned(), connector);
        self
    }

    pub fn get(&self, kind: &str) -> Option<std::sync::Arc<dyn Connector>> {
        self.connectors.get(kind).cloned()
    }

    pub fn kinds(&self) -> Vec<&str> {
        self.connectors.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_stable_and_distinct() {
        let session = Uuid::from_u128(1);
        let vm = Uuid::from_u128(2);
        assert_eq!(
            OperationId::vm_step(session, vm),
            OperationId::vm_step(session, vm)
        );
        assert_eq!(
            OperationId::vm_step(session, vm).as_str(),
            format!("{session}/{vm}")
        );
        let pre = OperationId::script(session, ScriptWhen::PreFailover);
        let post = OperationId::script(session, ScriptWhen::PostFailover);
        assert_ne!(pre, post);
        assert!(pre.as_str().ends_with("/pre") && post.as_str().ends_with("/post"));
        assert_eq!(pre.session(), Some(session));
        assert_eq!(OperationId::vm_step(session, vm).session(), Some(session));
        assert_eq!(pre.script_when(), Some(ScriptWhen::PreFailover));
        assert_eq!(post.script_when(), Some(ScriptWhen::PostFailover));
        assert_eq!(OperationId::vm_step(session, vm).script_when(), None);
    }

    #[test]
    fn errors_say_whether_to_retry() {
        let unavailable = ConnectorError::Unavailable {
            reason: "offline".into(),
            retry_after: Duration::from_secs(2),
        };
        assert_eq!(unavailable.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(
            ConnectorError::Timeout("x".into()).retry_after(),
            Some(Duration::ZERO)
        );
        assert_eq!(ConnectorError::Rejected("x".into()).retry_after(), None);
        assert_eq!(ConnectorError::Protocol("x".into()).retry_after(), None);
    }
}

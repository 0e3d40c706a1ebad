//! What a `standby agent` and the control plane say to each other over HTTP(S): the agent's
//! inventory, the commands it is given and the results it reports. Both sides use these types,
//! so the wire cannot drift between them. JSON, camelCase, like the rest of the API.
//!
//! The routes (all under `/api/v3/extensions/agent`, the agent's own credential as a bearer
//! token except for `enroll`):
//! - `POST enroll` [`EnrollRequest`] → [`Enrolled`]: a one-time token becomes a credential.
//! - `PUT inventory` [`Inventory`] → [`InventoryApplied`]: the plans, VMs and restore points.
//! - `POST heartbeat` [`Heartbeat`] → [`HeartbeatAck`]: the server is online; its replicas.
//! - `GET commands?waitSeconds=N&all=BOOL` → `[Command]`: a long poll. Answers as soon as a
//!   command is waiting (or after N seconds with none). Commands never delivered, or with
//!   `all=true` (the agent's first poll after a start) every one without a final result.
//! - `POST results` [`Results`]: what happened; a final result is kept once, a repeat ignored.
//!
//! Every answer is the usual envelope `{"data": ...}`.

use serde::{Deserialize, Serialize};
use standby_model::Timestamp;
use uuid::Uuid;

use crate::records::derived_uid;

/// The prefix of every agent credential (`sba_` + 43 base64url characters).
pub const CREDENTIAL_PREFIX: &str = "sba_";
/// The prefix of every enrollment token.
pub const ENROLLMENT_PREFIX: &str = "sbe_";

/// A plan's UID on an agent's server: derived from the server and the plan's name, so every push
/// of the same manifest names the same plan.
pub fn agent_plan_uid(server: Uuid, plan: &str) -> Uuid {
    derived_uid("agent-plan", &format!("{server}/{plan}"))
}

/// A VM's UID on an agent's server (a VM's name is unique within its plan).
pub fn agent_vm_uid(server: Uuid, plan: &str, vm: &str) -> Uuid {
    derived_uid("agent-vm", &format!("{server}/{plan}/{vm}"))
}

/// A restore point's UID: its VM and its creation time.
pub fn agent_point_uid(vm: Uuid, created_at: Timestamp) -> Uuid {
    derived_uid("agent-point", &format!("{vm}/{}", created_at.ticks()))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnrollRequest {
    pub token: String,
    pub agent_version: String,
    /// The host's name, for the operator's list.
    #[serde(default)]
    pub host_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Enrolled {
    pub backup_server_uid: Uuid,
    pub backup_server_name: String,
    /// Shown once: the control plane keeps only its SHA-256.
    pub credential: String,
}

/// The plans configured on the host, as its manifest declares them, with the restore points
/// its driver found. Upserted for the server; restore points not listed are removed, and so are
/// VMs and plans not listed that no session ever ran on (the others are kept, with their
/// history: [`InventoryApplied::plans_kept`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Inventory {
    pub agent_version: String,
    /// `sim` or `qemu`.
    pub driver: String,
    pub plans: Vec<InventoryPlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InventoryPlan {
    pub name: String,
    /// `Local`, `Cloud` or `Tenant` (VSPC's `BackupFailoverPlanType`).
    #[serde(rename = "type")]
    pub plan_type: String,
    /// The tenant a `Tenant` plan serves, by name; created under the server's company if new.
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub pre_failover_command: String,
    #[serde(default)]
    pub post_failover_command: String,
    /// The manifest's RTO and RPO targets, if it declares any (omitted otherwise, so that an
    /// agent without targets speaks to an older control plane unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_target_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_target_seconds: Option<u32>,
    /// In boot order.
    pub vms: Vec<InventoryVm>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InventoryVm {
    pub name: String,
    #[serde(default)]
    pub host_name: String,
    #[serde(default)]
    pub folder_name: String,
    #[serde(default)]
    pub path: String,
    /// Seconds to wait after this VM starts before the next one boots.
    #[serde(default)]
    pub boot_delay_seconds: u32,
    /// The restore points the driver found, any order.
    pub restore_points: Vec<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryApplied {
    pub plans: u64,
    pub vms: u64,
    pub restore_points_added: u64,
    /// Plans the host no longer reports, removed now (no session ever ran on them).
    pub plans_removed: Vec<String>,
    /// Plans the host no longer reports that are kept: a session ran on them (their history
    /// stays) or runs now.
    pub plans_kept: Vec<String>,
}

/// A VM replica's state as the agent knows it. `version` grows with every change the agent
/// makes, so a late heartbeat cannot overwrite a newer result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaReport {
    pub vm_uid: Uuid,
    pub running: bool,
    pub test: bool,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Heartbeat {
    pub agent_version: String,
    /// Every replica the agent has touched (the others are off).
    #[serde(default)]
    pub replicas: Vec<ReplicaReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatAck {
    pub server_time: Timestamp,
}

/// What a command asks the host to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum CommandAction {
    /// Power the VM's replica on from the restore point (isolated if `test`).
    #[serde(rename = "failover", rename_all = "camelCase")]
    FailOver {
        vm_uid: Uuid,
        restore_point_uid: Uuid,
        test: bool,
    },
    /// Power the replica off and discard its changes.
    #[serde(rename = "undo", rename_all = "camelCase")]
    Undo { vm_uid: Uuid },
    /// Run a plan's pre- or post-failover command with `sh -c`.
    #[serde(rename = "script", rename_all = "camelCase")]
    Script {
        command: String,
        /// `pre` or `post`.
        when: String,
        test: bool,
    },
    /// Stop the operation `target` if it still runs; a command of its own.
    #[serde(rename = "cancel", rename_all = "camelCase")]
    Cancel { target: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Command {
    /// The engine's operation id (`{session}/{vm}`, `{session}/pre|post`), or
    /// `{target}#cancel` for a cancel. The agent executes each id at most once.
    pub operation_id: String,
    pub plan_uid: Uuid,
    pub plan_name: String,
    pub session_uid: Uuid,
    /// The VM's name in the manifest (for failover and undo).
    #[serde(default)]
    pub vm_name: Option<String>,
    /// The restore point's creation time (for failover): what the driver boots from.
    #[serde(default)]
    pub restore_point_time: Option<Timestamp>,
    #[serde(flatten)]
    pub action: CommandAction,
}

/// An operation's state as the agent reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        [
            Outcome::Running,
            Outcome::Succeeded,
            Outcome::Failed,
            Outcome::Cancelled,
        ]
        .into_iter()
        .find(|outcome| outcome.as_str() == text)
    }

    pub fn is_final(self) -> bool {
        self != Outcome::Running
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperationResult {
    pub operation_id: String,
    pub outcome: Outcome,
    /// What happened, for the session log (a script's output tail, a boot's detail, a reason).
    #[serde(default)]
    pub detail: String,
    /// The replica the operation changed, after it.
    #[serde(default)]
    pub replica: Option<ReplicaReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Results {
    pub results: Vec<OperationResult>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_back_as_written() {
        let command = Command {
            operation_id: "s/v".into(),
            plan_uid: Uuid::from_u128(1),
            plan_name: "Payroll".into(),
            session_uid: Uuid::from_u128(2),
            vm_name: Some("db".into()),
            restore_point_time: Some(Timestamp::from_ticks(0)),
            action: CommandAction::FailOver {
                vm_uid: Uuid::from_u128(3),
                restore_point_uid: Uuid::from_u128(4),
                test: true,
            },
        };
        let text = serde_json::to_string(&command).unwrap_or_default();
        assert!(text.contains(r#""action":"failover""#), "{text}");
        assert!(text.contains(r#""restorePointUid""#), "{text}");
        let back: Command = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(back, command);
    }

    #[test]
    fn derived_uids_depend_on_every_part() {
        let server = Uuid::from_u128(9);
        assert_eq!(agent_plan_uid(server, "a"), agent_plan_uid(server, "a"));
        assert_ne!(
            agent_plan_uid(server, "a"),
            agent_plan_uid(Uuid::nil(), "a")
        );
        assert_ne!(
            agent_vm_uid(server, "a", "b"),
            agent_vm_uid(server, "ab", "")
        );
    }
}

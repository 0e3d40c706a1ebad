//! What the engine reads and writes through the store: sessions being started and run, the job
//! queue and its fencing, async actions.

use std::collections::BTreeMap;

use standby_model::{ActionStatus, BackupStatus, PlanStatus, SessionKind, Timestamp};
use uuid::Uuid;

/// A start or undo, accepted: created with its session, async action and job in one transaction.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub uid: Uuid,
    pub plan_uid: Uuid,
    pub kind: SessionKind,
    pub requested_point: Option<Timestamp>,
    pub started_by: String,
    pub action: NewAsyncAction,
    /// The `X-Request-id` this start or undo was sent under and the answer to keep for it,
    /// written in the session's transaction: a retry after a crash between the two replays.
    pub idempotent_answer: Option<(Uuid, crate::StoredResponse)>,
}

#[derive(Debug, Clone)]
pub struct NewAsyncAction {
    pub uid: Uuid,
    pub initiator_uid: Uuid,
    /// The operationId that created it (`StartBackupFailoverPlan`, `UndoBackupFailoverPlan`).
    pub action_name: String,
    pub query_parameters: BTreeMap<String, Vec<String>>,
    /// The body the synchronous call answered, served by `/asyncActions/{id}/result`.
    pub result: String,
}

/// A claimed job: a worker holds it until `lease_until` unless it extends the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub uid: Uuid,
    pub session_uid: Uuid,
    /// How many times a worker has claimed it (more than one: a resume after a crash or an
    /// error). A graceful shutdown hands the job back without counting its attempt.
    pub attempts: i64,
    /// Raised by every claim: what this worker's writes name (see [`Fence`]).
    pub epoch: i64,
    /// Why the previous attempt ended, if it ended in an error.
    pub last_error: Option<String>,
}

impl Job {
    pub fn fence(&self) -> Fence {
        Fence {
            job: self.uid,
            epoch: self.epoch,
        }
    }
}

/// The claim an engine write is made under. The store refuses the write with
/// `StoreError::Fenced` unless the job is still running at this epoch, so a worker that lost
/// its job (its lease ran out while it was paused or cut off, and another worker claimed it)
/// cannot change the session any more. The check and the write are one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    pub job: Uuid,
    pub epoch: i64,
}

/// What a lease renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseRenewal {
    /// Still held, renewed; `cancel_requested`: the user asked the session to stop.
    Held { cancel_requested: bool },
    /// Another worker holds the job now, or it was requeued or finished.
    Lost,
}

/// The job queue at a glance, across every node sharing the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Waiting for a worker (new, or put back after a lease ran out).
    pub queued: u64,
    /// Leased by a worker now.
    pub running: u64,
}

/// Everything a worker needs to run (or resume) one session.
#[derive(Debug, Clone)]
pub struct SessionWork {
    pub session_uid: Uuid,
    pub plan_uid: Uuid,
    pub kind: SessionKind,
    pub requested_point: Option<Timestamp>,
    pub start_time: Timestamp,
    pub cancel_requested: bool,
    pub backup_server_uid: Uuid,
    pub connector: String,
    /// The server's settings for its connector.
    pub connector_settings: standby_fleet::ConnectorSettings,
    pub pre_failover_command: String,
    pub post_failover_command: String,
    /// In boot order.
    pub vms: Vec<VmWork>,
    /// Titles of the session's log lines so far (a resumed session does not repeat a step).
    pub message_titles: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct VmWork {
    pub object_uid: Uuid,
    pub name: String,
    pub boot_delay_seconds: u32,
    /// This VM's step in this session, if it was started.
    pub step: Option<VmStep>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmStep {
    pub uid: Uuid,
    pub status: BackupStatus,
    pub restore_point_uid: Option<Uuid>,
    pub restore_point_time: Option<Timestamp>,
    pub start_time: Timestamp,
}

/// A session's end as the engine decided it.
#[derive(Debug, Clone)]
pub struct SessionEnd {
    pub plan_status: PlanStatus,
    pub session_status: standby_model::SessionStatus,
    pub message: Option<String>,
    pub action_status: ActionStatus,
    pub action_expires_at: Timestamp,
}

/// An async action as `/asyncActions` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncActionRecord {
    pub uid: Uuid,
    pub initiator_uid: Uuid,
    pub action_name: String,
    pub status: ActionStatus,
    pub request_body: Option<String>,
    pub query_parameters: BTreeMap<String, Vec<String>>,
    pub session_uid: Option<Uuid>,
    pub result: Option<String>,
}

/// One restore point of a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePointView {
    pub uid: Uuid,
    pub object_uid: Uuid,
    pub created_at: Timestamp,
}

/// A past (or running) session of a plan, with each VM's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionHistory {
    pub uid: Uuid,
    pub kind: SessionKind,
    pub status: standby_model::SessionStatus,
    pub message: Option<String>,
    pub started_by: String,
    pub requested_point: Option<Timestamp>,
    pub start_time: Timestamp,
    pub end_time: Option<Timestamp>,
    /// The plan's targets when the session started: its report judges it against these.
    pub targets: standby_model::RecoveryTargets,
    pub vms: Vec<VmHistory>,
}

/// An operator's note on a run, added afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionNote {
    /// 1, 2, ... within the session.
    pub seq: i64,
    pub author: String,
    pub written_at: Timestamp,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmHistory {
    pub object_uid: Uuid,
    pub name: String,
    pub backup_status: BackupStatus,
    pub restore_point_uid: Option<Uuid>,
    pub restore_point_time: Option<Timestamp>,
    pub start_time: Timestamp,
    pub end_time: Option<Timestamp>,
}

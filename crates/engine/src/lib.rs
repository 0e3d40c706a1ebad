//! The orchestration engine. Workers inside `standby serve` claim session jobs from the store's
//! queue and run them: restore point choice, boot order and delays, bounded parallel boots, undo
//! in batches, pre/post-failover scripts, cancellation, a deadline per VM step. Every step is
//! written to the store before the connector is asked, every operation has an id the connector
//! deduplicates by, and a resumed step asks the connector's `status` before it submits again, so
//! a session resumed after a crash finishes without running any step twice. Every write names
//! the epoch of the worker's claim: a worker that lost its job stops at its next write.

pub mod agent;
pub mod connector;
mod run;
pub mod sim;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use standby_store::{EngineStore, StoreError};

pub use connector::{
    Action, Connector, ConnectorError, Health, Operation, OperationId, OperationStatus, Registry,
    ReplicaState, ScriptWhen,
};
pub use worker::Engine;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("session {0} was not found")]
    SessionNotFound(uuid::Uuid),
    /// This worker no longer holds the session's job (its lease ran out and another worker
    /// claimed it, or its write was fenced off): it stops the session at once and writes nothing.
    #[error("session {0}: another worker holds its job now")]
    LostJob(uuid::Uuid),
    #[error("no connector named '{0}'")]
    UnknownConnector(String),
    /// The process is shutting down: the session stopped at a safe point (between VM steps)
    /// and its job goes back to the queue, to resume on the next start or on another node.
    #[error("the engine is stopping; session {0} resumes later")]
    Stopping(uuid::Uuid),
}

/// The orchestration rules (defaults match Veeam) and the worker pool's timing.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Sessions run at once by this process.
    pub workers: usize,
    /// VMs of one plan booting at the same time.
    pub max_parallel_boots: usize,
    /// VMs reverted together on undo, and the pause between batches.
    pub undo_batch_size: usize,
    pub undo_batch_interval: Duration,
    /// A worker's hold on a job; it renews it every `lease / 3`.
    pub lease: Duration,
    /// How often an idle worker looks for work (it is also woken at once by new sessions).
    pub poll_interval: Duration,
    /// A VM step that has not finished this long after it started fails that VM (the plan goes
    /// on); `Unavailable` answers are retried with backoff until then.
    pub vm_step_timeout: Duration,
    /// A session is attempted at most this many times (a crash, a lost lease or an error each
    /// end an attempt), then it ends Failed (or UndoFailed) with the reason.
    pub max_session_attempts: u32,
    /// The pause before the second attempt after an error; it doubles each attempt, up to a
    /// minute.
    pub retry_backoff: Duration,
    /// How long a finished async action stays readable.
    pub success_retention: Duration,
    pub failure_retention: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            workers: 16,
            max_parallel_boots: 10,
            undo_batch_size: 5,
            undo_batch_interval: Duration::from_secs(10),
            lease: Duration::from_secs(15),
            poll_interval: Duration::from_secs(1),
            vm_step_timeout: Duration::from_secs(900),
            max_session_attempts: 5,
            retry_backoff: Duration::from_secs(1),
            success_retention: Duration::from_secs(300),
            failure_retention: Duration::from_secs(3600),
        }
    }
}

/// What a running session needs: the job queue and session log, the connectors, the rules.
#[derive(Clone)]
pub struct EngineContext {
    pub store: Arc<dyn EngineStore>,
    pub connectors: Registry,
    pub settings: Arc<EngineSettings>,
    /// Cancelled when the process shuts down: no new job or VM step starts after it.
    pub stopping: tokio_util::sync::CancellationToken,
}

impl EngineContext {
    fn connector(&self, kind: &str) -> Result<Arc<dyn Connector>, EngineError> {
        self.connectors
            .get(kind)
            .ok_or_else(|| EngineError::UnknownConnector(kind.to_owned()))
    }
}

impl EngineError {
    /// The store refused a write because another worker holds the job.
    fn is_lost_job(&self) -> bool {
        matches!(
            self,
            EngineError::LostJob(_) | EngineError::Store(StoreError::Fenced { .. })
        )
    }
}

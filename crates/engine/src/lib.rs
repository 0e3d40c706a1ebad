//! The orchestration engine. Workers inside `standby serve` claim session jobs from the store's
//! queue and run them: restore point choice, boot order and delays, bounded parallel boots, undo
//! in batches, pre/post-failover scripts, cancellation. Every step is written to the store
//! before the connector is called and every connector call carries an operation id, so a
//! session resumed after a crash finishes without running any step twice.

pub mod connector;
mod run;
pub mod sim;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use standby_store::{Store, StoreError};

pub use connector::{Connector, ConnectorError, Outcome};
pub use worker::Engine;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    #[error("session {0} was not found")]
    SessionNotFound(uuid::Uuid),
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
            success_retention: Duration::from_secs(300),
            failure_retention: Duration::from_secs(3600),
        }
    }
}

/// What a running session needs: the store, the connectors, the rules.
#[derive(Clone)]
pub struct EngineContext {
    pub store: Arc<dyn Store>,
    pub sim: Arc<sim::SimConnector>,
    pub settings: Arc<EngineSettings>,
    /// Cancelled when the process shuts down: no new job or VM step starts after it.
    pub stopping: tokio_util::sync::CancellationToken,
}

impl EngineContext {
    fn connector(&self, name: &str) -> Result<Arc<dyn Connector>, EngineError> {
        match name {
            "sim" => Ok(self.sim.clone()),
            other => Err(EngineError::UnknownConnector(other.to_owned())),
        }
    }
}

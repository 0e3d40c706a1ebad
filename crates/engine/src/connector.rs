//! The connector: how the engine drives one backup server's hypervisor. Every call that changes
//! something carries an operation id; calling again with the same id returns the first call's
//! outcome and does nothing else, which is what makes resuming a session after a crash safe.

use async_trait::async_trait;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The connector's own state could not be read or written.
    #[error("connector state: {0}")]
    State(#[from] standby_store::StoreError),
}

#[async_trait]
pub trait Connector: Send + Sync {
    /// The VM's replica is failed over (or booted for a test) right now.
    async fn is_failed_over(&self, vm: Uuid) -> Result<bool, ConnectorError>;
    /// Powers on the VM's replica from a restore point (in an isolated network if `test`).
    async fn fail_over(
        &self,
        operation: &str,
        server: Uuid,
        vm: Uuid,
        point: Uuid,
        test: bool,
    ) -> Result<Outcome, ConnectorError>;
    /// Powers the replica off and discards its changes: the VM is back in production.
    async fn undo(
        &self,
        operation: &str,
        server: Uuid,
        vm: Uuid,
    ) -> Result<Outcome, ConnectorError>;
    /// Runs a pre- or post-failover script on the backup server.
    async fn run_script(
        &self,
        operation: &str,
        server: Uuid,
        command: &str,
    ) -> Result<Outcome, ConnectorError>;
}

//! The `sim` connector's own state: which replicas its simulated hypervisors have failed over,
//! the faults injected into them, and a ledger of every operation submitted to them. It is kept
//! in the same database as the plans (so it survives a crash like a real hypervisor would and
//! every node sees it), but it is not part of the [`Store`](crate::Store): only the sim and the
//! read-only `/extensions/sim/operations` route use it, through [`SimLedger`].

use async_trait::async_trait;
use standby_fleet::SimFault;
use standby_model::Timestamp;
use uuid::Uuid;

use crate::{Page, StoreError};

/// What a successful sim operation does to a VM's replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaChange {
    /// The replica runs from a restore point: failed over, or booted for a test.
    Running { vm: Uuid, test: bool, point: Uuid },
    /// The replica is off again; the VM is back in production.
    Reverted { vm: Uuid },
}

/// How a sim operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimOutcome {
    Succeeded,
    Failed,
    Cancelled,
}

impl SimOutcome {
    pub const ALL: [SimOutcome; 3] = [
        SimOutcome::Succeeded,
        SimOutcome::Failed,
        SimOutcome::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SimOutcome::Succeeded => "ok",
            SimOutcome::Failed => "failed",
            SimOutcome::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<SimOutcome> {
        SimOutcome::ALL.into_iter().find(|o| o.as_str() == text)
    }
}

/// One operation id in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimOperationRecord {
    pub operation_id: String,
    pub object_uid: Option<Uuid>,
    /// `failover`, `undo` or `script`.
    pub kind: String,
    /// How many times the operation was submitted. The sim acts once per id whatever this says
    /// (the contract lets a connector deduplicate); the engine must never rely on that, and the
    /// exactly-once tests require 1.
    pub executions: i64,
    /// What the sim planned when the operation was first submitted (its own JSON).
    pub plan: Option<String>,
    pub outcome: Option<SimOutcome>,
    pub message: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

#[async_trait]
pub trait SimLedger: Send + Sync + 'static {
    /// Records a submission: a new operation id is inserted with `executions = 1` and `plan`; a
    /// known one has its `executions` raised (its plan is kept). Returns the row as it is now.
    async fn submit(
        &self,
        operation: &str,
        object: Option<Uuid>,
        kind: &str,
        plan: &str,
        now: Timestamp,
    ) -> Result<SimOperationRecord, StoreError>;
    async fn operation(&self, operation: &str) -> Result<Option<SimOperationRecord>, StoreError>;
    /// Ends an unfinished operation and applies its change to a replica, in one transaction.
    /// `false`: it had already ended (another node finished it, or it was cancelled), and
    /// nothing changed.
    async fn complete(
        &self,
        operation: &str,
        outcome: SimOutcome,
        message: &str,
        change: Option<ReplicaChange>,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// `failover` or `test` while the VM's replica runs; `None` when it is off.
    async fn replica_state(&self, object: Uuid) -> Result<Option<String>, StoreError>;
    async fn faults(&self, target: Uuid) -> Result<Vec<SimFault>, StoreError>;
    async fn set_fault(&self, target: Uuid, fault: SimFault, on: bool) -> Result<(), StoreError>;
    /// The ledger, oldest submission first.
    async fn operations(
        &self,
        limit: u32,
        offset: u32,
    ) -> Result<Page<SimOperationRecord>, StoreError>;
}

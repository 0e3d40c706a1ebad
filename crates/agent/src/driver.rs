//! What the agent asks of the software that runs the replicas on this host: the restore points
//! it has, failover, undo, and carrying on with an operation the agent was stopped in the middle
//! of. `sim` simulates it; `qemu` boots real guests.

use std::future::Future;

use standby_fleet::agent::{CommandAction, Outcome};
use standby_model::Timestamp;
use tokio::sync::watch;
use uuid::Uuid;

use crate::manifest::{Plan, Vm};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DriverError(pub String);

/// A VM of the manifest, with its UID on the control plane.
#[derive(Debug, Clone, Copy)]
pub struct VmTarget<'a> {
    pub plan: &'a Plan,
    pub vm: &'a Vm,
    pub uid: Uuid,
}

/// An operation the driver carries out.
#[derive(Debug, Clone, Copy)]
pub struct Operation<'a> {
    pub id: &'a str,
    /// When its work started (the ledger's `started_at`): a resumed operation started earlier.
    pub started_at: Timestamp,
    pub target: VmTarget<'a>,
}

/// What the operation did to the VM's replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaEffect {
    /// Not an operation on a replica (a script, a refused command).
    None,
    /// The replica is as it was.
    Unchanged,
    /// The replica is now in this state.
    Set { running: bool, test: bool },
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub outcome: Outcome,
    pub detail: String,
    pub replica: ReplicaEffect,
}

impl Finished {
    pub fn succeeded(detail: impl Into<String>, replica: ReplicaEffect) -> Finished {
        Finished {
            outcome: Outcome::Succeeded,
            detail: detail.into(),
            replica,
        }
    }

    pub fn failed(detail: impl Into<String>, replica: ReplicaEffect) -> Finished {
        Finished {
            outcome: Outcome::Failed,
            detail: detail.into(),
            replica,
        }
    }

    pub fn cancelled(detail: impl Into<String>, replica: ReplicaEffect) -> Finished {
        Finished {
            outcome: Outcome::Cancelled,
            detail: detail.into(),
            replica,
        }
    }
}

/// Asks a running operation to stop.
#[derive(Debug)]
pub struct CancelHandle(watch::Sender<bool>);

/// What a running operation watches to learn it should stop.
#[derive(Debug, Clone)]
pub struct Cancel(watch::Receiver<bool>);

impl CancelHandle {
    pub fn new() -> (CancelHandle, Cancel) {
        let (sender, receiver) = watch::channel(false);
        (CancelHandle(sender), Cancel(receiver))
    }

    pub fn cancel(&self) {
        self.0.send_replace(true);
    }
}

impl Cancel {
    /// A token nothing cancels.
    pub fn never() -> Cancel {
        let (_, cancel) = CancelHandle::new();
        cancel
    }

    /// Resolves once the operation is cancelled (never if its handle is dropped uncancelled).
    pub async fn cancelled(&self) {
        let mut receiver = self.0.clone();
        if receiver.wait_for(|cancelled| *cancelled).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }
}

/// The software that runs this host's replicas. Every call ends in a [`Finished`]; what goes
/// wrong is a `Failed` outcome with a detail for the session log, not an error.
pub trait Driver: Send + Sync + 'static {
    /// `sim` or `qemu`, as the inventory names it.
    fn name(&self) -> &'static str;

    /// The restore points the driver has for the VM now.
    fn restore_points(
        &self,
        vm: &Vm,
    ) -> impl Future<Output = Result<Vec<Timestamp>, DriverError>> + Send;

    /// Powers the VM's replica on from the restore point created at `restore_point`
    /// (isolated when `test`).
    fn fail_over(
        &self,
        operation: Operation<'_>,
        restore_point: Timestamp,
        test: bool,
        cancel: Cancel,
    ) -> impl Future<Output = Finished> + Send;

    /// Powers the replica off and discards its changes.
    fn undo(
        &self,
        operation: Operation<'_>,
        cancel: Cancel,
    ) -> impl Future<Output = Finished> + Send;

    /// Carries on with a failover or undo that was running when the agent stopped, without
    /// starting its work again (`restore_point`: the failover's, as the command names it); a
    /// driver that cannot tell how far it got fails it.
    fn resume(
        &self,
        operation: Operation<'_>,
        action: &CommandAction,
        restore_point: Option<Timestamp>,
        cancel: Cancel,
    ) -> impl Future<Output = Finished> + Send;

    /// After a restart, before anything resumes: reports what the driver finds on the host that
    /// no operation accounts for (`unfinished`: operations to resume; `running`: those whose
    /// replica is up), and replicas that should run and do not. Reports only: an unknown guest
    /// may hold a replica's only copy of its changes.
    fn sweep(&self, unfinished: &[String], running: &[String]) -> impl Future<Output = ()> + Send {
        let _ = (unfinished, running);
        async {}
    }
}

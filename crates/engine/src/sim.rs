//! `sim`: a simulated hypervisor per backup server, with settable timings and injected faults,
//! behind the same contract as a real host.
//!
//! Its state lives in the database through [`SimLedger`], apart from the plan store: which
//! replicas run, the faults, and a ledger row per operation id with what the sim planned for it
//! and how many times it was submitted. Work runs in a task of the process that was asked; if
//! that process dies (or is paused) another one that asks about the operation adopts it and
//! finishes it as planned, so the hypervisor "keeps working" across crashes and nodes. Faults,
//! by VM or server UID: `boot-fails`, `slow` (ten times the boot time), `script-fails` (on a
//! server), `offline` (a server that answers nothing: every call is `Unavailable`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use standby_fleet::{SimFault, SimServerSettings};
use standby_model::Timestamp;
use standby_store::{ReplicaChange, SimLedger, SimOperationRecord, SimOutcome, StoreError};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::connector::{
    Action, Connector, ConnectorError, Health, Operation, OperationId, OperationStatus,
    ReplicaState,
};

#[derive(Debug, Clone)]
pub struct SimSettings {
    /// A VM's boot takes between these many milliseconds (chosen per operation, repeatably).
    pub boot_ms: (u64, u64),
    pub undo_ms: u64,
    pub script_ms: u64,
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            boot_ms: (2000, 6000),
            undo_ms: 1000,
            script_ms: 500,
        }
    }
}

/// How long an offline server tells the engine to wait before asking again.
const OFFLINE_RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct SimConnector {
    ledger: Arc<dyn SimLedger>,
    settings: SimSettings,
    /// Operations this process is carrying out, each with the signal its waiters listen to.
    running: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

/// A stable spread of durations: the same operation always takes as long.
fn spread(operation: &str, (low, high): (u64, u64)) -> u64 {
    let hash = operation.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    if high <= low {
        low
    } else {
        low + hash % (high - low + 1)
    }
}

/// What the sim decided an operation does, kept in the ledger at its first submission.
#[derive(Debug, Clone, PartialEq)]
struct Plan {
    ok: bool,
    message: String,
    duration_ms: u64,
    change: Option<ReplicaChange>,
}

impl Plan {
    fn to_json(&self) -> String {
        let change = match self.change {
            None => serde_json::Value::Null,
            Some(ReplicaChange::Running { vm, test, point }) => {
                serde_json::json!({ "running": { "vm": vm, "test": test, "point": point } })
            }
            Some(ReplicaChange::Reverted { vm }) => serde_json::json!({ "reverted": { "vm": vm } }),
        };
        serde_json::json!({
            "ok": self.ok,
            "message": self.message,
            "durationMs": self.duration_ms,
            "change": change,
        })
        .to_string()
    }

    fn from_json(text: &str) -> Option<Plan> {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let uid = |v: &serde_json::Value| v.as_str().and_then(|s| Uuid::parse_str(s).ok());
        let change = match &value["change"] {
            serde_json::Value::Null => None,
            change if change.get("running").is_some() => {
                let running = &change["running"];
                Some(ReplicaChange::Running {
                    vm: uid(&running["vm"])?,
                    test: running["test"].as_bool()?,
                    point: uid(&running["point"])?,
                })
            }
            change => Some(ReplicaChange::Reverted {
                vm: uid(&change.get("reverted")?["vm"])?,
            }),
        };
        Some(Plan {
            ok: value["ok"].as_bool()?,
            message: value["message"].as_str()?.to_owned(),
            duration_ms: value["durationMs"].as_u64()?,
            change,
        })
    }
}

fn unavailable(error: StoreError) -> ConnectorError {
    // The sim's state is its "host": when it cannot be read, the host is unreachable.
    ConnectorError::Unavailable {
        reason: format!("the simulated hypervisor's state: {error}"),
        retry_after: OFFLINE_RETRY_AFTER,
    }
}

fn status_of(record: &SimOperationRecord) -> OperationStatus {
    let message = record.message.clone().unwrap_or_default();
    match record.outcome {
        None => OperationStatus::Running,
        Some(SimOutcome::Succeeded) => OperationStatus::Succeeded { detail: message },
        Some(SimOutcome::Failed) => OperationStatus::Failed { reason: message },
        Some(SimOutcome::Cancelled) => OperationStatus::Cancelled { reason: message },
    }
}

impl SimConnector {
    pub fn new(ledger: Arc<dyn SimLedger>, settings: SimSettings) -> Self {
        SimConnector {
            ledger,
            settings,
            running: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    async fn has_fault(&self, target: Uuid, fault: SimFault) -> Result<bool, ConnectorError> {
        Ok(self
            .ledger
            .faults(target)
            .await
            .map_err(unavailable)?
            .contains(&fault))
    }

    async fn require_online(&self, server: Uuid) -> Result<(), ConnectorError> {
        if self.has_fault(server, SimFault::Offline).await? {
            return Err(ConnectorError::Unavailable {
                reason: "The backup server is offline.".into(),
                retry_after: OFFLINE_RETRY_AFTER,
            });
        }
        Ok(())
    }

    async fn plan(&self, operation: &Operation) -> Result<Plan, ConnectorError> {
        let id = operation.id.as_str();
        // The server's own settings, over the process-wide ones (checked at import already).
        let server = SimServerSettings::of(&operation.settings).map_err(|error| {
            ConnectorError::Rejected(format!("the server's sim settings: {error}"))
        })?;
        let boot_ms = server.boot_ms.unwrap_or(self.settings.boot_ms);
        let undo_ms = server.undo_ms.unwrap_or(self.settings.undo_ms);
        let script_ms = server.script_ms.unwrap_or(self.settings.script_ms);
        Ok(match &operation.action {
            Action::FailOver {
                vm,
                restore_point,
                test,
            } => {
                let mut boot = spread(id, boot_ms);
                if self.has_fault(*vm, SimFault::Slow).await? {
                    boot = boot.saturating_mul(10);
                }
                if self.has_fault(*vm, SimFault::BootFails).await? {
                    Plan {
                        ok: false,
                        message: format!(
                            "The replica did not boot within {} s.",
                            (boot / 1000).max(1)
                        ),
                        duration_ms: boot,
                        change: None,
                    }
                } else {
                    Plan {
                        ok: true,
                        message: if *test {
                            "Replica powered on in the isolated test network.".into()
                        } else {
                            "Replica powered on.".into()
                        },
                        duration_ms: boot,
                        change: Some(ReplicaChange::Running {
                            vm: *vm,
                            test: *test,
                            point: *restore_point,
                        }),
                    }
                }
            }
            Action::Undo { vm } => Plan {
                ok: true,
                message: "Replica powered off; changes discarded.".into(),
                duration_ms: undo_ms,
                change: Some(ReplicaChange::Reverted { vm: *vm }),
            },
            Action::Script { command } => {
                let fails = self
                    .has_fault(operation.server, SimFault::ScriptFails)
                    .await?;
                Plan {
                    ok: !fails,
                    message: format!("'{command}' exited with code {}.", i32::from(fails)),
                    duration_ms: script_ms,
                    change: None,
                }
            }
        })
    }

    /// Makes sure this process carries out an unfinished operation (the one that started it
    /// may have died) and returns the signal that fires when it ends.
    fn carry_out(&self, record: &SimOperationRecord) -> Arc<Notify> {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(done) = running.get(&record.operation_id) {
            return done.clone();
        }
        let done = Arc::new(Notify::new());
        running.insert(record.operation_id.clone(), done.clone());
        let plan = record
            .plan
            .as_deref()
            .and_then(Plan::from_json)
            .unwrap_or(Plan {
                ok: false,
                message: "The simulated hypervisor lost this operation's plan.".into(),
                duration_ms: 0,
                change: None,
            });
        let elapsed = Duration::from_micros(
            ((Timestamp::now().ticks() - record.started_at.ticks()).max(0) / 10) as u64,
        );
        let remaining = Duration::from_millis(plan.duration_ms).saturating_sub(elapsed);
        let ledger = self.ledger.clone();
        let registry = self.running.clone();
        let operation = record.operation_id.clone();
        let signal = done.clone();
        tokio::spawn(async move {
            tokio::time::sleep(remaining).await;
            let outcome = if plan.ok {
                SimOutcome::Succeeded
            } else {
                SimOutcome::Failed
            };
            let change = if plan.ok { plan.change } else { None };
            // `false` means another process (or a cancel) ended it first: nothing to do.
            if let Err(error) = ledger
                .complete(&operation, outcome, &plan.message, change, Timestamp::now())
                .await
            {
                tracing::warn!(%error, operation, "the sim could not record an operation's end; it is finished on the next status call");
            }
            registry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&operation);
            signal.notify_waiters();
        });
        done
    }

    async fn current(&self, id: &OperationId) -> Result<OperationStatus, ConnectorError> {
        match self
            .ledger
            .operation(id.as_str())
            .await
            .map_err(unavailable)?
        {
            None => Ok(OperationStatus::Unknown),
            Some(record) => {
                if record.outcome.is_none() {
                    self.carry_out(&record);
                }
                Ok(status_of(&record))
            }
        }
    }
}

#[async_trait]
impl Connector for SimConnector {
    async fn probe(&self, server: Uuid) -> Result<Health, ConnectorError> {
        let offline = self.has_fault(server, SimFault::Offline).await?;
        Ok(Health {
            online: !offline,
            detail: if offline {
                "The backup server is offline (an injected fault).".into()
            } else {
                "The simulated hypervisor answers.".into()
            },
        })
    }

    async fn submit(&self, operation: &Operation) -> Result<OperationStatus, ConnectorError> {
        self.require_online(operation.server).await?;
        let plan = self.plan(operation).await?;
        let object = match &operation.action {
            Action::FailOver { vm, .. } | Action::Undo { vm } => Some(*vm),
            Action::Script { .. } => None,
        };
        // Every submission is counted; a known id keeps its first plan and is not started again.
        let record = self
            .ledger
            .submit(
                operation.id.as_str(),
                object,
                operation.action.kind(),
                &plan.to_json(),
                Timestamp::now(),
            )
            .await
            .map_err(unavailable)?;
        if record.outcome.is_none() {
            self.carry_out(&record);
        }
        Ok(status_of(&record))
    }

    async fn status(
        &self,
        server: Uuid,
        id: &OperationId,
    ) -> Result<OperationStatus, ConnectorError> {
        self.require_online(server).await?;
        self.current(id).await
    }

    async fn wait(
        &self,
        server: Uuid,
        id: &OperationId,
        timeout: Duration,
    ) -> Result<OperationStatus, ConnectorError> {
        self.require_online(server).await?;
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let record = self
                .ledger
                .operation(id.as_str())
                .await
                .map_err(unavailable)?;
            let Some(record) = record else {
                return Ok(OperationStatus::Unknown);
            };
            if record.outcome.is_some() {
                return Ok(status_of(&record));
            }
            let done = self.carry_out(&record);
            let notified = done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // The operation may have ended between the read and `enable`: read once more.
            if let Some(record) = self
                .ledger
                .operation(id.as_str())
                .await
                .map_err(unavailable)?
                && record.outcome.is_some()
            {
                return Ok(status_of(&record));
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return Ok(OperationStatus::Running);
            }
        }
    }

    async fn cancel(
        &self,
        server: Uuid,
        id: &OperationId,
    ) -> Result<OperationStatus, ConnectorError> {
        self.require_online(server).await?;
        self.ledger
            .complete(
                id.as_str(),
                SimOutcome::Cancelled,
                "Cancelled before it finished.",
                None,
                Timestamp::now(),
            )
            .await
            .map_err(unavailable)?;
        let done = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id.as_str())
            .cloned();
        if let Some(done) = done {
            done.notify_waiters();
        }
        self.current(id).await
    }

    async fn replica(&self, server: Uuid, vm: Uuid) -> Result<ReplicaState, ConnectorError> {
        self.require_online(server).await?;
        Ok(
            match self.ledger.replica_state(vm).await.map_err(unavailable)? {
                None => ReplicaState::Off,
                Some(state) => ReplicaState::Running {
                    test: state == "test",
                },
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_repeatable_and_in_range() {
        for op in ["a", "b/c", "0190-vm"] {
            let d = spread(op, (2000, 6000));
            assert!((2000..=6000).contains(&d));
            assert_eq!(d, spread(op, (2000, 6000)));
        }
        assert_eq!(spread("x", (5, 5)), 5);
    }

    #[test]
    fn plans_round_trip_through_the_ledger() {
        let vm = Uuid::from_u128(7);
        for change in [
            None,
            Some(ReplicaChange::Running {
                vm,
                test: true,
                point: Uuid::from_u128(9),
            }),
            Some(ReplicaChange::Reverted { vm }),
        ] {
            let plan = Plan {
                ok: change.is_some(),
                message: "m".into(),
                duration_ms: 12,
                change,
            };
            assert_eq!(Plan::from_json(&plan.to_json()), Some(plan));
        }
        assert_eq!(Plan::from_json("{}"), None);
    }
}

//! `sim`: a simulated hypervisor per backup server, with settable timings and injected faults.
//!
//! Its state (which replicas are failed over, and an execution count per operation id) lives in
//! the store, so it survives a crash like a real hypervisor would and tests can prove that no
//! operation ran twice. Faults, by VM or server UID: `boot-fails`, `slow` (ten times the boot
//! time), `script-fails` (on a server), `offline` (a server that answers nothing).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use standby_model::Timestamp;
use standby_store::{ReplicaChange, SimOperation, Store};
use uuid::Uuid;

use crate::connector::{Connector, ConnectorError, Outcome};

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

pub struct SimConnector {
    store: Arc<dyn Store>,
    settings: SimSettings,
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

impl SimConnector {
    pub fn new(store: Arc<dyn Store>, settings: SimSettings) -> Self {
        SimConnector { store, settings }
    }

    async fn has_fault(&self, target: Uuid, fault: &str) -> Result<bool, ConnectorError> {
        Ok(self
            .store
            .sim_faults(target)
            .await?
            .iter()
            .any(|f| f == fault))
    }

    /// Runs one operation at most once. `work` is how long it takes; `outcome` is how it ends and
    /// `change` what becomes of the replica if it succeeds.
    async fn execute(
        &self,
        operation: &str,
        object: Option<Uuid>,
        kind: &str,
        work: Duration,
        outcome: Outcome,
        change: Option<ReplicaChange>,
    ) -> Result<Outcome, ConnectorError> {
        let now = Timestamp::now();
        let remaining = match self.store.sim_begin(operation, object, kind, now).await? {
            SimOperation::Done { ok, message } => return Ok(Outcome { ok, message }),
            SimOperation::Started => work,
            // Started by a process that died: the hypervisor kept working; wait out the rest.
            SimOperation::InFlight { started_at } => {
                let elapsed =
                    Duration::from_micros(((now.ticks() - started_at.ticks()).max(0) / 10) as u64);
                work.saturating_sub(elapsed)
            }
        };
        tokio::time::sleep(remaining).await;
        let change = if outcome.ok { change } else { None };
        self.store
            .sim_finish(
                operation,
                outcome.ok,
                &outcome.message,
                change,
                Timestamp::now(),
            )
            .await?;
        Ok(outcome)
    }
}

#[async_trait]
impl Connector for SimConnector {
    async fn is_failed_over(&self, vm: Uuid) -> Result<bool, ConnectorError> {
        Ok(self.store.sim_replica_state(vm).await?.is_some())
    }

    async fn fail_over(
        &self,
        operation: &str,
        server: Uuid,
        vm: Uuid,
        point: Uuid,
        test: bool,
    ) -> Result<Outcome, ConnectorError> {
        if self.has_fault(server, "offline").await? {
            return Ok(Outcome {
                ok: false,
                message: "The backup server is offline.".into(),
            });
        }
        let mut boot = spread(operation, self.settings.boot_ms);
        if self.has_fault(vm, "slow").await? {
            boot *= 10;
        }
        let outcome = if self.has_fault(vm, "boot-fails").await? {
            Outcome {
                ok: false,
                message: format!(
                    "The replica did not boot within {} s.",
                    (boot / 1000).max(1)
                ),
            }
        } else if test {
            Outcome {
                ok: true,
                message: "Replica powered on in the isolated test network.".into(),
            }
        } else {
            Outcome {
                ok: true,
                message: "Replica powered on.".into(),
            }
        };
        self.execute(
            operation,
            Some(vm),
            "failover",
            Duration::from_millis(boot),
            outcome,
            Some(ReplicaChange::Running { vm, test, point }),
        )
        .await
    }

    async fn undo(
        &self,
        operation: &str,
        server: Uuid,
        vm: Uuid,
    ) -> Result<Outcome, ConnectorError> {
        if self.has_fault(server, "offline").await? {
            return Ok(Outcome {
                ok: false,
                message: "The backup server is offline.".into(),
            });
        }
        let outcome = Outcome {
            ok: true,
            message: "Replica powered off; changes discarded.".into(),
        };
        self.execute(
            operation,
            Some(vm),
            "undo",
            Duration::from_millis(self.settings.undo_ms),
            outcome,
            Some(ReplicaChange::Reverted { vm }),
        )
        .await
    }

    async fn run_script(
        &self,
        operation: &str,
        server: Uuid,
        command: &str,
    ) -> Result<Outcome, ConnectorError> {
        if self.has_fault(server, "offline").await? {
            return Ok(Outcome {
                ok: false,
                message: "The backup server is offline.".into(),
            });
        }
        let outcome = if self.has_fault(server, "script-fails").await? {
            Outcome {
                ok: false,
                message: format!("'{command}' exited with code 1."),
            }
        } else {
            Outcome {
                ok: true,
                message: format!("'{command}' exited with code 0."),
            }
        };
        self.execute(
            operation,
            None,
            "script",
            Duration::from_millis(self.settings.script_ms),
            outcome,
            None,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn durations_are_repeatable_and_in_range() {
        for op in ["a", "b/c", "0190-vm"] {
            let d = spread(op, (2000, 6000));
            assert!((2000..=6000).contains(&d));
            assert_eq!(d, spread(op, (2000, 6000)));
        }
        assert_eq!(spread("x", (5, 5)), 5);
    }
}

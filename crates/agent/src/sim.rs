//! The `sim` driver: no VM is booted. A replica is a row in the ledger, a boot is a wait in the
//! manifest's `[sim]` range, and restore points come from the manifest (a fixed list, or the
//! most recent whole multiples of an interval, moving with the clock like real replication).

use std::time::Duration;

use standby_fleet::SimFault;
use standby_fleet::agent::CommandAction;
use standby_model::Timestamp;

use crate::driver::{Cancel, Driver, DriverError, Finished, Operation, ReplicaEffect};
use crate::ledger::Ledger;
use crate::manifest::{RestorePoints, SimSettings, Vm};

const TICKS_PER_MINUTE: i64 = 600_000_000;
const TICKS_PER_MILLI: i64 = 10_000;
/// A point that left the window this recently still boots: the control plane learns of the
/// move only with the next inventory push.
const WINDOW_GRACE_SECONDS: i64 = 120;

pub struct SimDriver {
    ledger: Ledger,
    settings: SimSettings,
}

/// The VM's restore points at `now`, oldest first.
pub fn restore_points_at(points: &RestorePoints, now: Timestamp) -> Vec<Timestamp> {
    match points {
        RestorePoints::Fixed(points) => points.clone(),
        RestorePoints::Every {
            count,
            interval_minutes,
        } => {
            let interval = i64::from(*interval_minutes) * TICKS_PER_MINUTE;
            let latest = now.ticks().div_euclid(interval) * interval;
            (0..i64::from(*count))
                .rev()
                .map(|back| Timestamp::from_ticks(latest - back * interval))
                .collect()
        }
    }
}

impl SimDriver {
    pub fn new(ledger: Ledger, settings: SimSettings) -> SimDriver {
        SimDriver { ledger, settings }
    }

    /// A boot's duration: fixed by the operation id, so that a resumed boot waits out the
    /// same duration it started with.
    fn boot_duration(&self, operation_id: &str, vm: &Vm) -> Duration {
        let (low, high) = self.settings.boot_ms;
        let span = high - low + 1;
        let mut millis = low + fnv1a(operation_id.as_bytes()) % span;
        if vm.sim_faults.contains(&SimFault::Slow) {
            millis = millis.saturating_mul(10);
        }
        Duration::from_millis(millis)
    }

    /// Waits until `duration` after the operation started; `false` if cancelled first.
    async fn wait_out(operation: &Operation<'_>, duration: Duration, cancel: &Cancel) -> bool {
        let elapsed_ticks = Timestamp::now().ticks() - operation.started_at.ticks();
        let elapsed =
            Duration::from_millis(u64::try_from(elapsed_ticks / TICKS_PER_MILLI).unwrap_or(0));
        let remaining = duration.saturating_sub(elapsed);
        tokio::select! {
            () = tokio::time::sleep(remaining) => true,
            () = cancel.cancelled() => false,
        }
    }

    async fn boot(
        &self,
        operation: Operation<'_>,
        restore_point: Option<Timestamp>,
        test: bool,
        cancel: Cancel,
    ) -> Finished {
        let vm = operation.target.vm;
        let replica = match self.ledger.replica(operation.target.uid).await {
            Ok(replica) => replica,
            Err(error) => {
                return Finished::failed(
                    format!("VM {}: cannot read its replica's state: {error}", vm.name),
                    ReplicaEffect::Unchanged,
                );
            }
        };
        if replica.running {
            let kind = if replica.test { "test " } else { "" };
            return Finished::succeeded(
                format!("VM {}: its {kind}replica is already running", vm.name),
                ReplicaEffect::Unchanged,
            );
        }
        let duration = self.boot_duration(operation.id, vm);
        if !Self::wait_out(&operation, duration, &cancel).await {
            return Finished::cancelled(
                format!(
                    "VM {}: cancelled while booting; the replica is off",
                    vm.name
                ),
                ReplicaEffect::Unchanged,
            );
        }
        if vm.sim_faults.contains(&SimFault::BootFails) {
            return Finished::failed(
                format!(
                    "VM {}: the replica did not boot (sim fault boot-fails in the manifest)",
                    vm.name
                ),
                ReplicaEffect::Unchanged,
            );
        }
        let from = restore_point
            .map(|point| format!(" from the restore point of {point}"))
            .unwrap_or_default();
        let mode = if test { " (test, isolated)" } else { "" };
        Finished::succeeded(
            format!(
                "VM {}: replica booted{from}{mode} in {} ms",
                vm.name,
                duration.as_millis()
            ),
            ReplicaEffect::Set {
                running: true,
                test,
            },
        )
    }

    async fn power_off(&self, operation: Operation<'_>, cancel: Cancel) -> Finished {
        let vm = operation.target.vm;
        let replica = match self.ledger.replica(operation.target.uid).await {
            Ok(replica) => replica,
            Err(error) => {
                return Finished::failed(
                    format!("VM {}: cannot read its replica's state: {error}", vm.name),
                    ReplicaEffect::Unchanged,
                );
            }
        };
        if !replica.running {
            return Finished::succeeded(
                format!("VM {}: the replica is already off", vm.name),
                ReplicaEffect::Unchanged,
            );
        }
        let duration = Duration::from_millis(self.settings.undo_ms);
        if !Self::wait_out(&operation, duration, &cancel).await {
            return Finished::cancelled(
                format!(
                    "VM {}: cancelled before the replica was powered off",
                    vm.name
                ),
                ReplicaEffect::Unchanged,
            );
        }
        Finished::succeeded(
            format!("VM {}: replica powered off, its changes discarded", vm.name),
            ReplicaEffect::Set {
                running: false,
                test: false,
            },
        )
    }
}

impl Driver for SimDriver {
    fn name(&self) -> &'static str {
        "sim"
    }

    async fn restore_points(&self, vm: &Vm) -> Result<Vec<Timestamp>, DriverError> {
        Ok(restore_points_at(&vm.restore_points, Timestamp::now()))
    }

    async fn fail_over(
        &self,
        operation: Operation<'_>,
        restore_point: Timestamp,
        test: bool,
        cancel: Cancel,
    ) -> Finished {
        let vm = operation.target.vm;
        let now = Timestamp::now();
        let known = restore_points_at(&vm.restore_points, now)
            .into_iter()
            .chain(restore_points_at(
                &vm.restore_points,
                now.plus_seconds(-WINDOW_GRACE_SECONDS),
            ))
            .any(|point| point == restore_point);
        if !known {
            return Finished::failed(
                format!(
                    "VM {} has no restore point created at {restore_point} on this host",
                    vm.name
                ),
                ReplicaEffect::Unchanged,
            );
        }
        self.boot(operation, Some(restore_point), test, cancel)
            .await
    }

    async fn undo(&self, operation: Operation<'_>, cancel: Cancel) -> Finished {
        self.power_off(operation, cancel).await
    }

    async fn resume(
        &self,
        operation: Operation<'_>,
        action: &CommandAction,
        restore_point: Option<Timestamp>,
        cancel: Cancel,
    ) -> Finished {
        // The sim's work is only the wait: carrying on is waiting out what is left of it.
        match action {
            CommandAction::FailOver { test, .. } => {
                self.boot(operation, restore_point, *test, cancel).await
            }
            CommandAction::Undo { .. } => self.power_off(operation, cancel).await,
            CommandAction::Script { .. } | CommandAction::Cancel { .. } => {
                Finished::failed("not an operation of the driver", ReplicaEffect::None)
            }
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn restore_points_move_with_the_clock() {
        let every = RestorePoints::Every {
            count: 3,
            interval_minutes: 60,
        };
        assert_eq!(
            restore_points_at(&every, at("2026-12-01T10:59:59.9999999Z")),
            vec![
                at("2026-12-01T08:00:00Z"),
                at("2026-12-01T09:00:00Z"),
                at("2026-12-01T10:00:00Z")
            ]
        );
        // At the hour exactly the new point exists and the oldest has gone.
        assert_eq!(
            restore_points_at(&every, at("2026-12-01T11:00:00Z")),
            vec![
                at("2026-12-01T09:00:00Z"),
                at("2026-12-01T10:00:00Z"),
                at("2026-12-01T11:00:00Z")
            ]
        );
        let quarter = RestorePoints::Every {
            count: 2,
            interval_minutes: 15,
        };
        assert_eq!(
            restore_points_at(&quarter, at("2026-12-01T00:07:00Z")),
            vec![at("2026-11-30T23:45:00Z"), at("2026-12-01T00:00:00Z")]
        );
        let fixed = RestorePoints::Fixed(vec![at("2026-12-01T00:00:00Z")]);
        assert_eq!(
            restore_points_at(&fixed, at("2030-01-01T00:00:00Z")),
            vec![at("2026-12-01T00:00:00Z")]
        );
    }
}

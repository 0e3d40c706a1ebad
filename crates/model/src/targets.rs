//! Recovery targets and how a run is judged against them.
//!
//! A plan may have an RTO target (seconds from a run's start until its last VM is ready) and an
//! RPO target (for each VM, seconds between the restore point it was started from and the run's
//! start). A run keeps the targets in force when it started; [`measure_run`] turns what the run
//! recorded (its start, each VM's point and the moment it was ready) into achieved figures and a
//! verdict. Everything here is pure: the report, the trend, the console and the notifications
//! all judge a run the same way.

use serde::{Deserialize, Serialize};

use crate::{BackupStatus, SessionKind, SessionStatus, Timestamp};

/// A plan's targets, in whole seconds; `None`: no target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecoveryTargets {
    pub rto_seconds: Option<u32>,
    pub rpo_seconds: Option<u32>,
}

impl RecoveryTargets {
    /// The largest target accepted: a year (a longer one is a typo, not a target).
    pub const MAX_SECONDS: u32 = 366 * 86_400;

    /// Each target, when set, is 1 second to [`Self::MAX_SECONDS`].
    pub fn check(&self) -> Result<(), String> {
        for (name, value) in [
            ("rtoSeconds", self.rto_seconds),
            ("rpoSeconds", self.rpo_seconds),
        ] {
            if let Some(seconds) = value
                && !(1..=Self::MAX_SECONDS).contains(&seconds)
            {
                return Err(format!(
                    "{name} must be from 1 to {} seconds (or null for no target); it is {seconds}.",
                    Self::MAX_SECONDS
                ));
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.rto_seconds.is_none() && self.rpo_seconds.is_none()
    }
}

/// What one VM of a run recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmFacts {
    pub status: BackupStatus,
    /// The restore point it was started from, if one was found.
    pub restore_point_time: Option<Timestamp>,
    /// When its step ended (ready, or failed).
    pub end_time: Option<Timestamp>,
}

/// What a run recorded, with the targets in force when it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFacts {
    pub kind: SessionKind,
    pub status: SessionStatus,
    pub start_time: Timestamp,
    pub end_time: Option<Timestamp>,
    pub targets: RecoveryTargets,
    /// In boot order.
    pub vms: Vec<VmFacts>,
}

/// The overall judgement of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Still going.
    Running,
    /// Every VM ready and every target met (or none set).
    Passed,
    /// Every VM came up, some with warnings; targets met.
    PassedWithWarnings,
    /// Every VM came up, but the RTO or an RPO target was missed.
    TargetMissed,
    /// A VM failed, or the run did.
    Failed,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Running => "Running",
            Verdict::Passed => "Passed",
            Verdict::PassedWithWarnings => "PassedWithWarnings",
            Verdict::TargetMissed => "TargetMissed",
            Verdict::Failed => "Failed",
        }
    }
}

/// One VM's achieved figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VmMeasure {
    /// The run's start minus the point's time; `None` without a point.
    pub rpo_seconds: Option<f64>,
    /// Against the RPO target; `None` without a target or a point.
    pub rpo_met: Option<bool>,
    /// From the run's start until this VM was ready; `None` unless it came up.
    pub time_to_ready_seconds: Option<f64>,
}

/// A run's achieved figures against its targets.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMeasure {
    /// From the start until the last VM was ready; `None` until every VM came up (a failed
    /// run has no achieved RTO: it did not recover).
    pub rto_seconds: Option<f64>,
    /// `None` without a target, or while running; `false` for a failed run with a target.
    pub rto_met: Option<bool>,
    /// The largest RPO of the run's VMs.
    pub worst_rpo_seconds: Option<f64>,
    /// Every VM's RPO within the target; `None` without a target or a point.
    pub rpo_met: Option<bool>,
    pub vms: Vec<VmMeasure>,
    pub verdict: Verdict,
}

impl RunMeasure {
    /// A target was set and this run missed it.
    pub fn missed_a_target(&self) -> bool {
        self.rto_met == Some(false) || self.rpo_met == Some(false)
    }
}

fn seconds(from: Timestamp, to: Timestamp) -> f64 {
    (to.ticks() - from.ticks()) as f64 / 10_000_000.0
}

fn came_up(status: BackupStatus) -> bool {
    matches!(status, BackupStatus::Success | BackupStatus::Warning)
}

/// Judges a run. An undo has no recovery to time: its figures are empty and its verdict is
/// its outcome.
pub fn measure_run(run: &RunFacts) -> RunMeasure {
    let recovery = run.kind != SessionKind::Undo;
    let running = run.end_time.is_none();
    let vms: Vec<VmMeasure> = run
        .vms
        .iter()
        .map(|vm| {
            let rpo_seconds = recovery
                .then_some(vm.restore_point_time)
                .flatten()
                .map(|point| seconds(point, run.start_time));
            VmMeasure {
                rpo_seconds,
                rpo_met: match (rpo_seconds, run.targets.rpo_seconds) {
                    (Some(rpo), Some(target)) => Some(rpo <= f64::from(target)),
                    _ => None,
                },
                time_to_ready_seconds: match (recovery && came_up(vm.status), vm.end_time) {
                    (true, Some(end)) => Some(seconds(run.start_time, end)),
                    _ => None,
                },
            }
        })
        .collect();
    let all_up = !run.vms.is_empty() && run.vms.iter().all(|vm| came_up(vm.status));
    let rto_seconds = if recovery && all_up && !running {
        vms.iter()
            .filter_map(|vm| vm.time_to_ready_seconds)
            .reduce(f64::max)
    } else {
        None
    };
    let failed = run.status == SessionStatus::Failed
        || run.vms.iter().any(|vm| vm.status == BackupStatus::Failed);
    let rto_met = match (recovery, running, run.targets.rto_seconds) {
        (true, false, Some(target)) => {
            Some(rto_seconds.is_some_and(|rto| rto <= f64::from(target)))
        }
        _ => None,
    };
    let worst_rpo_seconds = vms.iter().filter_map(|vm| vm.rpo_seconds).reduce(f64::max);
    let rpo_met = if vms.iter().any(|vm| vm.rpo_met.is_some()) {
        Some(vms.iter().all(|vm| vm.rpo_met != Some(false)))
    } else {
        None
    };
    let verdict = if running {
        Verdict::Running
    } else if failed || (recovery && !all_up) {
        Verdict::Failed
    } else if rto_met == Some(false) || rpo_met == Some(false) {
        Verdict::TargetMissed
    } else if run.status == SessionStatus::Warning
        || run.vms.iter().any(|vm| vm.status == BackupStatus::Warning)
    {
        Verdict::PassedWithWarnings
    } else {
        Verdict::Passed
    };
    RunMeasure {
        rto_seconds,
        rto_met,
        worst_rpo_seconds,
        rpo_met,
        vms,
        verdict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_ticks(1_000_000_000_000_000 + seconds * 10_000_000)
    }

    fn vm(status: BackupStatus, point: i64, ready: i64) -> VmFacts {
        VmFacts {
            status,
            restore_point_time: Some(at(point)),
            end_time: Some(at(ready)),
        }
    }

    fn run(targets: RecoveryTargets, vms: Vec<VmFacts>) -> RunFacts {
        RunFacts {
            kind: SessionKind::Test,
            status: SessionStatus::Success,
            start_time: at(0),
            end_time: Some(at(100)),
            targets,
            vms,
        }
    }

    const TARGETS: RecoveryTargets = RecoveryTargets {
        rto_seconds: Some(60),
        rpo_seconds: Some(3_600),
    };

    #[test]
    fn rto_is_the_last_vm_ready_and_rpo_the_oldest_point() {
        let measure = measure_run(&run(
            TARGETS,
            vec![
                vm(BackupStatus::Success, -600, 20),
                vm(BackupStatus::Success, -1_800, 45),
            ],
        ));
        assert_eq!(measure.rto_seconds, Some(45.0));
        assert_eq!(measure.rto_met, Some(true));
        assert_eq!(measure.worst_rpo_seconds, Some(1_800.0));
        assert_eq!(measure.rpo_met, Some(true));
        assert_eq!(measure.vms[0].rpo_seconds, Some(600.0));
        assert_eq!(measure.vms[0].time_to_ready_seconds, Some(20.0));
        assert_eq!(measure.verdict, Verdict::Passed);
    }

    #[test]
    fn a_missed_target_is_its_own_verdict() {
        let slow = measure_run(&run(TARGETS, vec![vm(BackupStatus::Success, -10, 61)]));
        assert_eq!(slow.rto_met, Some(false));
        assert_eq!(slow.verdict, Verdict::TargetMissed);
        let stale = measure_run(&run(TARGETS, vec![vm(BackupStatus::Success, -3_601, 5)]));
        assert_eq!(stale.rpo_met, Some(false));
        assert_eq!(stale.vms[0].rpo_met, Some(false));
        assert_eq!(stale.verdict, Verdict::TargetMissed);
        assert!(stale.missed_a_target());
    }

    #[test]
    fn a_failed_vm_fails_the_run_and_leaves_no_rto() {
        let mut facts = run(
            TARGETS,
            vec![
                vm(BackupStatus::Success, -10, 5),
                vm(BackupStatus::Failed, -10, 6),
            ],
        );
        facts.status = SessionStatus::Failed;
        let measure = measure_run(&facts);
        assert_eq!(measure.rto_seconds, None);
        assert_eq!(measure.rto_met, Some(false));
        assert_eq!(measure.vms[1].time_to_ready_seconds, None);
        assert_eq!(measure.verdict, Verdict::Failed);
    }

    #[test]
    fn without_targets_nothing_is_met_or_missed() {
        let measure = measure_run(&run(
            RecoveryTargets::default(),
            vec![vm(BackupStatus::Warning, -10, 5)],
        ));
        assert_eq!(measure.rto_met, None);
        assert_eq!(measure.rpo_met, None);
        assert!(!measure.missed_a_target());
        assert_eq!(measure.verdict, Verdict::PassedWithWarnings);
    }

    #[test]
    fn a_running_run_and_an_undo_are_not_timed() {
        let mut facts = run(TARGETS, vec![vm(BackupStatus::Running, -10, 5)]);
        facts.end_time = None;
        facts.vms[0].end_time = None;
        let measure = measure_run(&facts);
        assert_eq!((measure.verdict, measure.rto_met), (Verdict::Running, None));
        let mut undo = run(TARGETS, vec![vm(BackupStatus::Success, -10, 5)]);
        undo.kind = SessionKind::Undo;
        let measure = measure_run(&undo);
        assert_eq!(measure.rto_seconds, None);
        assert_eq!(measure.rpo_met, None);
        assert_eq!(measure.verdict, Verdict::Passed);
    }

    #[test]
    fn targets_are_bounded() {
        assert!(TARGETS.check().is_ok());
        let zero = RecoveryTargets {
            rto_seconds: Some(0),
            rpo_seconds: None,
        };
        assert!(zero.check().unwrap_err().contains("rtoSeconds"));
        let huge = RecoveryTargets {
            rto_seconds: None,
            rpo_seconds: Some(RecoveryTargets::MAX_SECONDS + 1),
        };
        assert!(huge.check().unwrap_err().contains("rpoSeconds"));
    }
}

//! The plan state machine: a pure function from (status, request) to the next status or a
//! refusal. The API asks it before accepting a request and the engine asks it when a session
//! ends, so the rules live here and nowhere else.
//!
//! ```text
//! Ready ──start──▶ InProgress ──▶ Completed (production run, all VMs ok)
//!                      │      ──▶ Success   (test run, all VMs ok)
//!                      │      ──▶ Failed    (any VM failed, or cancelled)
//! Completed | Success | Failed ──undo──▶ InUndoProgress ──▶ Ready | UndoFailed
//! UndoFailed ──undo──▶ InUndoProgress
//! Failed ──start──▶ InProgress   (retry: VMs already failed over are skipped)
//! ```

use crate::enums::PlanStatus;

/// What a client asks of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanRequest {
    Start {
        test: bool,
    },
    Undo,
    /// Edit the plan's settings (PATCH); allowed whenever no session runs.
    Patch,
}

/// How a finished session went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Every VM of a failover (or test) succeeded.
    FailoverSucceeded {
        test: bool,
    },
    /// A VM failed, or the run was cancelled.
    FailoverFailed,
    UndoSucceeded,
    UndoFailed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TransitionRefused {
    pub status: PlanStatus,
    pub request: PlanRequest,
    pub message: &'static str,
}

impl TransitionRefused {
    /// The client-facing sentence, naming the plan's current status.
    pub fn describe(&self) -> String {
        format!(
            "{} The failover plan is in the {} state.",
            self.message, self.status
        )
    }
}

/// The status a plan moves to when `request` is accepted, or why it is refused.
pub fn on_request(
    status: PlanStatus,
    request: PlanRequest,
) -> Result<PlanStatus, TransitionRefused> {
    use PlanStatus::*;
    let refuse = |message| {
        Err(TransitionRefused {
            status,
            request,
            message,
        })
    };
    match request {
        PlanRequest::Start { .. } => match status {
            Ready | Failed => Ok(InProgress),
            InProgress | InUndoProgress => {
                refuse("Cannot start the failover plan while a session is running.")
            }
            _ => refuse("Cannot start the failover plan until the previous failover is undone."),
        },
        PlanRequest::Undo => match status {
            Completed | Success | Failed | UndoFailed => Ok(InUndoProgress),
            InProgress | InUndoProgress => {
                refuse("Cannot undo the failover plan while a session is running.")
            }
            _ => refuse("Cannot undo the failover plan: it has not been failed over."),
        },
        PlanRequest::Patch => match status {
            InProgress | InUndoProgress => {
                refuse("Cannot change the failover plan while a session is running.")
            }
            other => Ok(other),
        },
    }
}

/// The status a running plan moves to when its session ends; `None` if the plan was not in the
/// state that session implies (a bug or a concurrent change the caller must report).
pub fn on_finish(status: PlanStatus, outcome: RunOutcome) -> Option<PlanStatus> {
    use PlanStatus::*;
    match (status, outcome) {
        (InProgress, RunOutcome::FailoverSucceeded { test: false }) => Some(Completed),
        (InProgress, RunOutcome::FailoverSucceeded { test: true }) => Some(Success),
        (InProgress, RunOutcome::FailoverFailed) => Some(Failed),
        (InUndoProgress, RunOutcome::UndoSucceeded) => Some(Ready),
        (InUndoProgress, RunOutcome::UndoFailed) => Some(UndoFailed),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enums::WireEnum;
    use proptest::prelude::*;

    fn any_status() -> impl Strategy<Value = PlanStatus> {
        proptest::sample::select(PlanStatus::ALL)
    }

    fn any_request() -> impl Strategy<Value = PlanRequest> {
        prop_oneof![
            any::<bool>().prop_map(|test| PlanRequest::Start { test }),
            Just(PlanRequest::Undo),
            Just(PlanRequest::Patch),
        ]
    }

    fn any_outcome() -> impl Strategy<Value = RunOutcome> {
        prop_oneof![
            any::<bool>().prop_map(|test| RunOutcome::FailoverSucceeded { test }),
            Just(RunOutcome::FailoverFailed),
            Just(RunOutcome::UndoSucceeded),
            Just(RunOutcome::UndoFailed),
        ]
    }

    #[test]
    fn the_documented_transitions() {
        use PlanStatus::*;
        assert_eq!(
            on_request(Ready, PlanRequest::Start { test: false }),
            Ok(InProgress)
        );
        assert_eq!(
            on_request(Failed, PlanRequest::Start { test: true }),
            Ok(InProgress)
        );
        for from in [Completed, Success, Failed, UndoFailed] {
            assert_eq!(on_request(from, PlanRequest::Undo), Ok(InUndoProgress));
        }
        assert!(on_request(Ready, PlanRequest::Undo).is_err());
        assert!(on_request(Completed, PlanRequest::Start { test: false }).is_err());
        assert!(on_request(InProgress, PlanRequest::Patch).is_err());
        let refused = on_request(InProgress, PlanRequest::Start { test: false }).unwrap_err();
        assert!(refused.describe().contains("InProgress"));
    }

    proptest! {
        /// A busy plan refuses every request; an idle one always accepts a patch unchanged.
        #[test]
        fn busy_plans_refuse_everything(status in any_status(), request in any_request()) {
            let result = on_request(status, request);
            if status.is_busy() {
                prop_assert!(result.is_err());
            } else if request == PlanRequest::Patch {
                prop_assert_eq!(result, Ok(status));
            }
        }

        /// Any run of accepted requests and matching outcomes stays inside the state machine:
        /// a session is started only from an idle plan and every session ends in an idle state.
        #[test]
        fn random_walks_never_leave_a_plan_stuck(
            steps in proptest::collection::vec((any_request(), any_outcome()), 1..40)
        ) {
            let mut status = PlanStatus::Ready;
            for (request, outcome) in steps {
                match on_request(status, request) {
                    Ok(next) if next.is_busy() => {
                        prop_assert!(!status.is_busy());
                        let finished = on_finish(next, outcome);
                        if let Some(done) = finished {
                            prop_assert!(!done.is_busy());
                            status = done;
                        } else {
                            // The outcome does not belong to this kind of session: pick one that does.
                            let fallback = if next == PlanStatus::InProgress { RunOutcome::FailoverFailed } else { RunOutcome::UndoFailed };
                            status = on_finish(next, fallback).unwrap();
                        }
                    }
                    Ok(same) => prop_assert_eq!(same, status),
                    Err(refused) => prop_assert_eq!(refused.status, status),
                }
            }
        }
    }
}

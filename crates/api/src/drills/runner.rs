//! The drill runner: every node runs it, once a second.
//!
//! 1. A drill whose next occurrence is due is claimed by one node (a compare-and-set on the
//!    drill's `next_run_at`, in the transaction that opens the run with its plans), so each
//!    occurrence runs once however many nodes see it. Occurrences missed while every node was
//!    down are not replayed: the next one is counted from now.
//! 2. Each open run moves its plans along: a pending plan starts a test failover when the run's
//!    budget of VMs allows it (and only if the plan is Ready; otherwise it is skipped, with the
//!    reason); a finished test is undone `ttlSeconds` after it ended; a failed undo is retried
//!    with a growing delay, and after [`MAX_UNDO_ATTEMPTS`] the plan is marked `undoFailed` and
//!    an error is logged for an operator.
//!
//! Every move is a compare-and-set on the plan's state in the run, and every session a move
//! starts has a UID derived from the run, the plan and the move (the undo's from its attempt
//! too). A node that dies between a move and the start it stands for, or one that wakes up
//! after another node moved on, finds the session by that UID instead of starting a second one.
//! Nothing is kept in memory between ticks: a restart picks every run up where the store has it.

use std::time::Duration;

use standby_model::{ClientVersion, SessionKind, SessionStatus, Timestamp, Verdict, WireEnum};
use standby_query::{Filter, Paging, SortOrder};
use standby_store::catalog::PLAN_CATALOG;
use standby_store::drills::{
    DrillPlanMove, DrillPlanState, DrillPlans, DrillRecord, DrillRun, DrillRunPlan, NewDrillRunPlan,
};
use standby_store::{ListQuery, NewAsyncAction, NewSession, StoreError};
use uuid::Uuid;

use crate::AppState;
use crate::schedule::Schedule;

/// Undo attempts before a plan is left `undoFailed` for an operator.
pub const MAX_UNDO_ATTEMPTS: u32 = 5;

/// At most this many plans a filter selects for one run.
pub const MAX_PLANS_PER_RUN: u32 = 500;

/// How often the runner looks.
const TICK: Duration = Duration::from_secs(1);

/// Runs the drill runner until the process ends.
pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = once(&state, Timestamp::now()).await {
            tracing::warn!(%error, "the drill runner's pass failed; it tries again");
        }
    }
}

/// One pass: claim due occurrences, then move every open run along.
pub async fn once(state: &AppState, now: Timestamp) -> Result<(), StoreError> {
    let open = state.store.open_drill_runs().await?;
    for drill in state.store.due_drills(now).await? {
        let busy = open.iter().any(|run| run.drill_uid == drill.uid);
        open_occurrence(state, &drill, busy, now).await?;
    }
    for run in state.store.open_drill_runs().await? {
        let Some(drill) = state.store.drill_settings(run.drill_uid).await? else {
            continue;
        };
        advance(state, &drill, &run, now).await?;
    }
    Ok(())
}

/// The run's UID for an occurrence: the same on every node.
fn run_uid(drill: Uuid, due: Timestamp) -> Uuid {
    Uuid::new_v5(&drill, format!("run/{}", due.ticks()).as_bytes())
}

/// The UID of a session a run starts for a plan: the test, or undo attempt `n`.
fn session_uid(run: Uuid, plan: Uuid, what: &str) -> Uuid {
    Uuid::new_v5(&run, format!("{plan}/{what}").as_bytes())
}

async fn open_occurrence(
    state: &AppState,
    drill: &DrillRecord,
    busy: bool,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(due) = drill.next_run_at else {
        return Ok(());
    };
    let next = match Schedule::parse(&drill.schedule, &drill.time_zone) {
        Ok(schedule) => schedule.next_after(now),
        Err(error) => {
            tracing::error!(drill.uid = %drill.uid, %error, "a stored drill schedule no longer parses; it stops");
            None
        }
    };
    if busy {
        // One run of a drill at a time: this occurrence is passed over, and said so.
        if state
            .store
            .claim_drill_occurrence(drill.uid, due, next, None, now)
            .await?
        {
            tracing::warn!(drill.uid = %drill.uid, drill.name = %drill.name, due = %due,
                "a drill occurrence was skipped: the previous run is still undoing its tests");
        }
        return Ok(());
    }
    let plans = resolve_plans(state, drill).await?;
    let run = run_uid(drill.uid, due);
    if state
        .store
        .claim_drill_occurrence(drill.uid, due, next, Some((run, plans)), now)
        .await?
    {
        tracing::info!(drill.uid = %drill.uid, drill.name = %drill.name, run.uid = %run, due = %due, "drill run opened");
    }
    Ok(())
}

/// The plans an occurrence runs, as its owner sees them now.
async fn resolve_plans(
    state: &AppState,
    drill: &DrillRecord,
) -> Result<Vec<NewDrillRunPlan>, StoreError> {
    match &drill.plans {
        DrillPlans::Listed(uids) => {
            let mut plans = Vec::with_capacity(uids.len());
            for uid in uids {
                plans.push(match state.store.get_plan(drill.owner, *uid).await? {
                    Some(plan) => NewDrillRunPlan {
                        plan_uid: *uid,
                        vms: plan.objects_count.max(0) as u32,
                        skipped: None,
                    },
                    None => {
                        // Gone, or no longer the owner's: it cannot be named in the run (its
                        // row references the plan), so the run only logs it.
                        tracing::warn!(drill.uid = %drill.uid, plan.uid = %uid,
                            "a drill's plan is no longer visible to the drill's owner; skipped");
                        continue;
                    }
                });
            }
            Ok(plans)
        }
        DrillPlans::Filter(filter) => {
            let filter = match Filter::parse(filter, &PLAN_CATALOG, ClientVersion::NEWEST) {
                Ok(filter) => filter,
                Err(error) => {
                    tracing::error!(drill.uid = %drill.uid, %error, "a stored drill filter no longer parses");
                    return Ok(Vec::new());
                }
            };
            let page = state
                .store
                .list_plans(&ListQuery {
                    scope: drill.owner,
                    server: None,
                    plan: None,
                    filter,
                    order: SortOrder::default_for(&PLAN_CATALOG),
                    paging: Paging {
                        limit: MAX_PLANS_PER_RUN,
                        offset: 0,
                    },
                })
                .await?;
            Ok(page
                .items
                .iter()
                .map(|plan| NewDrillRunPlan {
                    plan_uid: plan.instance_uid,
                    vms: plan.objects_count.max(0) as u32,
                    skipped: None,
                })
                .collect())
        }
    }
}

/// What asking for a session gave.
enum Began {
    /// This call started it, or an earlier one did (found by its UID).
    Running,
    /// The plan refused it (not Ready, not visible): the reason.
    Refused(String),
}

/// Starts a drill's session with a UID of its own, once: if a session with that UID exists,
/// it was started already (by this node before a crash, or by another).
async fn begin(
    state: &AppState,
    drill: &DrillRecord,
    plan: Uuid,
    uid: Uuid,
    kind: SessionKind,
    now: Timestamp,
) -> Result<Began, StoreError> {
    if state.store.plan_session(plan, uid).await?.is_some() {
        return Ok(Began::Running);
    }
    let action = Uuid::new_v5(&uid, b"async-action");
    let action_name = match kind {
        SessionKind::Undo => "UndoBackupFailoverPlan",
        SessionKind::Failover | SessionKind::Test => "StartBackupFailoverPlan",
    };
    let session = NewSession {
        uid,
        plan_uid: plan,
        kind,
        requested_point: None,
        started_by: format!("drill {}", drill.name),
        action: NewAsyncAction {
            uid: action,
            initiator_uid: drill.created_by_uid,
            action_name: action_name.to_owned(),
            query_parameters: Default::default(),
            result: "{\"data\":{}}".to_owned(),
        },
        idempotent_answer: None,
    };
    let outcome = state.store.begin_session(drill.owner, &session, now).await;
    // Another node may have begun this very session between the check above and this call.
    let already = || async { state.store.plan_session(plan, uid).await };
    match outcome {
        Ok(true) => {
            if let Some(engine) = &state.engine {
                engine.notify();
            }
            tracing::info!(drill.uid = %drill.uid, plan.uid = %plan, session.uid = %uid, kind = kind.as_str(), "drill session started");
            Ok(Began::Running)
        }
        Ok(false) => Ok(Began::Refused(
            "the plan is no longer visible to the drill's owner".into(),
        )),
        Err(StoreError::Refused(refused)) => {
            if already().await?.is_some() {
                Ok(Began::Running)
            } else {
                Ok(Began::Refused(format!(
                    "the plan was {}: {}",
                    refused.status.as_str(),
                    refused.describe()
                )))
            }
        }
        Err(StoreError::Conflict(message)) => {
            if already().await?.is_some() {
                Ok(Began::Running)
            } else {
                Ok(Began::Refused(message))
            }
        }
        Err(other) => Err(other),
    }
}

/// Seconds before retrying after failed attempt `attempt`: `first`, then doubling.
fn backoff(first: Duration, attempt: u32) -> i64 {
    (first.as_secs().max(1) as i64).saturating_mul(1_i64 << attempt.saturating_sub(1).min(10))
}

/// Moves one run's plans along; finishes the run once every plan is final.
async fn advance(
    state: &AppState,
    drill: &DrillRecord,
    run: &DrillRun,
    now: Timestamp,
) -> Result<(), StoreError> {
    let store = &state.store;
    let mut finals = 0;
    for plan in &run.plans {
        match plan.state {
            DrillPlanState::Testing => testing(state, drill, run, plan, now).await?,
            DrillPlanState::UndoDue if plan.undo_at.is_none_or(|at| at <= now) => {
                let attempt = plan.undo_attempts + 1;
                let uid = session_uid(run.uid, plan.plan_uid, &format!("undo/{attempt}"));
                let mut change = DrillPlanMove::to(DrillPlanState::Undoing);
                change.undo_session_uid = Some(uid);
                change.undo_attempts = Some(attempt);
                if store
                    .move_drill_plan(
                        run.uid,
                        plan.plan_uid,
                        DrillPlanState::UndoDue,
                        &change,
                        now,
                    )
                    .await?
                {
                    start_undo(state, drill, run, plan.plan_uid, uid, attempt, now).await?;
                }
            }
            DrillPlanState::Undoing => undoing(state, drill, run, plan, now).await?,
            other if other.is_final() => finals += 1,
            _ => {}
        }
    }
    start_pending(state, drill, run, now).await?;
    if finals == run.plans.len() && store.finish_drill_run(run.uid, now).await? {
        let undo_failed = run
            .plans
            .iter()
            .filter(|p| p.state == DrillPlanState::UndoFailed)
            .count();
        tracing::info!(drill.uid = %drill.uid, run.uid = %run.uid, undo_failed, "drill run finished");
    }
    Ok(())
}

/// A test was started: once it has ended, its undo is due `ttlSeconds` later. A test whose
/// start never happened (the node died between the move and the start) is started now.
async fn testing(
    state: &AppState,
    drill: &DrillRecord,
    run: &DrillRun,
    plan: &DrillRunPlan,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(uid) = plan.test_session_uid else {
        return Ok(());
    };
    match state.store.plan_session(plan.plan_uid, uid).await? {
        None => {
            if let Began::Refused(reason) =
                begin(state, drill, plan.plan_uid, uid, SessionKind::Test, now).await?
            {
                skip(
                    state,
                    run,
                    plan.plan_uid,
                    DrillPlanState::Testing,
                    reason,
                    now,
                )
                .await?;
            }
        }
        Some(session) if session.end_time.is_none() => {}
        Some(session) => {
            let verdict = crate::reports::measure(&session).verdict;
            let ended = session.end_time.unwrap_or(now);
            let mut change = DrillPlanMove::to(DrillPlanState::UndoDue);
            change.undo_at = Some(Some(ended.plus_seconds(i64::from(drill.ttl_seconds))));
            change.test_verdict = Some(verdict.as_str().to_owned());
            state
                .store
                .move_drill_plan(
                    run.uid,
                    plan.plan_uid,
                    DrillPlanState::Testing,
                    &change,
                    now,
                )
                .await?;
        }
    }
    Ok(())
}

async fn start_undo(
    state: &AppState,
    drill: &DrillRecord,
    run: &DrillRun,
    plan: Uuid,
    uid: Uuid,
    attempt: u32,
    now: Timestamp,
) -> Result<(), StoreError> {
    if let Began::Refused(reason) = begin(state, drill, plan, uid, SessionKind::Undo, now).await? {
        // Undone by someone else already (the plan is Ready): nothing is left to undo.
        let ready = state
            .store
            .get_plan(drill.owner, plan)
            .await?
            .is_some_and(|p| p.status == standby_model::PlanStatus::Ready);
        if ready {
            let mut change = DrillPlanMove::to(DrillPlanState::Undone);
            change.reason = Some("undone before the drill undid it".into());
            state
                .store
                .move_drill_plan(run.uid, plan, DrillPlanState::Undoing, &change, now)
                .await?;
        } else {
            undo_failed(state, drill, run, plan, attempt, reason, now).await?;
        }
    }
    Ok(())
}

async fn undoing(
    state: &AppState,
    drill: &DrillRecord,
    run: &DrillRun,
    plan: &DrillRunPlan,
    now: Timestamp,
) -> Result<(), StoreError> {
    let Some(uid) = plan.undo_session_uid else {
        return Ok(());
    };
    match state.store.plan_session(plan.plan_uid, uid).await? {
        None => {
            start_undo(
                state,
                drill,
                run,
                plan.plan_uid,
                uid,
                plan.undo_attempts,
                now,
            )
            .await?
        }
        Some(session) if session.end_time.is_none() => {}
        Some(session) if session.status != SessionStatus::Failed => {
            state
                .store
                .move_drill_plan(
                    run.uid,
                    plan.plan_uid,
                    DrillPlanState::Undoing,
                    &DrillPlanMove::to(DrillPlanState::Undone),
                    now,
                )
                .await?;
        }
        Some(session) => {
            let reason = session
                .message
                .unwrap_or_else(|| "the undo failed".to_owned());
            undo_failed(
                state,
                drill,
                run,
                plan.plan_uid,
                plan.undo_attempts,
                reason,
                now,
            )
            .await?;
        }
    }
    Ok(())
}

/// An undo attempt failed: tried again later, or, with the attempts used up, left for an
/// operator (and said so loudly).
async fn undo_failed(
    state: &AppState,
    drill: &DrillRecord,
    run: &DrillRun,
    plan: Uuid,
    attempt: u32,
    reason: String,
    now: Timestamp,
) -> Result<(), StoreError> {
    let change = if attempt >= MAX_UNDO_ATTEMPTS {
        tracing::error!(drill.uid = %drill.uid, run.uid = %run.uid, plan.uid = %plan, attempts = attempt, %reason,
            "a drill could not undo a test failover: an operator must undo it");
        let mut change = DrillPlanMove::to(DrillPlanState::UndoFailed);
        change.reason = Some(format!(
            "undo failed {attempt} times, last: {reason}; undo the plan by hand"
        ));
        change
    } else {
        let delay = backoff(state.settings.drill_undo_retry, attempt);
        tracing::warn!(drill.uid = %drill.uid, run.uid = %run.uid, plan.uid = %plan, attempt, %reason, retry_in_seconds = delay,
            "a drill's undo failed; it is tried again");
        let mut change = DrillPlanMove::to(DrillPlanState::UndoDue);
        change.undo_at = Some(Some(now.plus_seconds(delay)));
        change.reason = Some(format!("undo attempt {attempt} failed: {reason}"));
        change
    };
    state
        .store
        .move_drill_plan(run.uid, plan, DrillPlanState::Undoing, &change, now)
        .await?;
    Ok(())
}

async fn skip(
    state: &AppState,
    run: &DrillRun,
    plan: Uuid,
    from: DrillPlanState,
    reason: String,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut change = DrillPlanMove::to(DrillPlanState::Skipped);
    tracing::info!(run.uid = %run.uid, plan.uid = %plan, %reason, "a drill skipped a plan");
    change.reason = Some(reason);
    state
        .store
        .move_drill_plan(run.uid, plan, from, &change, now)
        .await?;
    Ok(())
}

/// Starts pending plans, in the drill's order, while the budget of VMs allows.
async fn start_pending(
    state: &AppState,
    drill: &DrillRecord,
    run: &DrillRun,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut used: u32 = run
        .plans
        .iter()
        .filter(|p| p.state.holds_budget())
        .map(|p| p.vms)
        .sum();
    let failures = run
        .plans
        .iter()
        .filter(|p| p.test_verdict.as_deref() == Some(Verdict::Failed.as_str()))
        .count() as u32;
    for plan in run
        .plans
        .iter()
        .filter(|p| p.state == DrillPlanState::Pending)
    {
        if drill.stop_after_failures > 0 && failures >= drill.stop_after_failures {
            let reason = format!(
                "the drill stopped: {failures} test failovers failed (stopAfterFailures {})",
                drill.stop_after_failures
            );
            skip(
                state,
                run,
                plan.plan_uid,
                DrillPlanState::Pending,
                reason,
                now,
            )
            .await?;
            continue;
        }
        if plan.vms > drill.max_parallel_vms {
            let reason = format!(
                "the plan has {} VMs, more than the drill's maxParallelVms of {}",
                plan.vms, drill.max_parallel_vms
            );
            skip(
                state,
                run,
                plan.plan_uid,
                DrillPlanState::Pending,
                reason,
                now,
            )
            .await?;
            continue;
        }
        if used + plan.vms > drill.max_parallel_vms {
            // In order: the next plan waits for VMs to be undone.
            break;
        }
        let status = state
            .store
            .get_plan(drill.owner, plan.plan_uid)
            .await?
            .map(|p| p.status);
        match status {
            None => {
                let reason = "the plan is no longer visible to the drill's owner".to_owned();
                skip(
                    state,
                    run,
                    plan.plan_uid,
                    DrillPlanState::Pending,
                    reason,
                    now,
                )
                .await?;
                continue;
            }
            Some(status) if status != standby_model::PlanStatus::Ready => {
                let reason = format!(
                    "the plan was {}, not Ready: a drill starts only plans that are Ready",
                    status.as_str()
                );
                skip(
                    state,
                    run,
                    plan.plan_uid,
                    DrillPlanState::Pending,
                    reason,
                    now,
                )
                .await?;
                continue;
            }
            Some(_) => {}
        }
        let uid = session_uid(run.uid, plan.plan_uid, "test");
        let mut change = DrillPlanMove::to(DrillPlanState::Testing);
        change.test_session_uid = Some(uid);
        if !state
            .store
            .move_drill_plan(
                run.uid,
                plan.plan_uid,
                DrillPlanState::Pending,
                &change,
                now,
            )
            .await?
        {
            // Another node moved it: its budget is its concern this pass.
            continue;
        }
        used += plan.vms;
        if let Began::Refused(reason) =
            begin(state, drill, plan.plan_uid, uid, SessionKind::Test, now).await?
        {
            used -= plan.vms;
            skip(
                state,
                run,
                plan.plan_uid,
                DrillPlanState::Testing,
                reason,
                now,
            )
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_the_same_on_every_node_and_distinct_per_move() {
        let drill = Uuid::from_u128(7);
        let due = Timestamp::parse("2026-12-04T02:00:00Z").unwrap();
        assert_eq!(run_uid(drill, due), run_uid(drill, due));
        assert_ne!(run_uid(drill, due), run_uid(drill, due.plus_seconds(1)));
        let run = run_uid(drill, due);
        let plan = Uuid::from_u128(9);
        assert_ne!(
            session_uid(run, plan, "test"),
            session_uid(run, plan, "undo/1")
        );
        assert_ne!(
            session_uid(run, plan, "undo/1"),
            session_uid(run, plan, "undo/2")
        );
    }

    #[test]
    fn undo_retries_back_off() {
        let first = Duration::from_secs(15);
        assert_eq!(backoff(first, 1), 15);
        assert_eq!(backoff(first, 2), 30);
        assert_eq!(backoff(first, 4), 120);
        assert!(backoff(first, 40) > 0);
    }
}

//! Running one session, from the start or from wherever a crashed process left it.
//!
//! The order of writes is what makes a resume exact: a VM's step is recorded before its
//! connector call, the call carries the operation id `"{session}/{vm}"`, and the step's end and
//! log line are written together. A step found finished is skipped; a step found running is
//! called again with the same id, which the connector answers without acting twice.

use std::sync::Arc;

use standby_model::state::on_finish;
use standby_model::{
    BackupStatus, MessageSeverity, PlanStatus, RunOutcome, SessionKind, SessionMessage,
    SessionStatus, Timestamp,
};
use standby_store::{SessionEnd, SessionWork, VmStep, VmWork};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::{Connector, EngineContext, EngineError};

/// VSPC's code for an operation cancelled by the user.
const CANCELLED_CODE: u32 = 1050;

fn step_uid(session: Uuid, vm: Uuid) -> Uuid {
    Uuid::new_v5(&session, vm.as_bytes())
}

fn message(
    title: &str,
    description: String,
    ok: bool,
    start: Timestamp,
    end: Timestamp,
) -> SessionMessage {
    SessionMessage {
        title: title.to_owned(),
        description,
        severity: if ok {
            MessageSeverity::Success
        } else {
            MessageSeverity::Failed
        },
        start_time: Some(start),
        end_time: Some(end),
    }
}

/// How the VMs of a session fared.
#[derive(Default)]
struct Tally {
    ok: usize,
    failed: usize,
    skipped_by_cancel: usize,
}

pub(crate) async fn run_session(ctx: &EngineContext, session: Uuid) -> Result<(), EngineError> {
    let work = ctx
        .store
        .session_work(session)
        .await?
        .ok_or(EngineError::SessionNotFound(session))?;
    let connector = ctx.connector(&work.connector)?;
    if ctx.stopping.is_cancelled() {
        return Err(EngineError::Stopping(session));
    }
    tracing::info!(
        session.uid = %work.session_uid,
        plan.uid = %work.plan_uid,
        kind = work.kind.as_str(),
        vms = work.vms.len(),
        "session running"
    );
    match work.kind {
        SessionKind::Failover | SessionKind::Test => fail_over(ctx, connector, work).await,
        SessionKind::Undo => undo(ctx, connector, work).await,
    }
}

/// Runs a script once per session (its log line's title marks it done).
async fn script(
    ctx: &EngineContext,
    connector: &Arc<dyn Connector>,
    work: &SessionWork,
    title: &str,
    suffix: &str,
    command: &str,
) -> Result<bool, EngineError> {
    if command.is_empty() || work.message_titles.iter().any(|t| t == title) {
        return Ok(true);
    }
    let start = Timestamp::now();
    let outcome = connector
        .run_script(
            &format!("{}/{suffix}", work.session_uid),
            work.backup_server_uid,
            command,
        )
        .await?;
    ctx.store
        .append_session_message(
            work.session_uid,
            &message(title, outcome.message, outcome.ok, start, Timestamp::now()),
        )
        .await?;
    Ok(outcome.ok)
}

/// Where a VM step runs: its session, the session's plan, the plan's backup server.
#[derive(Debug, Clone, Copy)]
struct StepPlace {
    session: Uuid,
    plan: Uuid,
    server: Uuid,
}

/// One VM's failover (or undo) step, recorded around the connector call.
async fn vm_step(
    ctx: EngineContext,
    connector: Arc<dyn Connector>,
    place: StepPlace,
    vm: VmWork,
    step: VmStep,
    test: Option<bool>,
) -> Result<bool, EngineError> {
    let StepPlace {
        session,
        plan,
        server,
    } = place;
    let operation = format!("{session}/{}", vm.object_uid);
    let outcome = match (test, step.restore_point_uid) {
        (Some(test), Some(point)) => {
            connector
                .fail_over(&operation, server, vm.object_uid, point, test)
                .await?
        }
        (None, _) => connector.undo(&operation, server, vm.object_uid).await?,
        (Some(_), None) => crate::Outcome {
            ok: false,
            message: "No restore point to fail over to.".into(),
        },
    };
    let end = Timestamp::now();
    let description = match step.restore_point_time {
        Some(at) if test.is_some() && outcome.ok => {
            format!("{} Restore point {}.", outcome.message, at.to_wire())
        }
        _ => outcome.message.clone(),
    };
    let status = if outcome.ok {
        BackupStatus::Success
    } else {
        BackupStatus::Failed
    };
    let kind = if test.is_some() { "failover" } else { "undo" };
    let result = if outcome.ok { "success" } else { "failed" };
    metrics::counter!("standby_vm_operations_total", "kind" => kind, "outcome" => result)
        .increment(1);
    let seconds = (end.ticks() - step.start_time.ticks()).max(0) as f64 / 10_000_000.0;
    metrics::histogram!("standby_vm_operation_duration_seconds", "kind" => kind).record(seconds);
    tracing::info!(
        session.uid = %session,
        plan.uid = %plan,
        vm.uid = %vm.object_uid,
        vm.name = %vm.name,
        kind,
        test = test.unwrap_or(false),
        outcome = result,
        restore_point = step.restore_point_time.map(|t| t.to_wire()).unwrap_or_default(),
        duration_ms = (seconds * 1000.0).round(),
        "vm step finished"
    );
    ctx.store
        .record_vm_end(
            session,
            step.uid,
            status,
            end,
            &message(&vm.name, description, outcome.ok, step.start_time, end),
        )
        .await?;
    Ok(outcome.ok)
}

async fn fail_over(
    ctx: &EngineContext,
    connector: Arc<dyn Connector>,
    work: SessionWork,
) -> Result<(), EngineError> {
    let test = work.kind == SessionKind::Test;
    let session = work.session_uid;
    if !script(
        ctx,
        &connector,
        &work,
        "Pre-failover script",
        "pre",
        &work.pre_failover_command,
    )
    .await?
    {
        return finish(
            ctx,
            &work,
            RunOutcome::FailoverFailed,
            Some("The pre-failover script failed; no VM was started.".into()),
            false,
        )
        .await;
    }
    let boots = Arc::new(Semaphore::new(ctx.settings.max_parallel_boots.max(1)));
    let mut running = JoinSet::new();
    let mut tally = Tally::default();
    let mut cancelled = false;
    let mut stopped = false;
    for vm in work.vms.iter().cloned() {
        // Wait for a boot slot before recording the step, so a step is recorded as running only
        // when it runs.
        let permit = boots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| EngineError::SessionNotFound(session))?;
        // A safe point: steps already started finish below; the rest wait for the next start.
        if ctx.stopping.is_cancelled() {
            stopped = true;
            break;
        }
        let step = match vm.step.clone() {
            Some(step) if step.status != BackupStatus::Running => {
                if step.status == BackupStatus::Success {
                    tally.ok += 1
                } else {
                    tally.failed += 1
                }
                continue;
            }
            Some(step) => step,
            None => {
                if cancelled || ctx.store.cancel_requested(session).await? {
                    cancelled = true;
                    tally.skipped_by_cancel += 1;
                    continue;
                }
                // A retry skips VMs that an earlier run already failed over.
                if connector.is_failed_over(vm.object_uid).await? {
                    let now = Timestamp::now();
                    let note = message(
                        &vm.name,
                        "Already failed over; skipped.".into(),
                        true,
                        now,
                        now,
                    );
                    ctx.store.append_session_message(session, &note).await?;
                    tally.ok += 1;
                    continue;
                }
                let point = ctx
                    .store
                    .newest_restore_point(vm.object_uid, work.requested_point)
                    .await?;
                let step = VmStep {
                    uid: step_uid(session, vm.object_uid),
                    status: BackupStatus::Running,
                    restore_point_uid: point.map(|(uid, _)| uid),
                    restore_point_time: point.map(|(_, at)| at),
                    start_time: Timestamp::now(),
                };
                ctx.store
                    .record_vm_start(session, vm.object_uid, &step)
                    .await?;
                step
            }
        };
        if step.restore_point_uid.is_none() {
            let end = Timestamp::now();
            let why = match work.requested_point {
                Some(at) => format!("No restore point at or before {}.", at.to_wire()),
                None => "The VM has no restore point.".to_owned(),
            };
            ctx.store
                .record_vm_end(
                    session,
                    step.uid,
                    BackupStatus::Failed,
                    end,
                    &message(&vm.name, why, false, step.start_time, end),
                )
                .await?;
            tally.failed += 1;
            continue;
        }
        let delay = vm.boot_delay_seconds;
        let task = vm_step(
            ctx.clone(),
            connector.clone(),
            StepPlace {
                session,
                plan: work.plan_uid,
                server: work.backup_server_uid,
            },
            vm,
            step,
            Some(test),
        );
        running.spawn(async move {
            let result = task.await;
            drop(permit);
            result
        });
        // The delay runs after this VM starts and before the next one does.
        if delay > 0 {
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(u64::from(delay))) => {}
                () = ctx.stopping.cancelled() => {}
            }
        }
    }
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok(Ok(true)) => tally.ok += 1,
            Ok(Ok(false)) => tally.failed += 1,
            Ok(Err(error)) => return Err(error),
            Err(panic) => {
                tracing::error!(%panic, "a VM step task failed");
                tally.failed += 1;
            }
        }
    }
    if stopped {
        return Err(EngineError::Stopping(session));
    }
    if cancelled {
        let message = format!(
            "Cancelled by the user (code {CANCELLED_CODE}): {} VMs were not started; {} failed over, {} failed.",
            tally.skipped_by_cancel, tally.ok, tally.failed
        );
        return finish(ctx, &work, RunOutcome::FailoverFailed, Some(message), true).await;
    }
    if tally.failed > 0 {
        let message = format!(
            "Failover failed for {} of the plan's {} VMs.",
            tally.failed,
            work.vms.len()
        );
        return finish(ctx, &work, RunOutcome::FailoverFailed, Some(message), false).await;
    }
    if ctx.stopping.is_cancelled() {
        return Err(EngineError::Stopping(session));
    }
    if !script(
        ctx,
        &connector,
        &work,
        "Post-failover script",
        "post",
        &work.post_failover_command,
    )
    .await?
    {
        return finish(
            ctx,
            &work,
            RunOutcome::FailoverFailed,
            Some("Every VM failed over, but the post-failover script failed.".into()),
            false,
        )
        .await;
    }
    finish(
        ctx,
        &work,
        RunOutcome::FailoverSucceeded { test },
        None,
        false,
    )
    .await
}

async fn undo(
    ctx: &EngineContext,
    connector: Arc<dyn Connector>,
    work: SessionWork,
) -> Result<(), EngineError> {
    let session = work.session_uid;
    let mut tally = Tally::default();
    let mut pending = Vec::new();
    for vm in work.vms.iter().cloned() {
        match vm.step.clone() {
            Some(step) if step.status != BackupStatus::Running => {
                if step.status == BackupStatus::Success {
                    tally.ok += 1
                } else {
                    tally.failed += 1
                }
            }
            Some(step) => pending.push((vm, step)),
            // Only replicas that are failed over need reverting.
            None if connector.is_failed_over(vm.object_uid).await? => {
                let step = VmStep {
                    uid: step_uid(session, vm.object_uid),
                    status: BackupStatus::Running,
                    restore_point_uid: None,
                    restore_point_time: None,
                    start_time: Timestamp::now(),
                };
                pending.push((vm, step));
            }
            None => {}
        }
    }
    let mut cancelled = false;
    let mut stopped = false;
    for (index, batch) in pending
        .chunks(ctx.settings.undo_batch_size.max(1))
        .enumerate()
    {
        if ctx.store.cancel_requested(session).await? {
            cancelled = true;
            break;
        }
        if index > 0 {
            tokio::select! {
                () = tokio::time::sleep(ctx.settings.undo_batch_interval) => {}
                () = ctx.stopping.cancelled() => {}
            }
        }
        // A safe point between batches.
        if ctx.stopping.is_cancelled() {
            stopped = true;
            break;
        }
        let mut running = JoinSet::new();
        for (vm, mut step) in batch.iter().cloned() {
            // A VM's undo starts with its batch, not when the session began. (A step resumed
            // after a restart keeps its recorded start: recording it again changes nothing.)
            step.start_time = Timestamp::now();
            ctx.store
                .record_vm_start(session, vm.object_uid, &step)
                .await?;
            running.spawn(vm_step(
                ctx.clone(),
                connector.clone(),
                StepPlace {
                    session,
                    plan: work.plan_uid,
                    server: work.backup_server_uid,
                },
                vm,
                step,
                None,
            ));
        }
        while let Some(joined) = running.join_next().await {
            match joined {
                Ok(Ok(true)) => tally.ok += 1,
                Ok(Ok(false)) => tally.failed += 1,
                Ok(Err(error)) => return Err(error),
                Err(panic) => {
                    tracing::error!(%panic, "an undo step task failed");
                    tally.failed += 1;
                }
            }
        }
    }
    if stopped {
        return Err(EngineError::Stopping(session));
    }
    if cancelled {
        let message = format!(
            "Undo cancelled by the user (code {CANCELLED_CODE}); {} VMs reverted.",
            tally.ok
        );
        return finish(ctx, &work, RunOutcome::UndoFailed, Some(message), true).await;
    }
    if tally.failed > 0 {
        let message = format!("Undo failed for {} of the plan's VMs.", tally.failed);
        return finish(ctx, &work, RunOutcome::UndoFailed, Some(message), false).await;
    }
    finish(ctx, &work, RunOutcome::UndoSucceeded, None, false).await
}

async fn finish(
    ctx: &EngineContext,
    work: &SessionWork,
    outcome: RunOutcome,
    message: Option<String>,
    cancelled: bool,
) -> Result<(), EngineError> {
    let running = if work.kind == SessionKind::Undo {
        PlanStatus::InUndoProgress
    } else {
        PlanStatus::InProgress
    };
    let plan_status = on_finish(running, outcome).unwrap_or(PlanStatus::Failed);
    let succeeded = matches!(
        outcome,
        RunOutcome::FailoverSucceeded { .. } | RunOutcome::UndoSucceeded
    );
    let retention = if succeeded {
        ctx.settings.success_retention
    } else {
        ctx.settings.failure_retention
    };
    let now = Timestamp::now();
    let end = SessionEnd {
        plan_status,
        session_status: if succeeded {
            SessionStatus::Success
        } else {
            SessionStatus::Failed
        },
        message,
        action_status: if cancelled {
            "canceled"
        } else if succeeded {
            "succeed"
        } else {
            "failed"
        },
        action_expires_at: now.plus_seconds(retention.as_secs() as i64),
    };
    ctx.store
        .finish_session(work.session_uid, &end, now)
        .await?;
    metrics::counter!("standby_sessions_total", "kind" => work.kind.as_str(), "outcome" => end.action_status).increment(1);
    tracing::info!(session.uid = %work.session_uid, plan.uid = %work.plan_uid, plan.status = %plan_status, "session finished");
    Ok(())
}

//! Running one session, from the start or from wherever an earlier attempt left it.
//!
//! The order of writes is what makes a resume exact: a VM's step is recorded before the
//! connector is asked, the operation's id is the same in every attempt
//! ([`OperationId::vm_step`]), and the step's end and log line are written together. A step
//! found finished is skipped; a step found running asks the connector's `status` first and
//! submits only if the connector never heard of it. Every write names this worker's claim
//! ([`Fence`]): once another worker holds the job, the first refused write stops this session.

use std::sync::Arc;
use std::time::Duration;

use standby_model::state::on_finish;
use standby_model::{
    ActionStatus, BackupStatus, MessageSeverity, PlanStatus, RunOutcome, SessionKind,
    SessionMessage, SessionStatus, Timestamp,
};
use standby_store::{Fence, SessionEnd, SessionWork, VmStep, VmWork};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use standby_fleet::ConnectorSettings;

use crate::connector::{
    Action, Connector, ConnectorError, Operation, OperationId, OperationStatus, ReplicaState,
    ScriptWhen,
};
use crate::{EngineContext, EngineError};

/// VSPC's code for an operation cancelled by the user.
const CANCELLED_CODE: u32 = 1050;
/// The longest single wait on a connector; a step's deadline and a lost lease are checked at
/// least this often.
const LONGEST_WAIT: Duration = Duration::from_secs(30);
/// Backoff between retries of an unavailable host: from the first to the last, doubling.
const FIRST_RETRY: Duration = Duration::from_millis(250);
const LAST_RETRY: Duration = Duration::from_secs(30);

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

/// How this attempt of a session is steered from outside: the claim its writes name, the
/// signal that the claim is gone, and the user's cancel.
#[derive(Clone)]
pub(crate) struct Control {
    pub fence: Fence,
    /// Fired by the heartbeat when the lease is lost: stop at once, write nothing more.
    pub lost: CancellationToken,
    /// Fired when the user cancels: start no more VMs; waits between VMs end early.
    pub cancel: CancellationToken,
}

impl Control {
    fn check(&self, session: Uuid) -> Result<(), EngineError> {
        if self.lost.is_cancelled() {
            Err(EngineError::LostJob(session))
        } else {
            Ok(())
        }
    }
}

/// How the VMs of a session fared.
#[derive(Default)]
struct Tally {
    ok: usize,
    failed: usize,
    skipped_by_cancel: usize,
}

/// Everything one attempt of a session works with.
struct Run<'a> {
    ctx: &'a EngineContext,
    control: &'a Control,
    connector: Arc<dyn Connector>,
    /// The backup server's settings for its connector, handed over with every operation.
    connector_settings: Arc<ConnectorSettings>,
    work: SessionWork,
}

pub(crate) async fn run_session(
    ctx: &EngineContext,
    control: &Control,
    session: Uuid,
) -> Result<(), EngineError> {
    let work = ctx
        .store
        .session_work(session)
        .await?
        .ok_or(EngineError::SessionNotFound(session))?;
    let connector = ctx.connector(&work.connector)?;
    if ctx.stopping.is_cancelled() {
        return Err(EngineError::Stopping(session));
    }
    if work.cancel_requested {
        control.cancel.cancel();
    }
    tracing::info!(
        session.uid = %work.session_uid,
        plan.uid = %work.plan_uid,
        kind = work.kind.as_str(),
        vms = work.vms.len(),
        "session running"
    );
    let run = Run {
        ctx,
        control,
        connector,
        connector_settings: Arc::new(work.connector_settings.clone()),
        work,
    };
    match run.work.kind {
        SessionKind::Failover | SessionKind::Test => run.fail_over().await,
        SessionKind::Undo => run.undo().await,
    }
}

/// Ends a session that used up its attempts, with the reason, as Failed (or UndoFailed).
pub(crate) async fn give_up(
    ctx: &EngineContext,
    fence: Fence,
    session: Uuid,
    reason: String,
) -> Result<(), EngineError> {
    let work = ctx
        .store
        .session_work(session)
        .await?
        .ok_or(EngineError::SessionNotFound(session))?;
    let outcome = if work.kind == SessionKind::Undo {
        RunOutcome::UndoFailed
    } else {
        RunOutcome::FailoverFailed
    };
    finish(ctx, fence, &work, outcome, Some(reason), false).await
}

/// How a step ended, as the engine records it.
struct StepEnd {
    ok: bool,
    message: String,
}

impl StepEnd {
    /// The end an operation's status tells, if it has ended.
    fn from_finished(status: OperationStatus) -> Option<StepEnd> {
        match status {
            OperationStatus::Succeeded { detail } => Some(StepEnd {
                ok: true,
                message: detail,
            }),
            OperationStatus::Failed { reason } | OperationStatus::Cancelled { reason } => {
                Some(StepEnd {
                    ok: false,
                    message: reason,
                })
            }
            OperationStatus::Unknown | OperationStatus::Running => None,
        }
    }
}

/// A single connector call may take at most this much longer than the engine asked it to wait:
/// a host that stops answering mid-call is `Timeout`, not a step stuck forever.
const CALL_SLACK: Duration = Duration::from_secs(10);

/// One connector call, bounded.
async fn call<T>(
    limit: Duration,
    answer: impl std::future::Future<Output = Result<T, ConnectorError>>,
) -> Result<T, ConnectorError> {
    tokio::time::timeout(limit, answer)
        .await
        .unwrap_or_else(|_| {
            Err(ConnectorError::Timeout(format!(
                "no answer within {} s",
                limit.as_secs()
            )))
        })
}

/// How a pause between tries ended.
enum Pause {
    Slept,
    /// The user cancelled the session meanwhile.
    Cancelled,
}

/// Waits `pause` before another try, unless the job is lost (stop at once), the process stops
/// (the step stays recorded as running and is resumed through `status`), or the user cancels.
async fn pause_between_tries(
    ctx: &EngineContext,
    control: &Control,
    session: Uuid,
    pause: Duration,
) -> Result<Pause, EngineError> {
    tokio::select! {
        () = tokio::time::sleep(pause) => Ok(Pause::Slept),
        () = control.lost.cancelled() => Err(EngineError::LostJob(session)),
        () = ctx.stopping.cancelled() => Err(EngineError::Stopping(session)),
        () = control.cancel.cancelled() => Ok(Pause::Cancelled),
    }
}

fn seconds_until(deadline: Timestamp) -> Duration {
    Duration::from_micros(((deadline.ticks() - Timestamp::now().ticks()).max(0) / 10) as u64)
}

fn trimmed(error: &ConnectorError) -> String {
    error.to_string().trim_end_matches('.').to_owned()
}

/// Drives one operation to its end or its deadline: submit (asking `status` first when an
/// earlier try may have reached the host), then wait; `Unavailable` and `Timeout` are retried
/// with backoff, `Rejected` and `Protocol` end the step. Right before anything is sent that
/// could start work on the host, the claim is checked: a worker that lost its job sends nothing.
async fn drive(
    ctx: &EngineContext,
    connector: &dyn Connector,
    control: &Control,
    session: Uuid,
    operation: &Operation,
    mut ask_first: bool,
    deadline: Timestamp,
) -> Result<StepEnd, EngineError> {
    let timeout = ctx.settings.vm_step_timeout;
    let server = operation.server;
    let id = &operation.id;
    let mut submitted = false;
    let mut backoff = FIRST_RETRY;
    let mut last_trouble: Option<ConnectorError> = None;
    loop {
        control.check(session)?;
        let left = seconds_until(deadline);
        if left.is_zero() {
            // It may have ended meanwhile (a step resumed after its deadline): ask once more.
            if let Ok(status) = call(CALL_SLACK, connector.status(server, id)).await
                && let Some(end) = StepEnd::from_finished(status)
            {
                return Ok(end);
            }
            // Best effort: the host may be unreachable, which is often why we are here.
            let cancelled = call(CALL_SLACK, connector.cancel(server, id)).await;
            if let Ok(status) = &cancelled
                && !matches!(status, OperationStatus::Cancelled { .. })
                && let Some(end) = StepEnd::from_finished(status.clone())
            {
                // It finished just before the cancel arrived: that is its end.
                return Ok(end);
            }
            let why = match (&last_trouble, submitted) {
                (Some(error), _) => format!("; last error: {}", trimmed(error)),
                (None, true) => match cancelled {
                    Ok(_) => "; it was still running and was asked to stop".to_owned(),
                    Err(error) => format!(
                        "; it was still running and could not be stopped: {}",
                        trimmed(&error)
                    ),
                },
                (None, false) => String::new(),
            };
            return Ok(StepEnd {
                ok: false,
                message: format!(
                    "The step did not finish within {} s{why}.",
                    timeout.as_secs()
                ),
            });
        }
        let answer = if submitted {
            let wait = left.min(LONGEST_WAIT);
            tokio::select! {
                answer = call(wait + CALL_SLACK, connector.wait(server, id, wait)) => answer,
                () = control.lost.cancelled() => return Err(EngineError::LostJob(session)),
            }
        } else {
            if !ctx.store.holds_job(control.fence).await? {
                control.lost.cancel();
                return Err(EngineError::LostJob(session));
            }
            if ask_first {
                match call(CALL_SLACK, connector.status(server, id)).await {
                    Ok(OperationStatus::Unknown) => {
                        call(CALL_SLACK, connector.submit(operation)).await
                    }
                    other => other,
                }
            } else {
                call(CALL_SLACK, connector.submit(operation)).await
            }
        };
        let trouble = match answer {
            Ok(OperationStatus::Running) => {
                submitted = true;
                last_trouble = None;
                backoff = FIRST_RETRY;
                continue;
            }
            Ok(OperationStatus::Unknown) => {
                // The host forgot an operation it was running (it lost its state): submit anew,
                // after a pause, so a host that answers too early is not flooded.
                submitted = false;
                ask_first = true;
                None
            }
            Ok(status) => {
                if let Some(end) = StepEnd::from_finished(status) {
                    return Ok(end);
                }
                continue;
            }
            Err(error) => match error.retry_after() {
                None => {
                    return Ok(StepEnd {
                        ok: false,
                        message: error.to_string(),
                    });
                }
                Some(retry_after) => {
                    // Whether the call reached the host is unknown: ask before submitting again.
                    tracing::warn!(session.uid = %session, operation = %id, %error, "connector unavailable; retrying");
                    submitted = false;
                    ask_first = true;
                    Some((error, retry_after))
                }
            },
        };
        let retry_after = trouble.as_ref().map_or(Duration::ZERO, |(_, after)| *after);
        let pause = retry_after.max(backoff).min(left);
        backoff = (backoff * 2).min(LAST_RETRY);
        if let Some((error, _)) = trouble {
            last_trouble = Some(error);
        }
        if let Pause::Cancelled = pause_between_tries(ctx, control, session, pause).await? {
            // Never acknowledged by the host; in case a try did reach it, ask it to stop too.
            let _ = call(CALL_SLACK, connector.cancel(server, id)).await;
            let why = last_trouble
                .as_ref()
                .map_or_else(String::new, |error| format!(": {}", trimmed(error)));
            return Ok(StepEnd {
                ok: false,
                message: format!(
                    "Cancelled by the user (code {CANCELLED_CODE}) while the host did not answer{why}."
                ),
            });
        }
    }
}

impl Run<'_> {
    fn session(&self) -> Uuid {
        self.work.session_uid
    }

    fn deadline_from(&self, start: Timestamp) -> Timestamp {
        start.plus_millis(self.ctx.settings.vm_step_timeout.as_millis() as i64)
    }

    /// The user asked to stop (the heartbeat's signal, or the flag read now).
    async fn cancel_requested(&self) -> Result<bool, EngineError> {
        if self.control.cancel.is_cancelled() {
            return Ok(true);
        }
        if self.ctx.store.cancel_requested(self.session()).await? {
            self.control.cancel.cancel();
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether an undo must revert the VM's replica. When the host cannot say, it is reverted
    /// anyway (reverting a replica that is off changes nothing), so an unreachable host makes
    /// the undo fail at the step's deadline instead of leaving a replica running unnoticed.
    async fn needs_undo(&self, vm: Uuid) -> bool {
        match call(
            CALL_SLACK,
            self.connector.replica(self.work.backup_server_uid, vm),
        )
        .await
        {
            Ok(ReplicaState::Running { .. }) => true,
            Ok(ReplicaState::Off) => false,
            Err(error) => {
                tracing::warn!(session.uid = %self.session(), vm.uid = %vm, %error, "replica state unknown; reverting it anyway");
                true
            }
        }
    }

    /// Runs a script once per session (its log line's title marks it done).
    async fn script(
        &self,
        when: ScriptWhen,
        title: &str,
        command: &str,
    ) -> Result<bool, EngineError> {
        if command.is_empty() || self.work.message_titles.iter().any(|t| t == title) {
            return Ok(true);
        }
        let start = Timestamp::now();
        let operation = Operation {
            id: OperationId::script(self.session(), when),
            server: self.work.backup_server_uid,
            action: Action::Script {
                command: command.to_owned(),
            },
            settings: self.connector_settings.clone(),
        };
        // A script leaves no step row, so an earlier attempt may have submitted it: ask first.
        let end = drive(
            self.ctx,
            self.connector.as_ref(),
            self.control,
            self.session(),
            &operation,
            true,
            self.deadline_from(start),
        )
        .await?;
        self.ctx
            .store
            .append_session_message(
                self.control.fence,
                self.session(),
                &message(title, end.message, end.ok, start, Timestamp::now()),
            )
            .await?;
        Ok(end.ok)
    }

    /// A VM's step as a task: `step` is the one recorded by an earlier attempt (or, for undo,
    /// just prepared), `None` for a failover not started yet.
    fn step_task(
        &self,
        vm: VmWork,
        step: Option<VmStep>,
        test: Option<bool>,
        resumed: bool,
    ) -> StepTask {
        StepTask {
            ctx: self.ctx.clone(),
            control: self.control.clone(),
            connector: self.connector.clone(),
            connector_settings: self.connector_settings.clone(),
            session: self.session(),
            plan: self.work.plan_uid,
            server: self.work.backup_server_uid,
            requested_point: self.work.requested_point,
            vm,
            step,
            test,
            resumed,
        }
    }

    async fn fail_over(self) -> Result<(), EngineError> {
        let test = self.work.kind == SessionKind::Test;
        let session = self.session();
        let pre = self.work.pre_failover_command.clone();
        if !self
            .script(ScriptWhen::PreFailover, "Pre-failover script", &pre)
            .await?
        {
            return self
                .finish(
                    RunOutcome::FailoverFailed,
                    Some("The pre-failover script failed; no VM was started.".into()),
                    false,
                )
                .await;
        }
        let boots = Arc::new(Semaphore::new(self.ctx.settings.max_parallel_boots.max(1)));
        let mut running = JoinSet::new();
        let mut tally = Tally::default();
        let mut cancelled = false;
        let mut stopped = false;
        for vm in self.work.vms.iter().cloned() {
            // Wait for a boot slot before recording the step, so a step is recorded as running
            // only when it runs.
            let permit = tokio::select! {
                permit = boots.clone().acquire_owned() => permit.map_err(|_| EngineError::SessionNotFound(session))?,
                () = self.control.lost.cancelled() => return Err(EngineError::LostJob(session)),
            };
            // A safe point: steps already started finish below; the rest wait for the next start.
            if self.ctx.stopping.is_cancelled() {
                stopped = true;
                break;
            }
            self.control.check(session)?;
            let step = match vm.step.clone() {
                Some(step) if step.status != BackupStatus::Running => {
                    if step.status == BackupStatus::Success {
                        tally.ok += 1
                    } else {
                        tally.failed += 1
                    }
                    continue;
                }
                Some(step) => Some(step),
                None => {
                    if cancelled || self.cancel_requested().await? {
                        cancelled = true;
                        tally.skipped_by_cancel += 1;
                        continue;
                    }
                    // Started in its task: the replica check and the step's record.
                    None
                }
            };
            let delay = vm.boot_delay_seconds;
            let resumed = step.is_some();
            let task = self.step_task(vm, step, Some(test), resumed);
            running.spawn(async move {
                let result = task.run().await;
                drop(permit);
                result
            });
            // The delay runs after this VM starts and before the next one does.
            if delay > 0 {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(u64::from(delay))) => {}
                    () = self.ctx.stopping.cancelled() => {}
                    () = self.control.cancel.cancelled() => {}
                    () = self.control.lost.cancelled() => return Err(EngineError::LostJob(session)),
                }
            }
        }
        join_steps(&mut running, &mut tally).await?;
        if stopped {
            return Err(EngineError::Stopping(session));
        }
        if cancelled {
            let message = format!(
                "Cancelled by the user (code {CANCELLED_CODE}): {} VMs were not started; {} failed over, {} failed.",
                tally.skipped_by_cancel, tally.ok, tally.failed
            );
            return self
                .finish(RunOutcome::FailoverFailed, Some(message), true)
                .await;
        }
        if tally.failed > 0 {
            let message = format!(
                "Failover failed for {} of the plan's {} VMs.",
                tally.failed,
                self.work.vms.len()
            );
            return self
                .finish(RunOutcome::FailoverFailed, Some(message), false)
                .await;
        }
        if self.ctx.stopping.is_cancelled() {
            return Err(EngineError::Stopping(session));
        }
        let post = self.work.post_failover_command.clone();
        if !self
            .script(ScriptWhen::PostFailover, "Post-failover script", &post)
            .await?
        {
            return self
                .finish(
                    RunOutcome::FailoverFailed,
                    Some("Every VM failed over, but the post-failover script failed.".into()),
                    false,
                )
                .await;
        }
        self.finish(RunOutcome::FailoverSucceeded { test }, None, false)
            .await
    }

    async fn undo(self) -> Result<(), EngineError> {
        let session = self.session();
        let fence = self.control.fence;
        let mut tally = Tally::default();
        let mut pending = Vec::new();
        for vm in self.work.vms.iter().cloned() {
            match vm.step.clone() {
                Some(step) if step.status != BackupStatus::Running => {
                    if step.status == BackupStatus::Success {
                        tally.ok += 1
                    } else {
                        tally.failed += 1
                    }
                }
                Some(step) => pending.push((vm, step, true)),
                // Only replicas that run need reverting.
                None if self.needs_undo(vm.object_uid).await => {
                    let step = VmStep {
                        uid: step_uid(session, vm.object_uid),
                        status: BackupStatus::Running,
                        restore_point_uid: None,
                        restore_point_time: None,
                        start_time: Timestamp::now(),
                    };
                    pending.push((vm, step, false));
                }
                None => {}
            }
        }
        let mut cancelled = false;
        let mut stopped = false;
        for (index, batch) in pending
            .chunks(self.ctx.settings.undo_batch_size.max(1))
            .enumerate()
        {
            if self.cancel_requested().await? {
                cancelled = true;
                break;
            }
            if index > 0 {
                tokio::select! {
                    () = tokio::time::sleep(self.ctx.settings.undo_batch_interval) => {}
                    () = self.ctx.stopping.cancelled() => {}
                    () = self.control.cancel.cancelled() => {}
                    () = self.control.lost.cancelled() => return Err(EngineError::LostJob(session)),
                }
                if self.cancel_requested().await? {
                    cancelled = true;
                    break;
                }
            }
            // A safe point between batches.
            if self.ctx.stopping.is_cancelled() {
                stopped = true;
                break;
            }
            let mut running = JoinSet::new();
            for (vm, mut step, resumed) in batch.iter().cloned() {
                // A VM's undo starts with its batch, not when the session began. (A step resumed
                // after a restart keeps its recorded start: recording it again changes nothing.)
                if !resumed {
                    step.start_time = Timestamp::now();
                }
                self.ctx
                    .store
                    .record_vm_start(fence, session, vm.object_uid, &step)
                    .await?;
                running.spawn(self.step_task(vm, Some(step), None, resumed).run());
            }
            join_steps(&mut running, &mut tally).await?;
        }
        if stopped {
            return Err(EngineError::Stopping(session));
        }
        if cancelled {
            let message = format!(
                "Undo cancelled by the user (code {CANCELLED_CODE}); {} VMs reverted.",
                tally.ok
            );
            return self
                .finish(RunOutcome::UndoFailed, Some(message), true)
                .await;
        }
        if tally.failed > 0 {
            let message = format!("Undo failed for {} of the plan's VMs.", tally.failed);
            return self
                .finish(RunOutcome::UndoFailed, Some(message), false)
                .await;
        }
        self.finish(RunOutcome::UndoSucceeded, None, false).await
    }

    async fn finish(
        &self,
        outcome: RunOutcome,
        message: Option<String>,
        cancelled: bool,
    ) -> Result<(), EngineError> {
        finish(
            self.ctx,
            self.control.fence,
            &self.work,
            outcome,
            message,
            cancelled,
        )
        .await
    }
}

/// Collects the VM steps of one batch. The first error (a refused write, a lost lease) stops
/// the session: the other steps are dropped with the set, their operations left to the host
/// and to whoever resumes the session.
async fn join_steps(
    running: &mut JoinSet<Result<bool, EngineError>>,
    tally: &mut Tally,
) -> Result<(), EngineError> {
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
    Ok(())
}

/// One VM's failover (`test: Some(_)`) or undo (`None`) step, run in its own task.
struct StepTask {
    ctx: EngineContext,
    control: Control,
    connector: Arc<dyn Connector>,
    connector_settings: Arc<ConnectorSettings>,
    session: Uuid,
    plan: Uuid,
    server: Uuid,
    requested_point: Option<Timestamp>,
    vm: VmWork,
    /// Recorded by an earlier attempt (the connector may know it), or prepared for an undo;
    /// `None`: a failover this task starts.
    step: Option<VmStep>,
    test: Option<bool>,
    /// The step was recorded by an earlier attempt: the connector may know it already.
    resumed: bool,
}

/// How a failover's first moves ended.
enum Begun {
    /// Recorded as running: go on to the host.
    Step(VmStep),
    /// Over already (skipped, or failed before the host was asked): its result.
    Ended(bool),
}

impl StepTask {
    fn deadline_from(&self, start: Timestamp) -> Timestamp {
        start.plus_millis(self.ctx.settings.vm_step_timeout.as_millis() as i64)
    }

    /// Ends a step that never reached the host, with its log line.
    async fn end_early(&self, step: &VmStep, why: String) -> Result<Begun, EngineError> {
        let end = Timestamp::now();
        self.ctx
            .store
            .record_vm_end(
                self.control.fence,
                self.session,
                step.uid,
                BackupStatus::Failed,
                end,
                &message(&self.vm.name, why, false, step.start_time, end),
            )
            .await?;
        Ok(Begun::Ended(false))
    }

    /// A failover not started yet: a retry skips a VM whose replica already runs (asking the
    /// host, retried while it is unavailable, until the deadline); then its restore point is
    /// chosen and the step recorded before the host is asked to do anything.
    async fn begin_failover(&self) -> Result<Begun, EngineError> {
        let vm = self.vm.object_uid;
        let started = Timestamp::now();
        let deadline = self.deadline_from(started);
        let mut backoff = FIRST_RETRY;
        let unreadable = loop {
            self.control.check(self.session)?;
            let error = match call(CALL_SLACK, self.connector.replica(self.server, vm)).await {
                Ok(ReplicaState::Off) => break None,
                Ok(ReplicaState::Running { .. }) => {
                    let now = Timestamp::now();
                    let note = message(
                        &self.vm.name,
                        "Already failed over; skipped.".into(),
                        true,
                        now,
                        now,
                    );
                    self.ctx
                        .store
                        .append_session_message(self.control.fence, self.session, &note)
                        .await?;
                    return Ok(Begun::Ended(true));
                }
                Err(error) => error,
            };
            let left = seconds_until(deadline);
            let Some(retry_after) = error.retry_after() else {
                break Some(format!(
                    "The replica's state could not be read from the host: {}.",
                    trimmed(&error)
                ));
            };
            if left.is_zero() {
                break Some(format!(
                    "The replica's state could not be read from the host within {} s; last error: {}.",
                    self.ctx.settings.vm_step_timeout.as_secs(),
                    trimmed(&error)
                ));
            }
            let pause = retry_after.max(backoff).min(left);
            backoff = (backoff * 2).min(LAST_RETRY);
            if let Pause::Cancelled =
                pause_between_tries(&self.ctx, &self.control, self.session, pause).await?
            {
                break Some(format!(
                    "Cancelled by the user (code {CANCELLED_CODE}) while the host did not answer: {}.",
                    trimmed(&error)
                ));
            }
        };
        let point = match unreadable {
            Some(_) => None,
            None => {
                self.ctx
                    .store
                    .newest_restore_point(vm, self.requested_point)
                    .await?
            }
        };
        let step = VmStep {
            uid: step_uid(self.session, vm),
            status: BackupStatus::Running,
            restore_point_uid: point.map(|(uid, _)| uid),
            restore_point_time: point.map(|(_, at)| at),
            start_time: started,
        };
        self.ctx
            .store
            .record_vm_start(self.control.fence, self.session, vm, &step)
            .await?;
        if let Some(why) = unreadable {
            return self.end_early(&step, why).await;
        }
        if step.restore_point_uid.is_none() {
            let why = match self.requested_point {
                Some(at) => format!("No restore point at or before {}.", at.to_wire()),
                None => "The VM has no restore point.".to_owned(),
            };
            return self.end_early(&step, why).await;
        }
        Ok(Begun::Step(step))
    }

    async fn run(mut self) -> Result<bool, EngineError> {
        let (step, resumed) = match self.step.take() {
            Some(step) => (step, self.resumed),
            None => match self.begin_failover().await? {
                Begun::Step(step) => (step, false),
                Begun::Ended(ok) => return Ok(ok),
            },
        };
        if self.test.is_some() && step.restore_point_uid.is_none() {
            // Recorded without a point by an attempt that died before ending it.
            let why = "The VM has no restore point.".to_owned();
            return Ok(matches!(
                self.end_early(&step, why).await?,
                Begun::Ended(true)
            ));
        }
        let StepTask {
            ctx,
            control,
            connector,
            connector_settings,
            session,
            plan,
            server,
            vm,
            test,
            ..
        } = self;
        let deadline = step
            .start_time
            .plus_millis(ctx.settings.vm_step_timeout.as_millis() as i64);
        let action = match (test, step.restore_point_uid) {
            (Some(test), Some(point)) => Action::FailOver {
                vm: vm.object_uid,
                restore_point: point,
                test,
            },
            (None, _) => Action::Undo { vm: vm.object_uid },
            (Some(_), None) => return Ok(false),
        };
        let operation = Operation {
            id: OperationId::vm_step(session, vm.object_uid),
            server,
            action,
            settings: connector_settings,
        };
        let outcome = drive(
            &ctx,
            connector.as_ref(),
            &control,
            session,
            &operation,
            resumed,
            deadline,
        )
        .await?;
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
        let kind = operation.action.kind();
        let result = if outcome.ok { "success" } else { "failed" };
        metrics::counter!("standby_vm_operations_total", "kind" => kind, "outcome" => result)
            .increment(1);
        let seconds = (end.ticks() - step.start_time.ticks()).max(0) as f64 / 10_000_000.0;
        metrics::histogram!("standby_vm_operation_duration_seconds", "kind" => kind)
            .record(seconds);
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
                control.fence,
                session,
                step.uid,
                status,
                end,
                &message(&vm.name, description, outcome.ok, step.start_time, end),
            )
            .await?;
        Ok(outcome.ok)
    }
}

async fn finish(
    ctx: &EngineContext,
    fence: Fence,
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
            ActionStatus::Canceled
        } else if succeeded {
            ActionStatus::Succeeded
        } else {
            ActionStatus::Failed
        },
        action_expires_at: now.plus_seconds(retention.as_secs() as i64),
    };
    ctx.store
        .finish_session(fence, work.session_uid, &end, now)
        .await?;
    metrics::counter!("standby_sessions_total", "kind" => work.kind.as_str(), "outcome" => end.action_status.as_str()).increment(1);
    tracing::info!(session.uid = %work.session_uid, plan.uid = %work.plan_uid, plan.status = %plan_status, "session finished");
    Ok(())
}

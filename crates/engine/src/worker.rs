//! The worker pool: claim a job, keep its lease alive while the session runs, repeat. Jobs whose
//! lease ran out (their worker died) go back to the queue and are resumed by whoever claims them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use standby_model::Timestamp;
use standby_store::{EngineStore, Fence, Job, LeaseRenewal};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::connector::Registry;
use crate::run::Control;
use crate::{EngineContext, EngineError, EngineSettings, run};

/// A handle on the running engine: wake it when work arrives, stop it at shutdown.
#[derive(Clone)]
pub struct Engine {
    wake: Arc<Notify>,
    stopping: CancellationToken,
    workers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Engine {
    /// Starts the workers. With a single-node store, `recover_all` puts every job a previous
    /// process held back in the queue at once instead of waiting for the leases to run out.
    pub async fn start(
        store: Arc<dyn EngineStore>,
        settings: EngineSettings,
        connectors: Registry,
        recover_all: bool,
    ) -> Result<Engine, standby_store::StoreError> {
        if recover_all {
            let requeued = store.requeue_jobs(None, Timestamp::now()).await?;
            if requeued > 0 {
                tracing::warn!(
                    jobs = requeued,
                    "resuming sessions left running by a previous process"
                );
            }
        }
        let stopping = CancellationToken::new();
        let ctx = EngineContext {
            connectors,
            store,
            settings: Arc::new(settings),
            stopping: stopping.clone(),
        };
        let wake = Arc::new(Notify::new());
        let node = Uuid::now_v7();
        let mut workers = Vec::new();
        for index in 0..ctx.settings.workers.max(1) {
            workers.push(tokio::spawn(work_loop(
                ctx.clone(),
                wake.clone(),
                format!("{node}/{index}"),
            )));
        }
        tokio::spawn(reap_loop(ctx.clone(), wake.clone()));
        Ok(Engine {
            wake,
            stopping,
            workers: Arc::new(Mutex::new(workers)),
        })
    }

    /// New work was queued: one session, so one idle worker is woken (or, when none is idle,
    /// the next to look for work finds it at once). Waking all of them had every idle worker
    /// claim through the store's one writer for each start, and all but one find nothing.
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Stops the engine at a safe point: no job is claimed and no VM step started from now on,
    /// steps in flight finish and are recorded, and each interrupted session's job goes back to
    /// the queue. Waits up to `grace` for that; anything still running then is left to its
    /// lease, as after a crash. Returns whether every worker stopped in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.stopping.cancel();
        self.wake.notify_waiters();
        let workers = std::mem::take(
            &mut *self
                .workers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        tokio::time::timeout(grace, async {
            for worker in workers {
                let _ = worker.await;
            }
        })
        .await
        .is_ok()
    }
}

fn lease_end(settings: &EngineSettings) -> Timestamp {
    Timestamp::now().plus_millis(settings.lease.as_millis() as i64)
}

async fn work_loop(ctx: EngineContext, wake: Arc<Notify>, worker: String) {
    loop {
        let notified = wake.notified();
        if ctx.stopping.is_cancelled() {
            return;
        }
        match ctx
            .store
            .claim_job(&worker, Timestamp::now(), lease_end(&ctx.settings))
            .await
        {
            Ok(Some(job)) => {
                // The wake-up this worker may have used was perhaps for another job (it claims
                // the oldest ready one): pass it on, at the cost of at most one empty claim.
                wake.notify_one();
                if run_job(&ctx, job).await.is_break() {
                    return;
                }
            }
            Ok(None) => {
                tokio::select! {
                    _ = tokio::time::timeout(ctx.settings.poll_interval, notified) => {}
                    () = ctx.stopping.cancelled() => return,
                }
            }
            Err(error) => {
                tracing::error!(%error, "claiming a job failed");
                tokio::time::sleep(ctx.settings.poll_interval).await;
            }
        }
    }
}

/// The pause before attempt `attempts + 1` after an error: `retry_backoff`, doubling, at most a
/// minute.
fn backoff(settings: &EngineSettings, attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    settings
        .retry_backoff
        .saturating_mul(1u32 << doublings)
        .min(Duration::from_secs(60))
}

/// Runs one claimed job's attempt; `Break` when the process is stopping.
async fn run_job(ctx: &EngineContext, job: Job) -> std::ops::ControlFlow<()> {
    use std::ops::ControlFlow::{Break, Continue};
    let session = job.session_uid;
    let fence = job.fence();
    tracing::info!(session.uid = %session, attempt = job.attempts, epoch = job.epoch, "session claimed");
    let resumed = if job.attempts > 1 { "true" } else { "false" };
    metrics::counter!("standby_jobs_claimed_total", "resumed" => resumed).increment(1);
    let max_attempts = i64::from(ctx.settings.max_session_attempts.max(1));
    if job.attempts > max_attempts {
        // Interrupted (a crash, a lost lease) on every attempt so far: never loop.
        let reason = format!(
            "Standby gave up on this session after {max_attempts} attempts; the last one ended with: {}",
            job.last_error
                .as_deref()
                .unwrap_or("the process running it stopped or lost its hold on it")
        );
        settle(ctx, fence, session, reason).await;
        return Continue(());
    }
    let control = Control {
        fence,
        lost: CancellationToken::new(),
        cancel: CancellationToken::new(),
    };
    let heartbeat = tokio::spawn(heartbeat(ctx.clone(), control.clone()));
    let result = run::run_session(ctx, &control, session).await;
    heartbeat.abort();
    match result {
        Ok(()) => Continue(()),
        Err(EngineError::Stopping(_)) => {
            match ctx.store.release_job(fence, Timestamp::now()).await {
                Ok(_) => {
                    tracing::info!(session.uid = %session, "session paused for shutdown; it resumes on the next start")
                }
                Err(error) => {
                    tracing::warn!(session.uid = %session, %error, "releasing a job at shutdown failed; it resumes when its lease runs out")
                }
            }
            Break(())
        }
        Err(error) if error.is_lost_job() => {
            // Another worker holds the job now: it resumes the session. Write nothing more.
            metrics::counter!("standby_sessions_fenced_total").increment(1);
            tracing::warn!(session.uid = %session, epoch = job.epoch, %error, "lost the job; this worker stopped the session");
            Continue(())
        }
        Err(error) if job.attempts >= max_attempts => {
            let reason = format!(
                "Standby gave up on this session after {max_attempts} attempts; the last one ended with: {error}"
            );
            settle(ctx, fence, session, reason).await;
            Continue(())
        }
        Err(error) => {
            let pause = backoff(&ctx.settings, job.attempts);
            tracing::error!(session.uid = %session, attempt = job.attempts, %error, retry_in_ms = pause.as_millis() as u64, "session attempt failed; it will be retried");
            let now = Timestamp::now();
            let run_at = now.plus_millis(pause.as_millis() as i64);
            if let Err(error) = ctx
                .store
                .retry_job(fence, &error.to_string(), run_at, now)
                .await
            {
                // The job stays leased; when the lease runs out it is claimed again.
                tracing::warn!(session.uid = %session, %error, "requeueing a failed attempt failed");
            }
            Continue(())
        }
    }
}

/// Ends a session that used up its attempts.
async fn settle(ctx: &EngineContext, fence: Fence, session: Uuid, reason: String) {
    tracing::error!(session.uid = %session, %reason, "session failed: no attempts left");
    metrics::counter!("standby_sessions_exhausted_total").increment(1);
    if let Err(error) = run::give_up(ctx, fence, session, reason.clone()).await {
        tracing::error!(session.uid = %session, %error, "ending an exhausted session failed");
        // Keep it out of the queue for a while rather than spin on it; the next claim tries again.
        let now = Timestamp::now();
        let _ = ctx
            .store
            .retry_job(fence, &reason, now.plus_seconds(60), now)
            .await;
    }
}

/// Keeps the lease while the session runs. A lost lease fires `control.lost` (the session stops
/// at once); the user's cancel, read on each renewal, fires `control.cancel`.
async fn heartbeat(ctx: EngineContext, control: Control) {
    let every = ctx.settings.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        match ctx
            .store
            .extend_lease(control.fence, lease_end(&ctx.settings))
            .await
        {
            Ok(LeaseRenewal::Held { cancel_requested }) => {
                if cancel_requested {
                    control.cancel.cancel();
                }
            }
            Ok(LeaseRenewal::Lost) => {
                tracing::warn!(job.uid = %control.fence.job, epoch = control.fence.epoch, "lost the lease on a job");
                control.lost.cancel();
                return;
            }
            Err(error) => tracing::warn!(%error, "extending a lease failed"),
        }
    }
}

/// Puts jobs whose worker stopped renewing its lease back in the queue.
async fn reap_loop(ctx: EngineContext, wake: Arc<Notify>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(ctx.settings.lease / 3) => {}
            () = ctx.stopping.cancelled() => return,
        }
        let now = Timestamp::now();
        match ctx.store.requeue_jobs(Some(now), now).await {
            Ok(0) => {}
            Ok(requeued) => {
                tracing::warn!(jobs = requeued, "requeued jobs whose lease expired");
                wake.notify_waiters();
            }
            Err(error) => tracing::warn!(%error, "requeueing expired jobs failed"),
        }
    }
}

//! The worker pool: claim a job, keep its lease alive while the session runs, repeat. Jobs whose
//! lease ran out (their worker died) go back to the queue and are resumed by whoever claims them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use standby_model::Timestamp;
use standby_store::Store;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::sim::{SimConnector, SimSettings};
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
        store: Arc<dyn Store>,
        settings: EngineSettings,
        sim: SimSettings,
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
            sim: Arc::new(SimConnector::new(store.clone(), sim)),
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

    /// New work was queued.
    pub fn notify(&self) {
        self.wake.notify_waiters();
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
                tracing::info!(session.uid = %job.session_uid, attempt = job.attempts, "session claimed");
                let resumed = if job.attempts > 1 { "true" } else { "false" };
                metrics::counter!("standby_jobs_claimed_total", "resumed" => resumed).increment(1);
                let heartbeat = tokio::spawn(heartbeat(ctx.clone(), job.uid, worker.clone()));
                match run::run_session(&ctx, job.session_uid).await {
                    Ok(()) => heartbeat.abort(),
                    Err(EngineError::Stopping(session)) => {
                        heartbeat.abort();
                        match ctx
                            .store
                            .release_job(job.uid, &worker, Timestamp::now())
                            .await
                        {
                            Ok(_) => {
                                tracing::info!(session.uid = %session, "session paused for shutdown; it resumes on the next start")
                            }
                            Err(error) => {
                                tracing::warn!(session.uid = %session, %error, "releasing a job at shutdown failed; it resumes when its lease runs out")
                            }
                        }
                        return;
                    }
                    Err(error) => {
                        // The job stays leased; when the lease runs out it is retried from where it stopped.
                        tracing::error!(session.uid = %job.session_uid, %error, "session interrupted; it will be resumed");
                        heartbeat.abort();
                        tokio::select! {
                            () = tokio::time::sleep(ctx.settings.lease) => {}
                            () = ctx.stopping.cancelled() => return,
                        }
                    }
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

async fn heartbeat(ctx: EngineContext, job: Uuid, worker: String) {
    let every = ctx.settings.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        match ctx
            .store
            .extend_lease(job, &worker, lease_end(&ctx.settings))
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(job.uid = %job, "lost the lease on a job");
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

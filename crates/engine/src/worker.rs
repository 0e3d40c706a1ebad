//! The worker pool: claim a job, keep its lease alive while the session runs, repeat. Jobs whose
//! lease ran out (their worker died) go back to the queue and are resumed by whoever claims them.

use std::sync::Arc;

use standby_model::Timestamp;
use standby_store::Store;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::sim::{SimConnector, SimSettings};
use crate::{EngineContext, EngineSettings, run};

/// A handle on the running engine: wake it when work arrives.
#[derive(Clone)]
pub struct Engine {
    wake: Arc<Notify>,
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
        let ctx = EngineContext {
            sim: Arc::new(SimConnector::new(store.clone(), sim)),
            store,
            settings: Arc::new(settings),
        };
        let wake = Arc::new(Notify::new());
        let node = Uuid::now_v7();
        for index in 0..ctx.settings.workers.max(1) {
            tokio::spawn(work_loop(
                ctx.clone(),
                wake.clone(),
                format!("{node}/{index}"),
            ));
        }
        tokio::spawn(reap_loop(ctx.clone(), wake.clone()));
        Ok(Engine { wake })
    }

    /// New work was queued.
    pub fn notify(&self) {
        self.wake.notify_waiters();
    }
}

fn lease_end(settings: &EngineSettings) -> Timestamp {
    Timestamp::now().plus_millis(settings.lease.as_millis() as i64)
}

async fn work_loop(ctx: EngineContext, wake: Arc<Notify>, worker: String) {
    loop {
        let notified = wake.notified();
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
                if let Err(error) = run::run_session(&ctx, job.session_uid).await {
                    // The job stays leased; when the lease runs out it is retried from where it stopped.
                    tracing::error!(session.uid = %job.session_uid, %error, "session interrupted; it will be resumed");
                    heartbeat.abort();
                    tokio::time::sleep(ctx.settings.lease).await;
                    continue;
                }
                heartbeat.abort();
            }
            Ok(None) => {
                let _ = tokio::time::timeout(ctx.settings.poll_interval, notified).await;
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
        tokio::time::sleep(ctx.settings.lease / 3).await;
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

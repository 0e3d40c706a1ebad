//! `/metrics` in Prometheus text format, and the per-request log line.
//!
//! Series (all prefixed `standby_`): `http_requests_total{method,route,status}`,
//! `http_request_duration_seconds{method,route}`, `idempotent_replays_total`,
//! `throttled_requests_total{scope}`, `logins_total{outcome}`; the engine adds
//! `sessions_total{kind,outcome}`, `vm_operations_total{kind,outcome}`,
//! `vm_operation_duration_seconds{kind}`, `jobs_claimed_total{resumed}` (`resumed="true"`: a
//! retry after a crash or a lost lease); the binary adds
//! `store_query_duration_seconds{statement}`. `jobs{state="queued"|"running"}` is read from the
//! store at each scrape, so every node reports the whole cluster's queue.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (once); later calls return the same handle.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0,
            ];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), &buckets)
                .and_then(|builder| builder.install_recorder())
                .map_err(|error| tracing::error!(%error, "metrics are not available"))
                .ok()
        })
        .clone()
}

/// `GET /metrics`.
pub async fn serve(State(state): State<AppState>) -> Response {
    match state.store.job_counts().await {
        Ok(counts) => {
            metrics::gauge!("standby_jobs", "state" => "queued").set(counts.queued as f64);
            metrics::gauge!("standby_jobs", "state" => "running").set(counts.running as f64);
        }
        // The rest of the page still helps; the gauges keep their last values.
        Err(error) => tracing::warn!(%error, "job counts are not available for /metrics"),
    }
    match install() {
        Some(handle) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            handle.render(),
        )
            .into_response(),
        None => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not available",
        )
            .into_response(),
    }
}

/// Counts and times every request by its route template (never its concrete path, so UIDs do
/// not become label values), and logs one line per request.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    metrics::counter!("standby_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("standby_http_request_duration_seconds", "method" => method.clone(), "route" => route.clone())
        .record(elapsed.as_secs_f64());
    tracing::info!(
        target: "standby::request",
        method = %method,
        route = %route,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        request_id = %request_id,
        "request"
    );
    response
}

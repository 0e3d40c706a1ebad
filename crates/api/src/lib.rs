//! Standby's HTTP surface: the VSPC v3 failover-plan routes, `/api/v3/token`, and the health
//! endpoints, with the middleware that makes them behave like VSPC.

pub mod access;
pub mod actions;
pub mod agents;
pub mod audit;
pub mod auth;
pub mod cache;
mod crash_point;
pub mod docs;
pub mod drills;
pub mod envelope;
pub mod error;
pub mod extensions;
pub mod health;
pub mod identity;
pub mod live;
pub mod location;
pub mod metrics;
pub mod middleware;
pub mod notify;
pub mod openapi;
pub mod params;
pub mod patch;
pub mod reports;
pub mod schedule;
pub mod secrets;
pub mod servers;
pub mod throttle;
pub mod users;
pub mod vspc;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, delete, get, post, put};
use axum::{Router, middleware as axum_middleware};
use standby_store::Store;
use tower_http::trace::TraceLayer;

use crate::error::ApiError;

/// An SMTP relay: `smtp://host:port` (plain), `smtp://host:587?tls=required` (STARTTLS) or
/// `smtps://user:password@host:465`, and the sender address.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub url: String,
    pub from: String,
}

/// Settings the API reads on every request.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// VSPC's `MaxPageSize`: the largest `limit` accepted.
    pub max_page_size: u32,
    /// How long an `X-Request-id` is remembered.
    pub idempotency_window_seconds: i64,
    pub access_token_seconds: i64,
    pub refresh_token_seconds: i64,
    /// A request taking longer than this is answered with 520.
    pub request_timeout: Duration,
    /// What `/asyncActions/config` reports: how long a successful action's result is kept.
    pub action_retention_seconds: u64,
    pub throttle: throttle::ThrottleSettings,
    /// Bytes of serialized read answers kept for the current data generation (0: none).
    pub response_cache_bytes: usize,
    /// `--public-url`: the address clients use (behind a proxy), for `Location` headers.
    pub public_url: Option<String>,
    /// This server speaks HTTPS.
    pub tls: bool,
    /// The listening address, for `Location` when a request names no authority at all.
    pub own_authority: String,
    /// An agent's server is offline once it has not been heard from for this long.
    pub agent_offline_after: Duration,
    /// How long a web console session lasts from its login (an operator's shift by default).
    pub console_session_seconds: i64,
    /// A drill's first retry of a failed undo comes this long after it; each further one
    /// twice as long after the last.
    pub drill_undo_retry: Duration,
    /// A notification's first retry comes this long after a failed attempt; each further one
    /// twice as long after the last (at most an hour apart, for 24 hours).
    pub notification_retry: Duration,
    /// The SMTP relay email channels are sent through.
    pub smtp: Option<SmtpSettings>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            max_page_size: standby_query::Paging::MAX_LIMIT,
            idempotency_window_seconds: 300,
            access_token_seconds: 3600,
            refresh_token_seconds: 48 * 3600,
            request_timeout: Duration::from_secs(60),
            action_retention_seconds: 300,
            throttle: throttle::ThrottleSettings::default(),
            response_cache_bytes: 64 << 20,
            public_url: None,
            tls: false,
            own_authority: "127.0.0.1:1280".to_owned(),
            agent_offline_after: Duration::from_secs(30),
            console_session_seconds: 8 * 3600,
            drill_undo_retry: Duration::from_secs(15),
            notification_retry: Duration::from_secs(5),
            smtp: None,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub settings: Arc<ApiSettings>,
    /// Woken when a session is queued, so a worker picks it up at once.
    pub engine: Option<standby_engine::Engine>,
    pub throttle: Arc<throttle::Throttle>,
    pub responses: Arc<cache::ResponseCache>,
    pub credentials: Arc<identity::CredentialCache>,
    /// Verified against when a login names an unknown user, so timing does not reveal it.
    dummy_hash: Arc<str>,
}

impl AppState {
    pub async fn new(
        store: Arc<dyn Store>,
        settings: ApiSettings,
        engine: Option<standby_engine::Engine>,
    ) -> Result<Self, ApiError> {
        let dummy_hash = secrets::hash_password(secrets::generate_password()?).await?;
        let throttle = Arc::new(throttle::Throttle::new(settings.throttle.clone()));
        Ok(AppState {
            store,
            responses: Arc::new(cache::ResponseCache::new(settings.response_cache_bytes)),
            credentials: Arc::new(identity::CredentialCache::new(
                identity::MAX_KNOWN_CREDENTIALS,
            )),
            settings: Arc::new(settings),
            engine,
            throttle,
            dummy_hash: dummy_hash.into(),
        })
    }
}

/// A path under `/api/v3`, the methods it serves, and their handlers. The methods are listed
/// beside the handlers so that `served_operations` (what the OpenAPI test compares with the
/// document) cannot drift from what `router` registers.
struct Route {
    path: String,
    methods: &'static [&'static str],
    handlers: MethodRouter<AppState>,
}

fn route(
    path: impl Into<String>,
    methods: &'static [&'static str],
    handlers: MethodRouter<AppState>,
) -> Route {
    Route {
        path: path.into(),
        methods,
        handlers,
    }
}

/// The nine VSPC failover-plan operations (idempotent by `X-Request-id`).
fn vspc_routes() -> Vec<Route> {
    let plans = "/infrastructure/backupServers/failoverplans";
    let by_server = "/infrastructure/backupServers/{backupServerUid}/failoverplans";
    vec![
        route(plans, &["GET"], get(vspc::list_plans)),
        route(
            format!("{plans}/objects"),
            &["GET"],
            get(vspc::list_objects),
        ),
        route(
            format!("{plans}/{{planUid}}"),
            &["GET", "PATCH"],
            get(vspc::get_plan).patch(vspc::patch_plan),
        ),
        route(
            format!("{plans}/{{planUid}}/start"),
            &["POST"],
            post(vspc::start_plan),
        ),
        route(
            format!("{plans}/{{planUid}}/undo"),
            &["POST"],
            post(vspc::undo_plan),
        ),
        route(
            format!("{plans}/{{planUid}}/objects"),
            &["GET"],
            get(vspc::list_plan_objects),
        ),
        route(by_server, &["GET"], get(vspc::list_server_plans)),
        route(
            format!("{by_server}/objects"),
            &["GET"],
            get(vspc::list_server_objects),
        ),
    ]
}

/// VSPC async actions and Standby's extensions: authenticated, not idempotent by header.
fn other_protected_routes() -> Vec<Route> {
    vec![
        route("/asyncActions", &["GET"], get(actions::list)),
        route("/asyncActions/config", &["GET"], get(actions::config)),
        route(
            "/asyncActions/{actionId}",
            &["GET", "DELETE"],
            get(actions::get).delete(actions::cancel),
        ),
        route(
            "/asyncActions/{actionId}/result",
            &["GET", "DELETE"],
            get(actions::result).delete(actions::forget),
        ),
        route(
            "/extensions/failoverplans/objects/{objectUid}/restorePoints",
            &["GET"],
            get(extensions::restore_points),
        ),
        route(
            "/extensions/failoverplans/events",
            &["GET"],
            get(extensions::session_events),
        ),
        route(
            "/extensions/failoverplans/{planUid}/preview",
            &["GET"],
            get(extensions::preview),
        ),
        route(
            "/extensions/failoverplans/{planUid}/sessions",
            &["GET"],
            get(extensions::sessions),
        ),
        route(
            "/extensions/failoverplans/{planUid}/targets",
            &["GET", "PUT"],
            get(reports::get_targets).put(reports::put_targets),
        ),
        route(
            "/extensions/failoverplans/{planUid}/rtoTrend",
            &["GET"],
            get(reports::rto_trend),
        ),
        route(
            "/extensions/failoverplans/{planUid}/sessions/{sessionUid}/report",
            &["GET"],
            get(reports::report),
        ),
        route(
            "/extensions/failoverplans/{planUid}/sessions/{sessionUid}/notes",
            &["POST"],
            post(reports::add_note),
        ),
        route(
            "/extensions/webhooks",
            &["GET", "POST"],
            get(notify::list).post(notify::create),
        ),
        route(
            "/extensions/webhooks/{webhookUid}",
            &["DELETE"],
            delete(notify::delete),
        ),
        route(
            "/extensions/webhooks/{webhookUid}/deliveries",
            &["GET"],
            get(notify::deliveries),
        ),
        route(
            "/extensions/drills",
            &["GET", "POST"],
            get(drills::list).post(drills::create),
        ),
        route(
            "/extensions/drills/{drillUid}",
            &["GET", "DELETE"],
            get(drills::get).delete(drills::delete),
        ),
        route(
            "/extensions/drills/{drillUid}/pause",
            &["POST"],
            post(drills::pause),
        ),
        route(
            "/extensions/drills/{drillUid}/resume",
            &["POST"],
            post(drills::resume),
        ),
        route(
            "/extensions/drills/{drillUid}/runs",
            &["POST"],
            post(drills::run_now),
        ),
        route(
            "/extensions/drills/{drillUid}/report",
            &["GET"],
            get(drills::drill_report),
        ),
        route(
            "/extensions/drills/{drillUid}/runs/{runUid}",
            &["GET"],
            get(drills::run_report),
        ),
        route(
            "/extensions/sim/faults",
            &["PUT"],
            put(extensions::sim_fault),
        ),
        route(
            "/extensions/sim/operations",
            &["GET"],
            get(extensions::sim_operations),
        ),
        route("/extensions/audit", &["GET"], get(audit::list)),
        route(
            "/extensions/backupServers",
            &["GET", "POST"],
            get(servers::list).post(servers::add),
        ),
        route(
            "/extensions/backupServers/{backupServerUid}",
            &["GET", "DELETE"],
            get(servers::get).delete(servers::remove),
        ),
        route(
            "/extensions/backupServers/{backupServerUid}/reenroll",
            &["POST"],
            post(servers::reenroll),
        ),
    ]
}

/// What an enrolled `standby agent` calls, with its own credential (see `agents`).
fn agent_routes() -> Vec<Route> {
    let base = "/extensions/agent";
    vec![
        route(
            format!("{base}/inventory"),
            &["PUT"],
            put(agents::inventory),
        ),
        route(
            format!("{base}/heartbeat"),
            &["POST"],
            post(agents::heartbeat),
        ),
        route(format!("{base}/commands"), &["GET"], get(agents::commands)),
        route(format!("{base}/results"), &["POST"], post(agents::results)),
    ]
}

/// Served without a token.
fn public_routes() -> Vec<Route> {
    vec![
        route("/token", &["POST"], post(auth::token)),
        route("/openapi.json", &["GET"], get(openapi::serve)),
        // An agent's enrollment: the token is in the body (see `agents`).
        route("/extensions/agent/enroll", &["POST"], post(agents::enroll)),
    ]
}

/// Every (method, path) served under `/api/v3`, for the test that keeps the OpenAPI document
/// true.
pub fn served_operations() -> Vec<(&'static str, String)> {
    [
        vspc_routes(),
        other_protected_routes(),
        public_routes(),
        agent_routes(),
    ]
    .into_iter()
    .flatten()
    .flat_map(|r| r.methods.iter().map(move |m| (*m, r.path.clone())))
    .collect()
}

fn add_routes(router: Router<AppState>, routes: Vec<Route>) -> Router<AppState> {
    routes
        .into_iter()
        .fold(router, |router, r| router.route(&r.path, r.handlers))
}

/// Every route Standby serves.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// Every route Standby serves, plus `surfaces` (the web console) served beside the API under
/// the same outer layers: request limits, body limit, tracing, absolute `Location` headers.
pub fn router_with(state: AppState, surfaces: Router<AppState>) -> Router {
    let vspc = add_routes(Router::new(), vspc_routes()).route_layer(
        axum_middleware::from_fn_with_state(state.clone(), middleware::idempotency),
    );
    let api = add_routes(Router::new(), public_routes())
        .merge(add_routes(vspc, other_protected_routes()))
        .fallback(|| async { ApiError::not_found("The requested resource was not found.") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() });
    let api = api.layer(axum_middleware::from_fn_with_state(
        state.clone(),
        audit::audit_writes,
    ));
    // Outside the audit layer and after the fallback: every request under /api/v3 (unknown
    // routes and /token included) counts toward its address's limit, and a throttled one is
    // refused before it can write anything.
    let api = api.layer(axum_middleware::from_fn_with_state(
        state.clone(),
        throttle::throttle,
    ));
    let api = api.layer(axum_middleware::from_fn(metrics::track));
    let api = middleware::error_layers(api, state.settings.request_timeout);
    // The enrolled agents' routes: outside the per-address throttle (many agents may share one
    // NAT address, and each keeps a long poll open) and the write audit (heartbeats all day).
    let agent_api = agent_routes()
        .into_iter()
        .fold(Router::new(), |router, r| {
            router.route(&format!("/api/v3{}", r.path), r.handlers)
        })
        .layer(axum_middleware::from_fn(metrics::track));
    let agent_api = middleware::error_layers(agent_api, state.settings.request_timeout);
    Router::new()
        .merge(agent_api)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::serve))
        .merge(docs::router())
        .merge(surfaces)
        .nest("/api/v3", api)
        .fallback(|| async { ApiError::not_found("The requested resource was not found.") })
        .layer(axum_middleware::from_fn_with_state(
            state.clone(),
            location::absolute_locations,
        ))
        .layer(DefaultBodyLimit::max(params::MAX_BODY_BYTES))
        .layer(axum_middleware::from_fn(middleware::request_limits))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

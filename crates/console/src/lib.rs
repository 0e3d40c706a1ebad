//! Standby's web console, served by the same binary at `/`: server-rendered pages over the same
//! store, engine, scoping and roles as the API, and live run views fed by server-sent events.
//!
//! Nothing is loaded from elsewhere (`script-src 'self'`): the pages are askama templates, the
//! assets are compiled in, and every list is a server-side page of the VSPC query language, so
//! 100,000 plans cost the browser one page of rows.
//!
//! Modules, one job each:
//! - `session`: the session cookie, CSRF tokens, sign-in and sign-out ([`session::Operator`]).
//! - `plans`: the plan table with its filters and bulk actions.
//! - `plan`: one plan, its start panel, confirmations, run history and its CSV export.
//! - `live`: run views and their event stream.
//! - `admin`: async actions, backup servers, the audit trail.
//! - `view`: what templates show (times, durations, statuses) and the page frame.
//! - `assets`: the stylesheet and the script, and the security headers of every page.
//! - `throttle`: every page and form counted toward the API's per-address and per-user limits.

mod admin;
mod assets;
mod audit;
mod drills;
mod form;
mod live;
mod plan;
mod plans;
mod session;
mod throttle;
mod view;

use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};
use standby_api::AppState;

/// The console's routes, to be merged beside the API (`standby_api::router_with`).
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/plans") }))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/plans", get(plans::list))
        .route("/plans/bulk", post(plans::bulk))
        .route("/plans/{plan}", get(plan::page))
        .route("/plans/{plan}/start", post(plan::start))
        .route("/plans/{plan}/undo", post(plan::undo))
        .route("/plans/{plan}/runs/{session}", get(plan::run_log))
        .route(
            "/plans/{plan}/runs/{session}/report",
            get(plan::printable_report),
        )
        .route("/plans/{plan}/runs/{session}/notes", post(plan::add_note))
        .route("/plans/{plan}/history.csv", get(plan::history_csv))
        .route("/drills", get(drills::list))
        .route("/drills/new", post(drills::create))
        .route("/drills/{drill}/runs/{run}", get(drills::run))
        .route("/drills/{drill}/{verb}", post(drills::act))
        .route("/live", get(live::page))
        .route("/live/events", get(live::events))
        .route("/actions", get(admin::actions))
        .route("/actions/{action}/cancel", post(admin::cancel_action_form))
        .route("/servers", get(admin::servers))
        .route("/audit", get(admin::audit))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            throttle::throttle,
        ))
        .merge(assets::router())
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                tracing::error!("a console handler panicked");
                view::error_page(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "The server could not complete the request.",
                )
            },
        ))
        .layer(axum::middleware::from_fn(assets::page_headers))
}

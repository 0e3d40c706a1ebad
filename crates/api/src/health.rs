//! `/healthz` (the process answers) and `/readyz` (the store is open and migrated).

use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use crate::AppState;
use crate::envelope::json_response;

pub async fn healthz() -> Response {
    json_response(200, &json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.check_ready().await {
        Ok(()) => json_response(200, &json!({ "status": "ready" })),
        Err(error) => {
            tracing::warn!(%error, "not ready");
            json_response(
                503,
                &json!({ "status": "unavailable", "reason": "the store is not ready" }),
            )
        }
    }
}

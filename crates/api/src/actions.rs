//! VSPC async actions (`/api/v3/asyncActions`): what a start or undo became, and how it went.
//! Visible to the user who started it and to provider-wide users.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};
use standby_model::Timestamp;
use standby_store::{AsyncActionRecord, Scope};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Principal;
use crate::envelope::{empty, json_response, page_of_values};
use crate::error::{ApiError, ApiResult};
use crate::params::{Version, path_uid};

fn info(action: &AsyncActionRecord) -> Value {
    json!({
        "id": action.uid,
        "initiatorUid": action.initiator_uid,
        "actionName": action.action_name,
        "status": action.status,
        "requestBody": action.request_body,
        "queryParameters": action.query_parameters,
    })
}

/// The caller's own actions, or everyone's for provider-wide users.
fn initiator_filter(principal: &Principal) -> Option<Uuid> {
    match principal.scope {
        Scope::All => None,
        Scope::Organization(_) => Some(principal.user_uid),
    }
}

async fn visible_action(
    state: &AppState,
    principal: &Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<AsyncActionRecord> {
    let uid = path_uid("actionId", path)?;
    let action = state.store.get_action(uid, Timestamp::now()).await?;
    match action {
        Some(action) if initiator_filter(principal).is_none_or(|me| me == action.initiator_uid) => {
            Ok(action)
        }
        _ => Err(ApiError::not_found(format!(
            "Async action {uid} was not found."
        ))),
    }
}

/// `GET /asyncActions`
pub async fn list(
    State(state): State<AppState>,
    _version: Version,
    principal: Principal,
) -> ApiResult<Response> {
    principal.require_read()?;
    let actions = state
        .store
        .list_actions(initiator_filter(&principal), Timestamp::now())
        .await?;
    let data: Vec<Value> = actions.iter().map(info).collect();
    let total = data.len() as u64;
    Ok(page_of_values(data, total, 0))
}

/// `GET /asyncActions/config`
pub async fn config(
    State(state): State<AppState>,
    _version: Version,
    principal: Principal,
) -> ApiResult<Response> {
    principal.require_read()?;
    Ok(json_response(
        200,
        &json!({ "data": { "resultRetentionTime": state.settings.action_retention_seconds } }),
    ))
}

/// `GET /asyncActions/{actionId}`
pub async fn get(
    State(state): State<AppState>,
    _version: Version,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    principal.require_read()?;
    let action = visible_action(&state, &principal, path).await?;
    Ok(json_response(200, &json!({ "data": info(&action) })))
}

/// `GET /asyncActions/{actionId}/result`: the body the synchronous call would have answered.
pub async fn result(
    State(state): State<AppState>,
    _version: Version,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    principal.require_read()?;
    let action = visible_action(&state, &principal, path).await?;
    if action.status == "running" {
        return Err(ApiError::cannot_now(
            "The async action is still running; its result is not ready.",
        ));
    }
    let body: Value = action
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or_else(|| json!({"data": {}, "errors": []}));
    Ok(json_response(200, &body))
}

/// `DELETE /asyncActions/{actionId}`: cancels the session behind the action.
pub async fn cancel(
    State(state): State<AppState>,
    _version: Version,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    principal.require_write()?;
    let action = visible_action(&state, &principal, path).await?;
    let Some(session) = action.session_uid else {
        return Err(ApiError::cannot_now(
            "This async action cannot be cancelled.",
        ));
    };
    if action.status != "running" || !state.store.request_cancel(session).await? {
        return Err(ApiError::cannot_now(format!(
            "The async action has already finished ({}).",
            action.status
        )));
    }
    tracing::info!(action.id = %action.uid, user.name = %principal.name, "cancel requested");
    Ok(empty())
}

/// `DELETE /asyncActions/{actionId}/result`: forgets a finished action.
pub async fn forget(
    State(state): State<AppState>,
    _version: Version,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    principal.require_read()?;
    let action = visible_action(&state, &principal, path).await?;
    if !state
        .store
        .forget_action(action.uid, Timestamp::now())
        .await?
    {
        return Err(ApiError::cannot_now("The async action is still running."));
    }
    Ok(empty())
}

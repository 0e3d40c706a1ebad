//! VSPC async actions (`/api/v3/asyncActions`): what a start or undo became, and how it went.
//! Visible to the user who started it and to provider-wide users.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde_json::{Value, json};
use standby_model::Timestamp;
use standby_query::catalog::Columns;
use standby_query::{Catalog, Property, Selection, ValueType};
use standby_store::{AsyncActionRecord, Scope};
use uuid::Uuid;

use crate::AppState;
use crate::access::{ReadAccess, WriteAccess};
use crate::envelope::{empty, json_response, page_of_values};
use crate::error::{ApiError, ApiResult};
use crate::identity::Principal;
use crate::params::{QueryParams, Version, path_uid};

/// `AsyncActionInfo`'s properties, for `select` (actions are not filtered or sorted).
static ACTION_CATALOG: Catalog = Catalog {
    resource: "AsyncActionInfo",
    properties: &[
        Property::new("id", ValueType::Uuid, Columns::NONE),
        Property::new("initiatorUid", ValueType::Uuid, Columns::NONE),
        Property::new("actionName", ValueType::Text, Columns::NONE),
        Property::new("status", ValueType::Text, Columns::NONE),
        Property::new("requestBody", ValueType::Text, Columns::NONE),
        Property::new("queryParameters", ValueType::Text, Columns::NONE),
    ],
    default_order: &[],
};

static CONFIG_CATALOG: Catalog = Catalog {
    resource: "AsyncActionsConfig",
    properties: &[Property::new(
        "resultRetentionTime",
        ValueType::Int,
        Columns::NONE,
    )],
    default_order: &[],
};

fn selection(raw: Option<&str>, catalog: &Catalog, version: Version) -> ApiResult<Selection> {
    let params = QueryParams::parse(raw)?;
    Ok(Selection::parse(params.get("select"), catalog, version.0)?)
}

fn info(action: &AsyncActionRecord) -> Value {
    json!({
        "id": action.uid,
        "initiatorUid": action.initiator_uid,
        "actionName": action.action_name,
        "status": action.status.as_str(),
        "requestBody": action.request_body,
        "queryParameters": action.query_parameters,
    })
}

/// The caller's own actions, or everyone's for provider-wide users.
pub fn initiator_filter(principal: &Principal) -> Option<Uuid> {
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
    find_action(state, principal, path_uid("actionId", path)?).await
}

/// An action the principal may see (their own, or anyone's for provider-wide users).
pub async fn find_action(
    state: &AppState,
    principal: &Principal,
    uid: Uuid,
) -> ApiResult<AsyncActionRecord> {
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
    version: Version,
    ReadAccess(principal): ReadAccess,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let selection = selection(raw.as_deref(), &ACTION_CATALOG, version)?;
    let actions = state
        .store
        .list_actions(initiator_filter(&principal), Timestamp::now())
        .await?;
    let data: Vec<Value> = actions
        .iter()
        .map(|action| selection.project(info(action)))
        .collect();
    let total = data.len() as u64;
    Ok(page_of_values(data, total, 0))
}

/// `GET /asyncActions/config`
pub async fn config(
    State(state): State<AppState>,
    version: Version,
    _access: ReadAccess,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let selection = selection(raw.as_deref(), &CONFIG_CATALOG, version)?;
    let config = json!({ "resultRetentionTime": state.settings.action_retention_seconds });
    Ok(json_response(
        200,
        &json!({ "data": selection.project(config) }),
    ))
}

/// `GET /asyncActions/{actionId}`
pub async fn get(
    State(state): State<AppState>,
    version: Version,
    ReadAccess(principal): ReadAccess,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let selection = selection(raw.as_deref(), &ACTION_CATALOG, version)?;
    let action = visible_action(&state, &principal, path).await?;
    Ok(json_response(
        200,
        &json!({ "data": selection.project(info(&action)) }),
    ))
}

/// `GET /asyncActions/{actionId}/result`: the body the synchronous call would have answered.
/// The contract declares `select` here too; the result's shape depends on the original call,
/// so a `select` is checked for form but the body is returned whole.
pub async fn result(
    State(state): State<AppState>,
    _version: Version,
    ReadAccess(principal): ReadAccess,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    Selection::check_form(QueryParams::parse(raw.as_deref())?.get("select"))?;
    let action = visible_action(&state, &principal, path).await?;
    if !action.status.is_finished() {
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
    WriteAccess(principal): WriteAccess,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let action = visible_action(&state, &principal, path).await?;
    cancel_action(&state, &principal, &action).await?;
    Ok(empty())
}

/// Asks the session behind a running action to stop (the API's DELETE and the console's Cancel).
pub async fn cancel_action(
    state: &AppState,
    principal: &Principal,
    action: &AsyncActionRecord,
) -> ApiResult<()> {
    let Some(session) = action.session_uid else {
        return Err(ApiError::cannot_now(
            "This async action cannot be cancelled.",
        ));
    };
    if action.status.is_finished() || !state.store.request_cancel(session).await? {
        return Err(ApiError::cannot_now(format!(
            "The async action has already finished ({}).",
            action.status
        )));
    }
    tracing::info!(action.id = %action.uid, user.name = %principal.name, "cancel requested");
    Ok(())
}

/// `DELETE /asyncActions/{actionId}/result`: forgets a finished action (a write: read-only
/// credentials may not make anyone's result disappear).
pub async fn forget(
    State(state): State<AppState>,
    _version: Version,
    WriteAccess(principal): WriteAccess,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
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

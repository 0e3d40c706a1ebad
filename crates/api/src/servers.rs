//! `/api/v3/extensions/backupServers`: backup servers with their connector and, for servers
//! whose host runs `standby agent`, its online state, last heartbeat and version. Anyone who may
//! read plans lists the servers in their scope; provider administrators register agent servers,
//! issue new enrollment tokens and remove servers.

use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use standby_model::Timestamp;
use standby_store::Scope;
use standby_store::agents::{ServerRemoval, ServerStatus};
use uuid::Uuid;

use crate::AppState;
use crate::access::{ProviderAdminAccess, ReadAccess, check_write};
use crate::envelope::{json_response, page_of_values};
use crate::error::{ApiError, ApiResult};
use crate::params::{Body, QueryParams, Version, path_uid};

type PathParam = Result<Path<String>, PathRejection>;

/// An enrollment token's life unless the request says otherwise.
pub const DEFAULT_ENROLLMENT_SECONDS: i64 = 24 * 3600;
/// The longest life an enrollment token may be given: 30 days.
pub const MAX_ENROLLMENT_SECONDS: i64 = 30 * 24 * 3600;

/// A server as the list shows it (the CLI prints the same fields).
pub fn server_json(server: &ServerStatus, now: Timestamp, offline_after: Duration) -> Value {
    let agent = server.agent.as_ref();
    // In-process connectors (the sim) are always reachable; an agent's server is online while
    // its agent keeps in touch.
    let online = agent.is_none_or(|agent| agent.online(now, offline_after));
    json!({
        "instanceUid": server.uid,
        "name": server.name,
        "organizationUid": server.organization_uid,
        "organizationName": server.organization_name,
        "connector": server.connector,
        "online": online,
        "lastSeen": agent.and_then(|agent| agent.last_seen),
        "agentVersion": agent.map(|agent| agent.agent_version.as_str()).filter(|v| !v.is_empty()),
        "hostName": agent.map(|agent| agent.host_name.as_str()).filter(|v| !v.is_empty()),
        "enrolled": agent.map(|agent| agent.enrolled_at.is_some()),
        "enrollmentExpires": agent.and_then(|agent| agent.enrollment_expires_at),
    })
}

/// `GET /extensions/backupServers`.
pub async fn list(
    State(state): State<AppState>,
    _version: Version,
    ReadAccess(principal): ReadAccess,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let params = QueryParams::parse(raw.as_deref())?;
    let paging = params.paging(state.settings.max_page_size)?;
    let servers = state.store.agents().servers(principal.scope).await?;
    let now = Timestamp::now();
    let total = servers.len() as u64;
    let data = servers
        .iter()
        .skip(paging.offset as usize)
        .take(paging.limit as usize)
        .map(|server| server_json(server, now, state.settings.agent_offline_after))
        .collect();
    Ok(page_of_values(data, total, paging.offset))
}

/// `GET /extensions/backupServers/{backupServerUid}`.
pub async fn get(
    State(state): State<AppState>,
    _version: Version,
    ReadAccess(principal): ReadAccess,
    path: PathParam,
) -> ApiResult<Response> {
    let uid = path_uid("backupServerUid", path)?;
    let server = state
        .store
        .agents()
        .server(principal.scope, uid)
        .await?
        .ok_or_else(|| not_found(uid))?;
    let body = server_json(
        &server,
        Timestamp::now(),
        state.settings.agent_offline_after,
    );
    Ok(json_response(200, &json!({ "data": body })))
}

fn not_found(uid: Uuid) -> ApiError {
    ApiError::not_found(format!("Backup server {uid} was not found."))
}

fn expiry_of(body: &Value, now: Timestamp) -> ApiResult<Timestamp> {
    let seconds = match body.get("expiresInSeconds") {
        None | Some(Value::Null) => DEFAULT_ENROLLMENT_SECONDS,
        Some(value) => value
            .as_i64()
            .filter(|s| (60..=MAX_ENROLLMENT_SECONDS).contains(s))
            .ok_or_else(|| {
                ApiError::bad_property(
                    "expiresInSeconds",
                    format!(
                        "expiresInSeconds must be a whole number from 60 to {MAX_ENROLLMENT_SECONDS}."
                    ),
                )
            })?,
    };
    Ok(now.plus_millis(seconds * 1000))
}

/// `POST /extensions/backupServers` `{name, organizationUid, expiresInSeconds?}`: registers a
/// backup server whose host will run `standby agent`; answers its one-time enrollment token.
pub async fn add(
    State(state): State<AppState>,
    _version: Version,
    ProviderAdminAccess(admin): ProviderAdminAccess,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    // An administrator's read-only token may list, not change.
    check_write(&admin)?;
    let body = serde_json::Value::Object(crate::params::json_object(&headers, &body, None)?);
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|name| !name.is_empty() && name.chars().count() <= 255)
        .ok_or_else(|| {
            ApiError::bad_property("name", "name must be text of 1 to 255 characters.")
        })?;
    let organization = body
        .get("organizationUid")
        .and_then(Value::as_str)
        .and_then(|text| Uuid::parse_str(text).ok())
        .ok_or_else(|| {
            ApiError::bad_property("organizationUid", "organizationUid must be a UUID.")
        })?;
    let known = state.store.list_organizations().await?;
    if !known.iter().any(|o| o.uid == organization) {
        return Err(ApiError::bad_property(
            "organizationUid",
            format!("Organization {organization} does not exist."),
        ));
    }
    let now = Timestamp::now();
    let expires = expiry_of(&body, now)?;
    let (token, hash) = crate::agents::new_enrollment_token()?;
    let uid = state
        .store
        .agents()
        .add_agent_server(name, organization, &hash, expires, now)
        .await?
        .ok_or_else(|| {
            ApiError::cannot_now(format!("A backup server named '{name}' exists already."))
        })?;
    let server = state
        .store
        .agents()
        .server(Scope::All, uid)
        .await?
        .ok_or_else(|| ApiError::internal("the added server was not found"))?;
    let mut answer = server_json(&server, now, state.settings.agent_offline_after);
    answer["enrollmentToken"] = json!(token);
    Ok(json_response(201, &json!({ "data": answer })))
}

/// `POST /extensions/backupServers/{backupServerUid}/reenroll` `{expiresInSeconds?}`: revokes
/// the agent's credential at once and answers a new enrollment token.
pub async fn reenroll(
    State(state): State<AppState>,
    _version: Version,
    ProviderAdminAccess(admin): ProviderAdminAccess,
    path: PathParam,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    // An administrator's read-only token may list, not change.
    check_write(&admin)?;
    let uid = path_uid("backupServerUid", path)?;
    let body = if body.is_empty() {
        json!({})
    } else {
        serde_json::Value::Object(crate::params::json_object(&headers, &body, None)?)
    };
    let now = Timestamp::now();
    let expires = expiry_of(&body, now)?;
    let agents = state.store.agents();
    let server = agents
        .server(Scope::All, uid)
        .await?
        .ok_or_else(|| not_found(uid))?;
    let (token, hash) = crate::agents::new_enrollment_token()?;
    if !agents.reenroll(uid, &hash, expires).await? {
        return Err(ApiError::cannot_now(format!(
            "Backup server {} is not connected through an agent ({}).",
            server.name, server.connector
        )));
    }
    let server = agents
        .server(Scope::All, uid)
        .await?
        .ok_or_else(|| not_found(uid))?;
    let mut answer = server_json(&server, now, state.settings.agent_offline_after);
    answer["enrollmentToken"] = json!(token);
    Ok(json_response(200, &json!({ "data": answer })))
}

/// `DELETE /extensions/backupServers/{backupServerUid}`: the server with its plans and their
/// history; refused while a session runs on one of its plans.
pub async fn remove(
    State(state): State<AppState>,
    _version: Version,
    ProviderAdminAccess(admin): ProviderAdminAccess,
    path: PathParam,
) -> ApiResult<Response> {
    // An administrator's read-only token may list, not change.
    check_write(&admin)?;
    let uid = path_uid("backupServerUid", path)?;
    match state.store.agents().remove_server(uid).await? {
        ServerRemoval::Removed => Ok(json_response(200, &json!({ "data": null }))),
        ServerRemoval::NotFound => Err(not_found(uid)),
        ServerRemoval::PlansRunning(plans) => Err(ApiError::cannot_now(format!(
            "A session runs on plans of this backup server ({}); remove it when they end.",
            plans.join(", ")
        ))),
    }
}

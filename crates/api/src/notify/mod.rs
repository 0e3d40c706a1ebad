//! Notifications, under `/api/v3/extensions/webhooks`: channels that are told when a run
//! starts, finishes or fails, a VM fails, a target is missed, a drill skips a plan or cannot
//! undo a test, or a backup server goes offline.
//!
//! - `POST /extensions/webhooks` `{url, secret, events}` (a webhook) or `{email, events}` (an
//!   email address, sent through `--smtp-url`); `events` omitted: every event. 201.
//! - `GET /extensions/webhooks`, `DELETE /extensions/webhooks/{webhookUid}`.
//! - `GET /extensions/webhooks/{webhookUid}/deliveries`: the delivery log, newest first.
//!
//! A channel gets the events of what its creator may see: a company's only its own plans and
//! servers. [`dispatcher`] fans events out and delivers them.

pub mod dispatcher;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use standby_model::Timestamp;
use standby_store::Scope;
use standby_store::notifications::{ChannelKind, ChannelRecord, DeliveryRecord, EVENTS};
use uuid::Uuid;

use crate::AppState;
use crate::access::{ReadAccess, WriteAccess};
use crate::envelope::{empty, json_response};
use crate::error::{ApiError, ApiResult};
use crate::params::{Body, QueryParams, Version, path_uid};

type PathParam = Result<Path<String>, PathRejection>;

const MIN_SECRET_CHARS: usize = 16;
const MAX_SECRET_CHARS: usize = 256;
const MAX_TARGET_CHARS: usize = 2_048;

fn channel_json(channel: &ChannelRecord) -> Value {
    // The secret is never shown again.
    json!({
        "instanceUid": channel.uid,
        "kind": channel.kind.as_str(),
        "url": (channel.kind == ChannelKind::Webhook).then_some(&channel.target),
        "email": (channel.kind == ChannelKind::Email).then_some(&channel.target),
        "events": if channel.events.is_empty() { json!(EVENTS) } else { json!(channel.events) },
        "allEvents": channel.events.is_empty(),
        "createdBy": channel.created_by,
        "createdAt": channel.created_at,
        "companyUid": match channel.owner {
            Scope::All => Value::Null,
            Scope::Organization(uid) => json!(uid),
        },
    })
}

fn delivery_json(delivery: &DeliveryRecord) -> Value {
    json!({
        "deliveryUid": delivery.uid,
        "eventUid": delivery.event_uid,
        "event": delivery.event_name,
        "state": delivery.state.as_str(),
        "attempts": delivery.attempts,
        "lastStatus": delivery.last_status,
        "lastError": delivery.last_error,
        "createdAt": delivery.created_at,
        "deliveredAt": delivery.delivered_at,
        "nextAttemptAt": (delivery.state == standby_store::notifications::DeliveryState::Pending)
            .then_some(delivery.next_attempt_at),
    })
}

/// `POST /extensions/webhooks`.
pub async fn create(
    State(state): State<AppState>,
    _version: Version,
    WriteAccess(principal): WriteAccess,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let object =
        crate::params::json_object(&headers, &body, Some(&["url", "email", "secret", "events"]))?;
    // A property that is given must be text: `{"email": {}}` or `null` is not "no email".
    let text = |name: &str| -> ApiResult<Option<&str>> {
        match object.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.trim())),
            Some(_) => Err(ApiError::bad_property(
                name,
                format!("{name} must be text."),
            )),
        }
    };
    let (url, email) = (text("url")?, text("email")?);
    let secret = text("secret")?;
    let (kind, target, secret) = match (url, email) {
        (Some(url), None) => {
            let parsed = reqwest::Url::parse(url)
                .map_err(|_| ApiError::bad_property("url", format!("'{url}' is not a URL.")))?;
            if !matches!(parsed.scheme(), "http" | "https")
                || parsed.host_str().is_none()
                || url.len() > MAX_TARGET_CHARS
            {
                return Err(ApiError::bad_property(
                    "url",
                    "url must be an absolute http or https URL of at most 2,048 characters.",
                ));
            }
            let secret = secret.unwrap_or_default();
            let length = secret.chars().count();
            if !(MIN_SECRET_CHARS..=MAX_SECRET_CHARS).contains(&length) {
                return Err(ApiError::bad_property(
                    "secret",
                    format!(
                        "secret must be {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters: every delivery is signed with it."
                    ),
                ));
            }
            (ChannelKind::Webhook, url.to_owned(), secret.to_owned())
        }
        (None, Some(email)) => {
            if email.len() > 320 || email.parse::<lettre::Address>().is_err() {
                return Err(ApiError::bad_property(
                    "email",
                    format!("'{email}' is not an email address."),
                ));
            }
            if secret.is_some() {
                return Err(ApiError::bad_property(
                    "secret",
                    "An email channel has no secret.",
                ));
            }
            if state.settings.smtp.is_none() {
                return Err(ApiError::cannot_now(
                    "No SMTP relay is configured on this server (--smtp-url): email cannot be sent.",
                ));
            }
            (ChannelKind::Email, email.to_owned(), String::new())
        }
        _ => {
            return Err(ApiError::bad_property(
                "url",
                "Give a webhook's url (with a secret) or an email address, not both or neither.",
            ));
        }
    };
    let events = match object.get("events") {
        None => Vec::new(),
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut names = Vec::with_capacity(items.len());
            for item in items {
                let name = item.as_str().unwrap_or_default();
                if !EVENTS.contains(&name) {
                    return Err(ApiError::bad_property(
                        "events",
                        format!(
                            "'{item}' is not an event; the events are {}.",
                            EVENTS.join(", ")
                        ),
                    ));
                }
                if !names.iter().any(|n: &String| n == name) {
                    names.push(name.to_owned());
                }
            }
            names
        }
        Some(_) => {
            return Err(ApiError::bad_property(
                "events",
                "events must be a non-empty list of event names, or omitted for every event.",
            ));
        }
    };
    let channel = ChannelRecord {
        uid: Uuid::now_v7(),
        owner: principal.scope,
        owner_organization_uid: principal.organization_uid,
        kind,
        target,
        secret,
        events,
        created_by: principal.name.clone(),
        created_at: Timestamp::now(),
    };
    state.store.create_channel(&channel).await?;
    Ok(json_response(
        201,
        &json!({ "data": channel_json(&channel) }),
    ))
}

/// `GET /extensions/webhooks`.
pub async fn list(
    State(state): State<AppState>,
    _version: Version,
    ReadAccess(principal): ReadAccess,
) -> ApiResult<Response> {
    let channels = state.store.list_channels(principal.scope).await?;
    let data: Vec<Value> = channels.iter().map(channel_json).collect();
    Ok(json_response(200, &json!({ "data": data })))
}

async fn visible_channel(state: &AppState, scope: Scope, uid: Uuid) -> ApiResult<ChannelRecord> {
    state
        .store
        .get_channel(scope, uid)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Webhook {uid} was not found.")))
}

/// `DELETE /extensions/webhooks/{webhookUid}`: the channel and its delivery log.
pub async fn delete(
    State(state): State<AppState>,
    _version: Version,
    WriteAccess(principal): WriteAccess,
    path: PathParam,
) -> ApiResult<Response> {
    let uid = path_uid("webhookUid", path)?;
    visible_channel(&state, principal.scope, uid).await?;
    if !state.store.delete_channel(uid).await? {
        return Err(ApiError::not_found(format!("Webhook {uid} was not found.")));
    }
    Ok(empty())
}

/// `GET /extensions/webhooks/{webhookUid}/deliveries[?limit=]`: newest first.
pub async fn deliveries(
    State(state): State<AppState>,
    _version: Version,
    ReadAccess(principal): ReadAccess,
    path: PathParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let uid = path_uid("webhookUid", path)?;
    let params = QueryParams::parse(raw.as_deref())?;
    let paging = params.paging(state.settings.max_page_size)?;
    visible_channel(&state, principal.scope, uid).await?;
    let log = state.store.channel_deliveries(uid, paging.limit).await?;
    let data: Vec<Value> = log.iter().map(delivery_json).collect();
    Ok(json_response(200, &json!({ "data": data })))
}

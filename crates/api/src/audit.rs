//! The audit trail: every write through the API (PATCH, start, undo, cancel, faults) and every
//! login, with who, from where, when, what, and the outcome. Provider administrators read it at
//! `GET /api/v3/extensions/audit` (and with `standby audit`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, RawQuery, Request, State};
use axum::http::Method;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;
use standby_model::Timestamp;
use standby_store::{AuditAction, AuditEntry, AuditLog, AuditOutcome};
use uuid::Uuid;

use crate::AppState;
use crate::access::ProviderAdminAccess;
use crate::envelope::page_of_values;
use crate::error::ApiResult;
use crate::identity::Principal;
use crate::params::{QueryParams, Version};

/// Where the request came from (`unknown` when the server runs without connection info).
#[derive(Debug, Clone)]
pub struct ClientAddress(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(address_of(&parts.extensions)))
    }
}

/// The client's IP address, as audit rows and the throttle name it.
pub fn address_of(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |info| info.0.ip().to_string())
}

/// Names a write by its route: (`plan.start`, target UID).
fn classify(method: &Method, path: &str) -> (AuditAction, Option<String>) {
    // Inside `nest("/api/v3")` the prefix is already stripped; accept both forms.
    let segments: Vec<&str> = path
        .trim_start_matches("/api/v3")
        .trim_start_matches('/')
        .split('/')
        .collect();
    match (method.as_str(), segments.as_slice()) {
        ("PATCH", ["infrastructure", "backupServers", "failoverplans", plan]) => {
            (AuditAction::PlanPatch, Some((*plan).into()))
        }
        (
            "POST",
            [
                "infrastructure",
                "backupServers",
                "failoverplans",
                plan,
                "start",
            ],
        ) => (AuditAction::PlanStart, Some((*plan).into())),
        (
            "POST",
            [
                "infrastructure",
                "backupServers",
                "failoverplans",
                plan,
                "undo",
            ],
        ) => (AuditAction::PlanUndo, Some((*plan).into())),
        ("DELETE", ["asyncActions", action]) => (AuditAction::ActionCancel, Some((*action).into())),
        ("DELETE", ["asyncActions", action, "result"]) => {
            (AuditAction::ActionForget, Some((*action).into()))
        }
        ("PUT", ["extensions", "sim", "faults"]) => (AuditAction::SimFault, None),
        ("POST", ["extensions", "backupServers"]) => (AuditAction::ServerAdd, None),
        ("POST", ["extensions", "backupServers", server, "reenroll"]) => {
            (AuditAction::ServerReenroll, Some((*server).into()))
        }
        ("DELETE", ["extensions", "backupServers", server]) => {
            (AuditAction::ServerRemove, Some((*server).into()))
        }
        ("POST", ["extensions", "drills"]) => (AuditAction::DrillCreate, None),
        ("POST", ["extensions", "webhooks"]) => (AuditAction::WebhookCreate, None),
        ("DELETE", ["extensions", "webhooks", webhook]) => {
            (AuditAction::WebhookDelete, Some((*webhook).into()))
        }
        ("POST", ["extensions", "drills", drill, "pause"]) => {
            (AuditAction::DrillPause, Some((*drill).into()))
        }
        ("POST", ["extensions", "drills", drill, "resume"]) => {
            (AuditAction::DrillResume, Some((*drill).into()))
        }
        ("POST", ["extensions", "drills", drill, "runs"]) => {
            (AuditAction::DrillRun, Some((*drill).into()))
        }
        ("DELETE", ["extensions", "drills", drill]) => {
            (AuditAction::DrillDelete, Some((*drill).into()))
        }
        ("PUT", ["extensions", "failoverplans", plan, "targets"]) => {
            (AuditAction::PlanTargets, Some((*plan).into()))
        }
        (
            "POST",
            [
                "extensions",
                "failoverplans",
                _,
                "sessions",
                session,
                "notes",
            ],
        ) => (AuditAction::SessionNote, Some((*session).into())),
        _ => (AuditAction::Request(format!("{method} {path}")), None),
    }
}

/// Audit rows are bounded whatever a request carries (an unknown route's path can be as long as
/// the URI limit): at most this many characters per field.
const MAX_FIELD_CHARS: usize = 256;

fn bounded(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_FIELD_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Writes an audit record, every field bounded; a failure to record is logged, never turned into
/// the request's failure.
pub async fn record(store: &dyn AuditLog, mut entry: AuditEntry) {
    for field in [&mut entry.actor_name, &mut entry.address, &mut entry.detail] {
        *field = bounded(std::mem::take(field));
    }
    if let AuditAction::Request(request) = &mut entry.action {
        *request = bounded(std::mem::take(request));
    }
    entry.target = entry.target.map(bounded);
    if let Err(error) = store.record_audit(&entry).await {
        tracing::error!(%error, action = %entry.action, "could not write an audit record");
    }
}

/// Audits every write to `/api/v3` (the token endpoint audits logins itself).
pub async fn audit_writes(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    if matches!(method, Method::GET | Method::HEAD | Method::OPTIONS)
        || request.uri().path().ends_with("/token")
        // Audited by its handler, with what the request alone does not say (which server).
        || request.uri().path().ends_with("/extensions/agent/enroll")
    {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let address = address_of(request.extensions());
    // Authenticated by the throttle layer, outside this one; none for a request without a valid
    // credential (its handler answers 401).
    let principal = request.extensions().get::<Principal>().cloned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let (action, target) = classify(&method, &path);
    let detail = match query {
        Some(query) if action == AuditAction::PlanStart => format!("HTTP {status}; {query}"),
        _ => format!("HTTP {status}"),
    };
    record(
        state.store.as_ref(),
        AuditEntry {
            uid: Uuid::now_v7(),
            at: Timestamp::now(),
            actor_uid: principal.as_ref().map(|p| p.user_uid),
            actor_name: principal.map_or_else(|| "anonymous".to_owned(), |p| p.name),
            address,
            action,
            target,
            outcome: AuditOutcome::of_status(status),
            detail,
        },
    )
    .await;
    response
}

/// `GET /api/v3/extensions/audit`: newest first; provider administrators only.
pub async fn list(
    State(state): State<AppState>,
    _version: Version,
    _admin: ProviderAdminAccess,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let params = QueryParams::parse(raw.as_deref())?;
    let paging = params.paging(state.settings.max_page_size)?;
    let page = state.store.list_audit(paging.limit, paging.offset).await?;
    let data: Vec<serde_json::Value> = page
        .items
        .iter()
        .map(|e| {
            json!({
                "instanceUid": e.uid, "time": e.at, "actorUid": e.actor_uid, "actorName": e.actor_name,
                "address": e.address, "action": e.action.as_str(), "target": e.target, "outcome": e.outcome.as_str(), "detail": e.detail,
            })
        })
        .collect();
    Ok(page_of_values(data, page.total, paging.offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_named_by_route() {
        let uid = "4b1a7f0e-0000-4000-8000-000000000000";
        assert_eq!(
            classify(
                &Method::POST,
                &format!("/api/v3/infrastructure/backupServers/failoverplans/{uid}/start")
            ),
            (AuditAction::PlanStart, Some(uid.into()))
        );
        assert_eq!(
            classify(&Method::DELETE, &format!("/api/v3/asyncActions/{uid}")),
            (AuditAction::ActionCancel, Some(uid.into()))
        );
        assert_eq!(
            classify(&Method::POST, "/api/v3/elsewhere"),
            (AuditAction::Request("POST /api/v3/elsewhere".into()), None)
        );
        let (action, _) = classify(&Method::POST, &format!("/api/v3/nope/{}", "x".repeat(8000)));
        assert_eq!(
            bounded(action.to_string()).chars().count(),
            MAX_FIELD_CHARS + 1
        );
        assert_eq!(bounded("short".into()), "short");
    }
}

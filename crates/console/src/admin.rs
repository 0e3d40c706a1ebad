//! Async actions (with cancel), backup servers with their online state, and the audit trail for
//! the provider's administrators: the same reads, scoping and permissions as the API's routes.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use standby_api::AppState;
use standby_api::actions::{cancel_action, find_action, initiator_filter};
use standby_model::Timestamp;
use standby_store::AuditAction;
use uuid::Uuid;

use crate::form::Fields;
use crate::session::{Operator, frame};
use crate::view::{self, Page, PageError, Status, status};

pub struct ActionRow {
    pub uid: Uuid,
    pub name: String,
    pub status: Status,
    pub cancellable: bool,
    pub parameters: String,
}

#[derive(Template)]
#[template(path = "actions.html")]
struct ActionsPage {
    page: Page,
    can_write: bool,
    actions: Vec<ActionRow>,
}

/// `GET /actions`: every start and undo still tracked (the caller's own, or everyone's for
/// provider-wide users), newest first.
pub async fn actions(
    State(state): State<AppState>,
    operator: Operator,
) -> Result<Response, PageError> {
    let mut actions = state
        .store
        .list_actions(initiator_filter(&operator.principal), Timestamp::now())
        .await?;
    // UUIDv7: newest last by value.
    actions.sort_by_key(|action| std::cmp::Reverse(action.uid));
    let rows = actions
        .iter()
        .map(|action| {
            let running = !action.status.is_finished();
            ActionRow {
                uid: action.uid,
                name: action.action_name.clone(),
                status: status(action.status.as_str()),
                cancellable: running && action.session_uid.is_some(),
                parameters: action
                    .query_parameters
                    .iter()
                    .map(|(name, values)| format!("{name}={}", values.join(",")))
                    .collect::<Vec<_>>()
                    .join(" "),
            }
        })
        .collect();
    let page = ActionsPage {
        page: frame(&operator, "Async actions", "actions"),
        can_write: operator.can_write(),
        actions: rows,
    };
    Ok(view::render(StatusCode::OK, &page))
}

/// `POST /actions/{action}/cancel`
pub async fn cancel_action_form(
    State(state): State<AppState>,
    operator: Operator,
    Path(action): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let fields = Fields::from_body(&body);
    operator.check_csrf(&fields)?;
    operator.check_write()?;
    let uid = view::parse_uid(&action, "async action")?;
    let action = find_action(&state, &operator.principal, uid).await?;
    let result = cancel_action(&state, &operator.principal, &action).await;
    crate::audit::record(
        &state,
        &operator,
        AuditAction::ActionCancel,
        action.uid.to_string(),
        "cancel",
        &result,
    )
    .await;
    result?;
    Ok(Redirect::to("/actions").into_response())
}

pub struct ServerRow {
    pub name: String,
    pub company: String,
    pub connector: String,
    pub state: Status,
    pub host: String,
    pub last_seen: String,
}

#[derive(Template)]
#[template(path = "servers.html")]
struct ServersPage {
    page: Page,
    servers: Vec<ServerRow>,
}

/// `GET /servers`
pub async fn servers(
    State(state): State<AppState>,
    operator: Operator,
) -> Result<Response, PageError> {
    let now = Timestamp::now();
    let servers = state
        .store
        .agents()
        .servers(operator.principal.scope)
        .await?;
    let rows = servers
        .into_iter()
        .map(|server| {
            let (state_word, host, last_seen) = match &server.agent {
                // Not an agent's: nothing reports on it, so no state is claimed.
                None => ("Not monitored".to_owned(), String::new(), String::new()),
                Some(agent) => (
                    if agent.enrolled_at.is_none() {
                        "Not enrolled".to_owned()
                    } else if agent.online(now, state.settings.agent_offline_after) {
                        "Online".to_owned()
                    } else {
                        "Offline".to_owned()
                    },
                    agent.host_name.clone(),
                    view::iso_or_empty(agent.last_seen),
                ),
            };
            let shown = match state_word.as_str() {
                "Online" => view::Status {
                    word: state_word,
                    symbol: "✔",
                    tone: "ok",
                },
                "Offline" => view::Status {
                    word: state_word,
                    symbol: "✖",
                    tone: "bad",
                },
                _ => view::Status {
                    word: state_word,
                    symbol: "○",
                    tone: "muted",
                },
            };
            ServerRow {
                name: server.name,
                company: server.organization_name,
                connector: server.connector,
                state: shown,
                host,
                last_seen,
            }
        })
        .collect();
    let page = ServersPage {
        page: frame(&operator, "Backup servers", "servers"),
        servers: rows,
    };
    Ok(view::render(StatusCode::OK, &page))
}

pub struct AuditRow {
    pub at: String,
    pub actor: String,
    pub address: String,
    pub action: String,
    pub target: String,
    pub outcome: Status,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    page: Page,
    rows: Vec<AuditRow>,
    total: u64,
    previous: Option<String>,
    next: Option<String>,
}

const AUDIT_PAGE: u32 = 100;

/// `GET /audit`: provider administrators only, as the API's audit route.
pub async fn audit(
    State(state): State<AppState>,
    operator: Operator,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    if !operator.is_admin() {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Only portal administrators of the provider may read the audit trail.",
        ));
    }
    let offset: u32 = Fields::from_query(raw.as_deref())
        .get("offset")
        .and_then(|text| text.parse().ok())
        .unwrap_or(0);
    let page_of = state.store.list_audit(AUDIT_PAGE, offset).await?;
    let rows = page_of
        .items
        .iter()
        .map(|entry| AuditRow {
            at: view::iso(entry.at),
            actor: entry.actor_name.clone(),
            address: entry.address.clone(),
            action: entry.action.to_string(),
            target: entry.target.clone().unwrap_or_default(),
            outcome: {
                let (symbol, tone) = match entry.outcome.as_str() {
                    "success" => ("✔", "ok"),
                    "refused" => ("▲", "warn"),
                    _ => ("✖", "bad"),
                };
                Status {
                    word: entry.outcome.as_str().to_owned(),
                    symbol,
                    tone,
                }
            },
            detail: entry.detail.clone(),
        })
        .collect();
    let page = AuditPage {
        page: frame(&operator, "Audit trail", "audit"),
        rows,
        total: page_of.total,
        previous: (offset > 0)
            .then(|| format!("/audit?offset={}", offset.saturating_sub(AUDIT_PAGE))),
        next: (u64::from(offset) + u64::from(AUDIT_PAGE) < page_of.total)
            .then(|| format!("/audit?offset={}", offset + AUDIT_PAGE)),
    };
    Ok(view::render(StatusCode::OK, &page))
}

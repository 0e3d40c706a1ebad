//! Scheduled drills: the list with each drill's schedule, next run and newest run, the buttons
//! to pause, resume and run one now, and a run's report plan by plan. The same reads, scoping
//! and permissions as the API's drill routes (`standby_api::drills`); drills are created through
//! the API or `standby drills create`.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;
use standby_api::AppState;
use standby_api::drills::{create_drill, delete_drill, drill_run_report, make_due_now, set_paused};
use standby_store::AuditAction;
use uuid::Uuid;

use crate::form::Fields;
use crate::session::{Operator, frame};
use crate::view::{self, Page, PageError, Status, status};

pub struct DrillRow {
    pub uid: Uuid,
    pub name: String,
    pub schedule: String,
    pub description: String,
    pub time_zone: String,
    pub next_run: String,
    pub ttl: String,
    pub max_vms: u32,
    pub paused: bool,
    /// The newest run: its UID, when it was due and how it stands.
    pub newest: Option<(Uuid, String, Status)>,
}

#[derive(Template)]
#[template(path = "drills.html")]
struct DrillsPage {
    page: Page,
    drills: Vec<DrillRow>,
    can_write: bool,
}

/// `GET /drills`.
pub async fn list(
    State(state): State<AppState>,
    operator: Operator,
) -> Result<Response, PageError> {
    let drills = state.store.list_drills(operator.principal.scope).await?;
    let mut rows = Vec::with_capacity(drills.len());
    for drill in drills {
        let newest = state
            .store
            .drill_runs(drill.uid, 1)
            .await?
            .into_iter()
            .next();
        rows.push(DrillRow {
            uid: drill.uid,
            description: standby_api::schedule::Schedule::parse(&drill.schedule, &drill.time_zone)
                .map(|s| s.describe())
                .unwrap_or_default(),
            name: drill.name,
            schedule: drill.schedule,
            time_zone: drill.time_zone,
            next_run: view::iso_or_empty(drill.next_run_at),
            ttl: view::duration(f64::from(drill.ttl_seconds)),
            max_vms: drill.max_parallel_vms,
            paused: drill.paused,
            newest: newest.map(|run| {
                let undo_failed = run
                    .plans
                    .iter()
                    .any(|p| p.state == standby_store::drills::DrillPlanState::UndoFailed);
                let shown = match (run.finished, undo_failed) {
                    (_, true) => {
                        let mut failed = status("Failed");
                        failed.word = "Undo failed".into();
                        failed
                    }
                    (true, false) => {
                        let mut done = status("Success");
                        done.word = "Finished".into();
                        done
                    }
                    (false, false) => status("Running"),
                };
                (run.uid, view::iso(run.due_at), shown)
            }),
        });
    }
    let page = DrillsPage {
        page: frame(&operator, "Drills", "drills"),
        can_write: operator.check_write().is_ok(),
        drills: rows,
    };
    Ok(view::render(StatusCode::OK, &page))
}

/// `POST /drills/new`: a drill over the plans whose name contains the given text, validated by
/// the API's own rules (the API's message comes back on a 400 page).
pub async fn create(
    State(state): State<AppState>,
    operator: Operator,
    body: Bytes,
) -> Result<Response, PageError> {
    let fields = Fields::from_body(&body);
    operator.check_csrf(&fields)?;
    operator.check_write()?;
    let field = |name: &str| fields.get(name).unwrap_or_default().trim().to_owned();
    let number = |name: &str| -> Result<Value, PageError> {
        let text = field(name);
        if text.is_empty() {
            return Ok(Value::Null);
        }
        text.parse::<u64>().map(Value::from).map_err(|_| {
            PageError::bad_request(format!("{name} must be a whole number, not '{text}'."))
        })
    };
    let plans = field("plans");
    if plans.is_empty() {
        return Err(PageError::bad_request(
            "Name the plans: the drill tests every plan whose name contains this text.",
        ));
    }
    let mut object = serde_json::Map::new();
    object.insert("name".into(), Value::from(field("name")));
    object.insert(
        "filter".into(),
        serde_json::json!([{ "property": "name", "operation": "contains", "collation": "ignorecase", "value": plans }]),
    );
    object.insert("schedule".into(), Value::from(field("schedule")));
    object.insert("timeZone".into(), Value::from(field("timeZone")));
    // An empty number is left out: the API's default (or its "required") applies.
    for name in ["ttlSeconds", "maxParallelVms", "stopAfterFailures"] {
        let value = number(name)?;
        if !value.is_null() {
            object.insert(name.into(), value);
        }
    }
    let result = create_drill(&state, &operator.principal, &object).await;
    let target = result
        .as_ref()
        .map_or_else(|_| field("name"), |drill| drill.uid.to_string());
    crate::audit::record(
        &state,
        &operator,
        AuditAction::DrillCreate,
        target,
        "create",
        &result,
    )
    .await;
    result?;
    Ok(Redirect::to("/drills").into_response())
}

/// `POST /drills/{drill}/{pause|resume|run}`.
pub async fn act(
    State(state): State<AppState>,
    operator: Operator,
    Path((drill, verb)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, PageError> {
    let fields = Fields::from_body(&body);
    operator.check_csrf(&fields)?;
    operator.check_write()?;
    let uid = view::parse_uid(&drill, "drill")?;
    let principal = &operator.principal;
    let (action, result) = match verb.as_str() {
        "pause" => (
            AuditAction::DrillPause,
            set_paused(&state, principal, uid, true).await.map(|_| ()),
        ),
        "resume" => (
            AuditAction::DrillResume,
            set_paused(&state, principal, uid, false).await.map(|_| ()),
        ),
        "run" => (
            AuditAction::DrillRun,
            make_due_now(&state, principal, uid).await.map(|_| ()),
        ),
        "delete" => (
            AuditAction::DrillDelete,
            delete_drill(&state, principal, uid).await,
        ),
        _ => return Err(PageError::not_found("There is no such drill action.")),
    };
    crate::audit::record(&state, &operator, action, uid.to_string(), &verb, &result).await;
    result?;
    Ok(Redirect::to("/drills").into_response())
}

pub struct RunPlanRow {
    pub plan_uid: String,
    pub name: String,
    pub vms: String,
    pub state: Status,
    pub verdict: String,
    pub rto: String,
    pub rpo: String,
    pub undo: String,
    pub overdue: bool,
    pub reason: String,
    pub test_session: String,
}

#[derive(Template)]
#[template(path = "drill_run.html")]
struct DrillRunPage {
    page: Page,
    drill_name: String,
    due: String,
    finished: bool,
    plans: Vec<RunPlanRow>,
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn plan_state(state: &str) -> Status {
    let mut shown = status(match state {
        "undone" => "Success",
        "undoFailed" => "Failed",
        "skipped" => "canceled",
        "pending" => "",
        _ => "Running",
    });
    shown.word = match state {
        "undoDue" => "Up, undo due".into(),
        "undoFailed" => "Undo failed".into(),
        "undone" => "Undone".into(),
        "skipped" => "Skipped".into(),
        "pending" => "Pending".into(),
        "testing" => "Testing".into(),
        "undoing" => "Undoing".into(),
        other => other.into(),
    };
    shown
}

/// `GET /drills/{drill}/runs/{run}`.
pub async fn run(
    State(state): State<AppState>,
    operator: Operator,
    Path((drill, run)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let drill = view::parse_uid(&drill, "drill")?;
    let run = view::parse_uid(&run, "drill run")?;
    let (drill, run, plans) = drill_run_report(&state, &operator.principal, drill, run).await?;
    let rows = plans
        .iter()
        .map(|plan| RunPlanRow {
            plan_uid: text(&plan["planUid"]),
            name: text(&plan["planName"]),
            vms: text(&plan["vms"]),
            state: plan_state(plan["state"].as_str().unwrap_or_default()),
            verdict: text(&plan["testVerdict"]),
            rto: plan["rtoSeconds"]
                .as_f64()
                .map(view::duration)
                .unwrap_or_default(),
            rpo: plan["worstRpoSeconds"]
                .as_f64()
                .map(view::duration)
                .unwrap_or_default(),
            undo: text(&plan["undoAt"]),
            overdue: plan["undoOverdue"] == true,
            reason: text(&plan["reason"]),
            test_session: text(&plan["testSessionUid"]),
        })
        .collect();
    let page = DrillRunPage {
        page: frame(&operator, format!("{}: run", drill.name), "drills"),
        drill_name: drill.name,
        due: view::iso(run.due_at),
        finished: run.finished,
        plans: rows,
    };
    Ok(view::render(StatusCode::OK, &page))
}

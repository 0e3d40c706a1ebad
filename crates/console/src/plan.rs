//! One plan: its VMs in boot order, the start panel (latest or a point in time in a stated zone,
//! the preview of each VM's point, test or production), its run history with achieved RTO, each
//! run's per-VM log, and the history as CSV.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use standby_api::AppState;
use standby_api::extensions::start_preview;
use standby_model::state::{PlanRequest, on_request};
use standby_model::{FailoverPlan, SessionKind, Timestamp, WireEnum};
use standby_query::{Filter, Paging, SortOrder};
use standby_store::catalog::OBJECT_CATALOG;
use standby_store::{ListQuery, SessionHistory};
use time::macros::format_description;
use time::{PrimitiveDateTime, UtcOffset};
use uuid::Uuid;

use crate::form::Fields;
use crate::plans::{PlanRow, kind_label, plan_row, queue_for};
use crate::session::{Operator, frame};
use crate::view::{self, Confirmation, Page, PageError, Status, status};

/// How many runs the plan page lists at once.
const HISTORY_PAGE: u32 = 20;

fn parse_plan_uid(text: &str) -> Result<Uuid, PageError> {
    view::parse_uid(text, "plan")
}

pub async fn visible_plan(
    state: &AppState,
    operator: &Operator,
    uid: Uuid,
) -> Result<FailoverPlan, PageError> {
    state
        .store
        .get_plan(operator.principal.scope, uid)
        .await?
        .ok_or_else(|| PageError::not_found(format!("Failover plan {uid} was not found.")))
}

/// The restore point a start asks for: the latest, or the newest at or before an instant given
/// as a wall-clock time in a stated zone (UTC, or an offset the browser reports for itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointChoice {
    /// `None`: each VM's latest point.
    pub at: Option<Timestamp>,
    /// The fields as given, to fill the form again.
    pub local: String,
    pub zone: String,
}

impl PointChoice {
    pub fn parse(fields: &Fields, now: Timestamp) -> Result<PointChoice, String> {
        let zone = fields.get("tz").unwrap_or("UTC").to_owned();
        let local = fields.get("at").unwrap_or("").to_owned();
        if fields.get("point") != Some("time") {
            return Ok(PointChoice {
                at: None,
                local,
                zone,
            });
        }
        if local.is_empty() {
            return Err("Choose the date and time to fail over to.".into());
        }
        let offset = if zone.eq_ignore_ascii_case("UTC") {
            UtcOffset::UTC
        } else {
            UtcOffset::parse(&zone, format_description!("[offset_hour]:[offset_minute]"))
                .map_err(|_| format!("'{zone}' is not a time zone offset such as +01:00."))?
        };
        let with_seconds = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
        let without_seconds = format_description!("[year]-[month]-[day]T[hour]:[minute]");
        let wall = PrimitiveDateTime::parse(&local, with_seconds)
            .or_else(|_| PrimitiveDateTime::parse(&local, without_seconds))
            .map_err(|_| format!("'{local}' is not a date and time (YYYY-MM-DDTHH:MM)."))?;
        let at = Timestamp::from_datetime(wall.assume_offset(offset));
        if at > now {
            return Err(format!(
                "{} is in the future: a failover can only go back to a point that exists.",
                view::iso(at)
            ));
        }
        Ok(PointChoice {
            at: Some(at),
            local,
            zone,
        })
    }

    fn describe(&self) -> String {
        match self.at {
            None => "each VM's latest restore point".to_owned(),
            Some(at) => format!(
                "each VM's newest restore point at or before {} ({} {})",
                view::iso(at),
                self.local,
                self.zone
            ),
        }
    }

    fn hidden_fields(&self) -> Vec<(String, String)> {
        match self.at {
            None => vec![("point".into(), "latest".into())],
            Some(_) => vec![
                ("point".into(), "time".into()),
                ("at".into(), self.local.clone()),
                ("tz".into(), self.zone.clone()),
            ],
        }
    }
}

pub struct VmRow {
    pub name: String,
    pub host: String,
    pub last_status: Option<Status>,
    pub last_point: String,
    pub last_end: String,
    /// The point a start with the chosen point would restore; empty when none exists.
    pub preview_point: String,
}

pub struct RunRow {
    pub uid: Uuid,
    pub kind: String,
    pub production: bool,
    pub status: Status,
    pub started_by: String,
    pub start: String,
    pub end: String,
    pub duration: String,
    pub requested_point: String,
    pub vms_ok: usize,
    pub vms_failed: usize,
    /// Start to the last VM ready (empty unless every VM came up).
    pub rto: String,
    /// The run judged against the targets it started under.
    pub verdict: Status,
}

/// A verdict as a status word and symbol.
fn verdict_status(verdict: standby_model::Verdict) -> Status {
    let mut shown = status(match verdict {
        standby_model::Verdict::Passed => "Success",
        standby_model::Verdict::PassedWithWarnings | standby_model::Verdict::TargetMissed => {
            "Warning"
        }
        standby_model::Verdict::Failed => "Failed",
        standby_model::Verdict::Running => "Running",
    });
    shown.word = match verdict {
        standby_model::Verdict::PassedWithWarnings => "Passed with warnings".to_owned(),
        standby_model::Verdict::TargetMissed => "Target missed".to_owned(),
        other => other.as_str().to_owned(),
    };
    shown
}

fn run_row(run: &SessionHistory) -> RunRow {
    let measure = standby_api::reports::measure(run);
    let failed = run
        .vms
        .iter()
        .filter(|vm| vm.backup_status == standby_model::BackupStatus::Failed)
        .count();
    let ok = run
        .vms
        .iter()
        .filter(|vm| {
            matches!(
                vm.backup_status,
                standby_model::BackupStatus::Success | standby_model::BackupStatus::Warning
            )
        })
        .count();
    RunRow {
        uid: run.uid,
        kind: kind_label(run.kind).to_owned(),
        production: run.kind == SessionKind::Failover,
        status: if run.end_time.is_some() {
            status(run.status.as_str())
        } else {
            status("Running")
        },
        started_by: run.started_by.clone(),
        start: view::iso(run.start_time),
        end: view::iso_or_empty(run.end_time),
        duration: run
            .end_time
            .map(|end| view::duration(view::seconds(run.start_time, end)))
            .unwrap_or_default(),
        requested_point: run
            .requested_point
            .map_or_else(|| "latest".to_owned(), view::iso),
        vms_ok: ok,
        vms_failed: failed,
        rto: measure.rto_seconds.map(view::duration).unwrap_or_default(),
        verdict: verdict_status(measure.verdict),
    }
}

#[derive(Template)]
#[template(path = "plan.html")]
struct PlanPage {
    page: Page,
    plan: PlanRow,
    busy: bool,
    can_write: bool,
    can_start: bool,
    can_undo: bool,
    last_message: String,
    vms: Vec<VmRow>,
    point_time: bool,
    point_local: String,
    point_zone: String,
    point_error: Option<String>,
    resolved: String,
    preview_missing: usize,
    preview_skew: String,
    preview_oldest: String,
    preview_newest: String,
    runs: Vec<RunRow>,
    runs_total: u64,
    history_previous: Option<String>,
    history_next: Option<String>,
}

/// `GET /plans/{plan}`
pub async fn page(
    State(state): State<AppState>,
    operator: Operator,
    Path(plan): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let uid = parse_plan_uid(&plan)?;
    let fields = Fields::from_query(raw.as_deref());
    let plan = visible_plan(&state, &operator, uid).await?;
    let owners = state.store.plan_owners(&[uid]).await?;
    let row = plan_row(&plan, owners.get(&uid));
    let choice = PointChoice::parse(&fields, Timestamp::now());
    let (choice, point_error) = match choice {
        Ok(choice) => (choice, None),
        Err(message) => (
            PointChoice {
                at: None,
                local: fields.get("at").unwrap_or("").to_owned(),
                zone: fields.get("tz").unwrap_or("UTC").to_owned(),
            },
            Some(message),
        ),
    };
    let preview = start_preview(&state, operator.principal.scope, uid, choice.at).await?;
    let vms = objects_in_boot_order(&state, &operator, uid)
        .await?
        .into_iter()
        .map(|object| {
            let previewed = preview
                .vms
                .iter()
                .find(|vm| vm.instance_uid == object.instance_uid)
                .and_then(|vm| vm.restore_point);
            let session = object.restore_session.as_ref();
            VmRow {
                name: object.name.clone(),
                host: object.host_name.clone(),
                last_status: session.map(|s| status(s.backup_status.as_str())),
                last_point: view::iso_or_empty(session.and_then(|s| s.restore_point_date_time)),
                last_end: view::iso_or_empty(session.and_then(|s| s.end_date_time)),
                preview_point: previewed.map_or_else(String::new, |(_, at)| view::iso(at)),
            }
        })
        .collect();
    let history_offset: u32 = fields
        .get("history")
        .and_then(|text| text.parse().ok())
        .unwrap_or(0);
    let history = state
        .store
        .session_history(uid, HISTORY_PAGE, history_offset)
        .await?;
    let status_now = plan.status;
    let page = PlanPage {
        page: frame(&operator, plan.name.clone(), "plans"),
        busy: status_now.is_busy(),
        can_write: operator.can_write(),
        can_start: on_request(status_now, PlanRequest::Start { test: true }).is_ok(),
        can_undo: on_request(status_now, PlanRequest::Undo).is_ok(),
        last_message: plan
            .last_session
            .as_ref()
            .and_then(|s| s.message.clone())
            .unwrap_or_default(),
        plan: row,
        vms,
        point_time: choice.at.is_some() || fields.get("point") == Some("time"),
        point_local: choice.local.clone(),
        point_zone: choice.zone.clone(),
        point_error,
        resolved: choice.at.map_or_else(
            || "Latest restore point of each VM".to_owned(),
            |at| format!("Resolved to {} (UTC)", view::iso(at)),
        ),
        preview_missing: preview.missing,
        preview_skew: preview
            .skew_seconds()
            .map(view::duration)
            .unwrap_or_default(),
        preview_oldest: view::iso_or_empty(preview.oldest),
        preview_newest: view::iso_or_empty(preview.newest),
        runs: history.items.iter().map(run_row).collect(),
        runs_total: history.total,
        history_previous: (history_offset > 0).then(|| {
            format!(
                "/plans/{uid}?history={}",
                history_offset.saturating_sub(HISTORY_PAGE)
            )
        }),
        history_next: (u64::from(history_offset) + u64::from(HISTORY_PAGE) < history.total)
            .then(|| format!("/plans/{uid}?history={}", history_offset + HISTORY_PAGE)),
    };
    Ok(view::render(StatusCode::OK, &page))
}

pub(crate) async fn objects_in_boot_order(
    state: &AppState,
    operator: &Operator,
    plan: Uuid,
) -> Result<Vec<standby_model::PlanObject>, PageError> {
    let order = state.store.boot_order(plan).await?;
    let mut objects = Vec::with_capacity(order.len());
    let mut offset = 0u32;
    loop {
        let query = ListQuery {
            scope: operator.principal.scope,
            server: None,
            plan: Some(plan),
            filter: Filter::And(Vec::new()),
            order: SortOrder::default_for(&OBJECT_CATALOG),
            paging: Paging { limit: 500, offset },
        };
        let page = state.store.list_objects(&query).await?;
        offset += page.items.len() as u32;
        let done = page.items.is_empty() || u64::from(offset) >= page.total;
        objects.extend(page.items);
        if done {
            break;
        }
    }
    objects.sort_by_key(|object| {
        order
            .iter()
            .position(|uid| *uid == object.instance_uid)
            .unwrap_or(usize::MAX)
    });
    Ok(objects)
}

/// What every plan form's POST checks first: the plan's UID, the form's CSRF token, the
/// operator's write permission, and that the operator may see the plan.
async fn plan_form(
    state: &AppState,
    operator: &Operator,
    plan: &str,
    body: &Bytes,
) -> Result<(Uuid, Fields, FailoverPlan), PageError> {
    let uid = parse_plan_uid(plan)?;
    let fields = Fields::from_body(body);
    operator.check_csrf(&fields)?;
    operator.check_write()?;
    let plan = visible_plan(state, operator, uid).await?;
    Ok((uid, fields, plan))
}

/// `POST /plans/{plan}/start`: a test starts at once; a production failover first shows each
/// VM's point and needs "Confirm".
pub async fn start(
    State(state): State<AppState>,
    operator: Operator,
    Path(plan): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (uid, fields, plan) = plan_form(&state, &operator, &plan, &body).await?;
    let choice = PointChoice::parse(&fields, Timestamp::now()).map_err(PageError::bad_request)?;
    let kind = match fields.get("mode") {
        Some("test") => SessionKind::Test,
        Some("production") => SessionKind::Failover,
        _ => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                "Choose a test or a production failover.",
            ));
        }
    };
    if kind == SessionKind::Failover && fields.get("confirm") != Some("yes") {
        let preview = start_preview(&state, operator.principal.scope, uid, choice.at).await?;
        let heading = format!(
            "Start a production failover of {} ({} VMs)?",
            plan.name,
            preview.vms.len()
        );
        let mut consequence = format!(
            "Each VM's replica is powered on in production from {}. This is not a test: the production network is used.",
            choice.describe()
        );
        if preview.missing > 0 {
            consequence.push_str(&format!(
                " {} VMs have no such restore point and will fail.",
                preview.missing
            ));
        }
        let mut hidden = choice.hidden_fields();
        hidden.push(("mode".into(), "production".into()));
        let confirm = Confirmation {
            page: frame(&operator, heading.clone(), "plans"),
            heading,
            consequence,
            columns: vec!["VM", "Host", "Restore point"],
            rows: preview
                .vms
                .iter()
                .map(|vm| {
                    vec![
                        vm.name.clone(),
                        vm.host_name.clone(),
                        vm.restore_point.map_or_else(
                            || "none: this VM will fail".to_owned(),
                            |(_, at)| view::iso(at),
                        ),
                    ]
                })
                .collect(),
            action_url: format!("/plans/{uid}/start"),
            hidden,
            cancel_url: format!("/plans/{uid}"),
        };
        return Ok(view::render(StatusCode::OK, &confirm));
    }
    queue_for(&state, &operator, uid, kind, choice.at).await?;
    Ok(Redirect::to(&format!("/live?plan={uid}")).into_response())
}

/// `POST /plans/{plan}/undo`: undoing a production failover shows what it discards and needs
/// "Confirm"; undoing a test does not.
pub async fn undo(
    State(state): State<AppState>,
    operator: Operator,
    Path(plan): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (uid, fields, plan) = plan_form(&state, &operator, &plan, &body).await?;
    let production = runs_in_production(&state, uid).await?;
    if production && fields.get("confirm") != Some("yes") {
        let heading = format!(
            "Undo the production failover of {} ({} VMs)?",
            plan.name, plan.objects_count
        );
        let confirm = Confirmation {
            page: frame(&operator, heading.clone(), "plans"),
            heading,
            consequence: "The replicas running in production are powered off, and the changes made on them since the failover are discarded.".to_owned(),
            columns: Vec::new(),
            rows: Vec::new(),
            action_url: format!("/plans/{uid}/undo"),
            hidden: Vec::new(),
            cancel_url: format!("/plans/{uid}"),
        };
        return Ok(view::render(StatusCode::OK, &confirm));
    }
    queue_for(&state, &operator, uid, SessionKind::Undo, None).await?;
    Ok(Redirect::to(&format!("/live?plan={uid}")).into_response())
}

/// Whether undoing the plan would power off replicas running in production: its newest run
/// other than an undo (an undo that failed leaves them running) was a production failover.
pub async fn runs_in_production(state: &AppState, plan: Uuid) -> Result<bool, PageError> {
    let mut offset = 0;
    loop {
        let runs = state.store.session_history(plan, 50, offset).await?;
        if let Some(run) = runs.items.iter().find(|run| run.kind != SessionKind::Undo) {
            return Ok(run.kind == SessionKind::Failover);
        }
        offset += runs.items.len() as u32;
        if runs.items.is_empty() || u64::from(offset) >= runs.total {
            return Ok(false);
        }
    }
}

/// Finds one run of a plan in its history (newest first, searched a page at a time).
pub struct LogVm {
    pub name: String,
    pub status: Status,
    pub point: String,
    pub rpo: String,
    pub ready: String,
    pub start: String,
    pub end: String,
    pub duration: String,
}

pub struct LogLine {
    pub title: String,
    pub description: String,
    pub severity: Status,
    pub start: String,
    pub end: String,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    page: Page,
    plan_uid: Uuid,
    plan_name: String,
    run: RunRow,
    message: String,
    rto: String,
    rto_target: String,
    rto_met: Status,
    rpo: String,
    rpo_target: String,
    rpo_met: Status,
    vms: Vec<LogVm>,
    log: Vec<LogLine>,
    notes: Vec<standby_store::SessionNote>,
    max_note: usize,
}

fn target_words(target: Option<u32>) -> String {
    target.map_or_else(|| "none".to_owned(), |s| view::duration(f64::from(s)))
}

fn met_status(met: Option<bool>) -> Status {
    match met {
        Some(true) => status("Success"),
        Some(false) => {
            let mut missed = status("Failed");
            missed.word = "Missed".into();
            missed
        }
        None => {
            let mut none = status("");
            none.word = "Not judged".into();
            none
        }
    }
}

/// `GET /plans/{plan}/runs/{session}`: one run: its verdict against its targets, each VM's
/// result, point and RPO, its log and its operator notes.
pub async fn run_log(
    State(state): State<AppState>,
    operator: Operator,
    Path((plan, session)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let uid = parse_plan_uid(&plan)?;
    let session = view::parse_uid(&session, "run")?;
    let report =
        standby_api::reports::run_report(&state, operator.principal.scope, uid, session).await?;
    let run = &report.run;
    let measure = &report.measure;
    let page = RunPage {
        page: frame(&operator, format!("{}: run", report.plan_name), "plans"),
        plan_uid: uid,
        plan_name: report.plan_name.clone(),
        message: run.message.clone().unwrap_or_default(),
        rto: measure.rto_seconds.map(view::duration).unwrap_or_default(),
        rto_target: target_words(run.targets.rto_seconds),
        rto_met: met_status(measure.rto_met),
        rpo: measure
            .worst_rpo_seconds
            .map(view::duration)
            .unwrap_or_default(),
        rpo_target: target_words(run.targets.rpo_seconds),
        rpo_met: met_status(measure.rpo_met),
        vms: run
            .vms
            .iter()
            .zip(&measure.vms)
            .map(|(vm, figures)| LogVm {
                name: vm.name.clone(),
                status: status(vm.backup_status.as_str()),
                point: view::iso_or_empty(vm.restore_point_time),
                rpo: figures.rpo_seconds.map(view::duration).unwrap_or_default(),
                ready: figures
                    .time_to_ready_seconds
                    .map(view::duration)
                    .unwrap_or_default(),
                start: view::iso(vm.start_time),
                end: view::iso_or_empty(vm.end_time),
                duration: vm
                    .end_time
                    .map(|end| view::duration(view::seconds(vm.start_time, end)))
                    .unwrap_or_default(),
            })
            .collect(),
        log: report
            .log
            .iter()
            .map(|m| LogLine {
                title: m.title.clone(),
                description: m.description.clone(),
                severity: status(m.severity.as_str()),
                start: view::iso_or_empty(m.start_time),
                end: view::iso_or_empty(m.end_time),
            })
            .collect(),
        notes: report.notes.clone(),
        max_note: standby_api::reports::MAX_NOTE_CHARS,
        run: run_row(run),
    };
    Ok(view::render(StatusCode::OK, &page))
}

/// `GET /plans/{plan}/runs/{session}/report`: the run's printable report, the page the API
/// serves at `.../report?format=html`.
pub async fn printable_report(
    State(state): State<AppState>,
    operator: Operator,
    Path((plan, session)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let uid = parse_plan_uid(&plan)?;
    let session = view::parse_uid(&session, "run")?;
    let report =
        standby_api::reports::run_report(&state, operator.principal.scope, uid, session).await?;
    Ok(view::render(
        StatusCode::OK,
        &standby_api::reports::ReportPage::of(&report),
    ))
}

/// `POST /plans/{plan}/runs/{session}/notes`: adds an operator note, then shows the run again.
pub async fn add_note(
    State(state): State<AppState>,
    operator: Operator,
    Path((plan, session)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, PageError> {
    let (uid, fields, _) = plan_form(&state, &operator, &plan, &body).await?;
    let session = view::parse_uid(&session, "run")?;
    let text = fields.get("text").unwrap_or_default().trim().to_owned();
    let length = text.chars().count();
    if length == 0 || length > standby_api::reports::MAX_NOTE_CHARS {
        return Err(PageError::bad_request(format!(
            "A note is 1 to {} characters (this one is {length}).",
            standby_api::reports::MAX_NOTE_CHARS
        )));
    }
    let result = async {
        if state.store.plan_session(uid, session).await?.is_none() {
            return Err(standby_api::error::ApiError::not_found(format!(
                "Run {session} of this plan was not found."
            )));
        }
        Ok(state
            .store
            .add_session_note(session, &operator.principal.name, &text, Timestamp::now())
            .await?)
    }
    .await;
    crate::audit::record(
        &state,
        &operator,
        standby_store::AuditAction::SessionNote,
        session.to_string(),
        "note",
        &result,
    )
    .await;
    result?;
    Ok(Redirect::to(&format!("/plans/{uid}/runs/{session}#notes")).into_response())
}

/// `GET /plans/{plan}/history.csv`: every run of the plan, one line per VM of each run.
pub async fn history_csv(
    State(state): State<AppState>,
    operator: Operator,
    Path(plan): Path<String>,
) -> Result<Response, PageError> {
    let uid = parse_plan_uid(&plan)?;
    let plan = visible_plan(&state, &operator, uid).await?;
    let mut csv = standby_api::reports::csv_line(
        &[
            "plan",
            "run",
            "kind",
            "status",
            "started by",
            "requested point",
            "run start",
            "run end",
            "run seconds",
            "vm",
            "vm status",
            "restore point",
            "vm start",
            "vm end",
            "vm seconds",
        ]
        .map(str::to_owned),
    );
    let seconds = |start: Timestamp, end: Option<Timestamp>| {
        end.map_or_else(String::new, |end| {
            format!("{:.1}", view::seconds(start, end))
        })
    };
    let mut offset = 0;
    loop {
        let page = state.store.session_history(uid, 200, offset).await?;
        for run in &page.items {
            let run_fields = [
                plan.name.clone(),
                run.uid.to_string(),
                run.kind.as_str().to_owned(),
                if run.end_time.is_some() {
                    run.status.as_str().to_owned()
                } else {
                    "Running".to_owned()
                },
                run.started_by.clone(),
                run.requested_point
                    .map_or_else(|| "latest".to_owned(), view::iso),
                view::iso(run.start_time),
                view::iso_or_empty(run.end_time),
                seconds(run.start_time, run.end_time),
            ];
            if run.vms.is_empty() {
                let mut line = run_fields.to_vec();
                line.extend(std::iter::repeat_n(String::new(), 6));
                csv.push_str(&standby_api::reports::csv_line(&line));
            }
            for vm in &run.vms {
                let mut line = run_fields.to_vec();
                line.extend([
                    vm.name.clone(),
                    vm.backup_status.as_str().to_owned(),
                    view::iso_or_empty(vm.restore_point_time),
                    view::iso(vm.start_time),
                    view::iso_or_empty(vm.end_time),
                    seconds(vm.start_time, vm.end_time),
                ]);
                csv.push_str(&standby_api::reports::csv_line(&line));
            }
        }
        offset += page.items.len() as u32;
        if page.items.is_empty() || u64::from(offset) >= page.total {
            break;
        }
    }
    let file = format!(
        "attachment; filename=\"standby-runs-{}.csv\"",
        plan.instance_uid
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, file),
        ],
        csv,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(query: &str) -> Result<PointChoice, String> {
        let now = Timestamp::parse("2026-12-04T12:00:00Z").unwrap();
        PointChoice::parse(&Fields::from_query(Some(query)), now)
    }

    #[test]
    fn a_point_in_time_is_resolved_in_its_zone() {
        assert_eq!(choice("point=latest").unwrap().at, None);
        let utc = choice("point=time&at=2026-12-03T10:00&tz=UTC").unwrap();
        assert_eq!(utc.at, Timestamp::parse("2026-12-03T10:00:00Z").ok());
        let local = choice("point=time&at=2026-12-03T10:00:30&tz=%2B02:00").unwrap();
        assert_eq!(local.at, Timestamp::parse("2026-12-03T08:00:30Z").ok());
        assert!(
            choice("point=time&at=2026-12-05T00:00&tz=UTC")
                .unwrap_err()
                .contains("future")
        );
        assert!(
            choice("point=time&at=yesterday")
                .unwrap_err()
                .contains("not a date")
        );
        assert!(
            choice("point=time&at=2026-12-03T10:00&tz=Mars")
                .unwrap_err()
                .contains("offset")
        );
        assert!(choice("point=time").unwrap_err().contains("Choose"));
    }
}

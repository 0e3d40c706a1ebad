//! Recovery targets and run reports, under `/api/v3/extensions/failoverplans/{planUid}`:
//!
//! - `GET`/`PUT .../targets`: the plan's RTO and RPO targets, `{rtoSeconds, rpoSeconds}`.
//! - `GET .../sessions/{sessionUid}/report`: a run's report as JSON, `?format=html` (a printable
//!   page) or `?format=csv` (one line per VM).
//! - `POST .../sessions/{sessionUid}/notes`: an operator's note on a run, `{text}`.
//! - `GET .../rtoTrend`: achieved RTO and RPO of the plan's recent runs against their targets,
//!   oldest first, as JSON or `?format=csv`.
//!
//! Every figure comes from [`standby_model::measure_run`] over what the run recorded, so the
//! report, the trend, the console and the notifications judge a run the same way.

use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use standby_model::{
    RecoveryTargets, RunFacts, RunMeasure, SessionKind, SessionMessage, Timestamp, VmFacts,
    WireEnum, measure_run,
};
use standby_store::{Scope, SessionHistory, SessionNote};
use uuid::Uuid;

use crate::AppState;
use crate::access::{ReadAccess, WriteAccess};
use crate::envelope::json_response;
use crate::error::{ApiError, ApiResult};
use crate::extensions::seconds_between;
use crate::params::{Body, QueryParams, Version, path_uid};

type PathParams = Result<Path<(String, String)>, PathRejection>;
type PathParam = Result<Path<String>, PathRejection>;

/// The runs a trend covers by default, and at most.
const TREND_DEFAULT: u32 = 50;
const TREND_MAX: u32 = 500;

/// Everything a run's report shows.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub plan_uid: Uuid,
    pub plan_name: String,
    pub server_name: String,
    pub company_name: String,
    pub run: SessionHistory,
    pub measure: RunMeasure,
    pub log: Vec<SessionMessage>,
    pub notes: Vec<SessionNote>,
    /// The drill that started it, if one did.
    pub drill: Option<standby_store::drills::SessionDrill>,
}

/// How a run is judged: its recorded facts through [`measure_run`].
pub fn measure(run: &SessionHistory) -> RunMeasure {
    measure_run(&RunFacts {
        kind: run.kind,
        status: run.status,
        start_time: run.start_time,
        end_time: run.end_time,
        targets: run.targets,
        vms: run
            .vms
            .iter()
            .map(|vm| VmFacts {
                status: vm.backup_status,
                restore_point_time: vm.restore_point_time,
                end_time: vm.end_time,
            })
            .collect(),
    })
}

/// The name of a plan visible in `scope`, or 404.
async fn visible_plan_name(state: &AppState, scope: Scope, plan: Uuid) -> ApiResult<String> {
    state
        .store
        .get_plan(scope, plan)
        .await?
        .map(|plan| plan.name)
        .ok_or_else(|| ApiError::not_found(format!("Failover plan {plan} was not found.")))
}

/// A run of a plan visible in `scope`, or 404 (for a plan not visible, or a session of another
/// plan: both read as "not found").
async fn visible_run(
    state: &AppState,
    scope: Scope,
    plan: Uuid,
    session: Uuid,
) -> ApiResult<(String, SessionHistory)> {
    let name = visible_plan_name(state, scope, plan).await?;
    let run = state
        .store
        .plan_session(plan, session)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Session {session} of failover plan {plan} was not found."
            ))
        })?;
    Ok((name, run))
}

/// The report of one run of a plan the caller may see (the API's route and the console's page).
pub async fn run_report(
    state: &AppState,
    scope: Scope,
    plan: Uuid,
    session: Uuid,
) -> ApiResult<RunReport> {
    let (plan_name, run) = visible_run(state, scope, plan, session).await?;
    let owner = state.store.plan_owners(&[plan]).await?.remove(&plan);
    let log = state.store.session_messages(session).await?;
    let notes = state.store.session_notes(session).await?;
    let drill = state.store.session_drill(session).await?;
    Ok(RunReport {
        drill,
        plan_uid: plan,
        plan_name,
        server_name: owner
            .as_ref()
            .map(|o| o.server_name.clone())
            .unwrap_or_default(),
        company_name: owner.map(|o| o.company_name).unwrap_or_default(),
        measure: measure(&run),
        run,
        log,
        notes,
    })
}

/// `json`, `html` or `csv`, from `?format=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Html,
    Csv,
}

/// `?format=`: json (the default), html or csv, of those `allowed`.
pub(crate) fn format_of(params: &QueryParams, allowed: &[Format]) -> ApiResult<Format> {
    let format = match params.get("format").map(str::to_ascii_lowercase).as_deref() {
        None | Some("json") => Format::Json,
        Some("html") => Format::Html,
        Some("csv") => Format::Csv,
        Some(other) => {
            return Err(ApiError::bad_parameter(
                "format",
                format!("format must be json, html or csv, not '{other}'."),
            ));
        }
    };
    if allowed.contains(&format) {
        Ok(format)
    } else {
        Err(ApiError::bad_parameter(
            "format",
            "This resource is served as json or csv.",
        ))
    }
}

/// A count parameter (`limit`, `runs`): `default` when left out, else 1 to `max`.
pub(crate) fn bounded_count(
    params: &QueryParams,
    name: &str,
    default: u32,
    max: u32,
) -> ApiResult<u32> {
    match params.get(name) {
        None => Ok(default),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::bad_parameter(name, format!("{name} must be 1 to {max}."))),
    }
}

/// The median of `values` (in any order); `None` for none.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

fn targets_json(targets: &RecoveryTargets) -> Value {
    json!({ "rtoSeconds": targets.rto_seconds, "rpoSeconds": targets.rpo_seconds })
}

/// Who started a run and why: a person (or an API client in their name), or a drill.
fn trigger_json(report: &RunReport) -> Value {
    match &report.drill {
        Some(drill) => json!({
            "kind": "drill",
            "name": drill.drill_name,
            "drillUid": drill.drill_uid,
            "drillRunUid": drill.run_uid,
        }),
        None => json!({ "kind": "person", "name": report.run.started_by }),
    }
}

fn note_json(note: &SessionNote) -> Value {
    json!({ "seq": note.seq, "author": note.author, "writtenAt": note.written_at, "text": note.text })
}

/// A report as JSON.
pub fn report_json(report: &RunReport) -> Value {
    let run = &report.run;
    let measure = &report.measure;
    let vms: Vec<Value> = run
        .vms
        .iter()
        .zip(&measure.vms)
        .map(|(vm, figures)| {
            json!({
                "instanceUid": vm.object_uid,
                "name": vm.name,
                "backupStatus": vm.backup_status,
                "restorePointUid": vm.restore_point_uid,
                "restorePointDateTime": vm.restore_point_time,
                "rpoSeconds": figures.rpo_seconds,
                "rpoMet": figures.rpo_met,
                "timeToReadySeconds": figures.time_to_ready_seconds,
                "startTime": vm.start_time,
                "endTime": vm.end_time,
            })
        })
        .collect();
    let log: Vec<Value> = report
        .log
        .iter()
        .map(|line| {
            json!({
                "title": line.title,
                "description": line.description,
                "severity": line.severity,
                "startTime": line.start_time,
                "endTime": line.end_time,
            })
        })
        .collect();
    json!({
        "planUid": report.plan_uid,
        "planName": report.plan_name,
        "backupServerName": report.server_name,
        "companyName": report.company_name,
        "sessionUid": run.uid,
        "kind": run.kind,
        "status": run.status,
        "message": run.message,
        "verdict": measure.verdict.as_str(),
        "startedBy": run.started_by,
        "trigger": trigger_json(report),
        "requestedPoint": run.requested_point,
        "startTime": run.start_time,
        "endTime": run.end_time,
        "durationSeconds": seconds_between(run.start_time, run.end_time),
        "targets": targets_json(&run.targets),
        "rto": {
            "achievedSeconds": measure.rto_seconds,
            "targetSeconds": run.targets.rto_seconds,
            "met": measure.rto_met,
        },
        "rpo": {
            "worstSeconds": measure.worst_rpo_seconds,
            "targetSeconds": run.targets.rpo_seconds,
            "met": measure.rpo_met,
        },
        "vms": vms,
        "log": log,
        "notes": report.notes.iter().map(note_json).collect::<Vec<_>>(),
    })
}

/// A CSV field: always quoted, quotes doubled, and a leading `= + - @` defused so that a
/// spreadsheet never runs a plan's name as a formula.
pub fn csv_field(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    format!("\"{}\"", defused.replace('"', "\"\""))
}

/// One CSV line (CRLF-terminated, as RFC 4180 has it).
pub fn csv_line(fields: &[String]) -> String {
    let mut line = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

fn iso(at: Option<Timestamp>) -> String {
    at.map(|at| at.to_string()).unwrap_or_default()
}

fn figure(value: Option<f64>) -> String {
    value.map(|v| format!("{v:.1}")).unwrap_or_default()
}

fn met(value: Option<bool>) -> String {
    match value {
        Some(true) => "met".into(),
        Some(false) => "missed".into(),
        None => String::new(),
    }
}

fn count(value: Option<u32>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// A report as CSV: one line per VM, the run's figures repeated on each.
pub fn report_csv(report: &RunReport) -> String {
    let run = &report.run;
    let measure = &report.measure;
    let mut csv = csv_line(
        &[
            "plan",
            "run",
            "kind",
            "verdict",
            "started by",
            "run start",
            "run end",
            "rto seconds",
            "rto target",
            "rto",
            "worst rpo seconds",
            "rpo target",
            "rpo",
            "vm",
            "vm status",
            "restore point",
            "vm rpo seconds",
            "vm time to ready seconds",
        ]
        .map(str::to_owned),
    );
    let run_fields = [
        report.plan_name.clone(),
        run.uid.to_string(),
        run.kind.as_str().to_owned(),
        measure.verdict.as_str().to_owned(),
        run.started_by.clone(),
        iso(Some(run.start_time)),
        iso(run.end_time),
        figure(measure.rto_seconds),
        count(run.targets.rto_seconds),
        met(measure.rto_met),
        figure(measure.worst_rpo_seconds),
        count(run.targets.rpo_seconds),
        met(measure.rpo_met),
    ];
    if run.vms.is_empty() {
        let mut line = run_fields.to_vec();
        line.extend(std::iter::repeat_n(String::new(), 5));
        csv.push_str(&csv_line(&line));
    }
    for (vm, figures) in run.vms.iter().zip(&measure.vms) {
        let mut line = run_fields.to_vec();
        line.extend([
            vm.name.clone(),
            vm.backup_status.as_str().to_owned(),
            iso(vm.restore_point_time),
            figure(figures.rpo_seconds),
            figure(figures.time_to_ready_seconds),
        ]);
        csv.push_str(&csv_line(&line));
    }
    csv
}

/// One VM's row on the printable page.
pub struct VmRow {
    pub name: String,
    pub status: String,
    pub point: String,
    pub rpo: String,
    pub rpo_met: String,
    pub ready: String,
}

/// The printable report (`?format=html`, and the console's report page).
#[derive(Template)]
#[template(path = "report.html")]
pub struct ReportPage {
    pub title: String,
    pub plan_name: String,
    pub server_name: String,
    pub company_name: String,
    pub session_uid: String,
    pub kind: String,
    pub verdict: String,
    pub started_by: String,
    pub requested_point: String,
    pub start: String,
    pub end: String,
    pub rto: String,
    pub rto_target: String,
    pub rto_met: String,
    pub rpo: String,
    pub rpo_target: String,
    pub rpo_met: String,
    pub vms: Vec<VmRow>,
    pub log: Vec<(String, String, String)>,
    pub notes: Vec<(String, String, String)>,
    pub generated: String,
}

fn seconds_text(value: Option<f64>) -> String {
    value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1} s"))
}

fn target_text(value: Option<u32>) -> String {
    value.map_or_else(|| "none".to_owned(), |v| format!("{v} s"))
}

fn met_text(value: Option<bool>) -> String {
    match value {
        Some(true) => "met".into(),
        Some(false) => "MISSED".into(),
        None => "not judged".into(),
    }
}

impl ReportPage {
    pub fn of(report: &RunReport) -> ReportPage {
        let run = &report.run;
        let measure = &report.measure;
        ReportPage {
            title: format!("Run report: {}", report.plan_name),
            plan_name: report.plan_name.clone(),
            server_name: report.server_name.clone(),
            company_name: report.company_name.clone(),
            session_uid: run.uid.to_string(),
            kind: match run.kind {
                SessionKind::Failover => "Failover (production)".into(),
                SessionKind::Test => "Test failover".into(),
                SessionKind::Undo => "Undo".into(),
            },
            verdict: measure.verdict.as_str().to_owned(),
            started_by: run.started_by.clone(),
            requested_point: run
                .requested_point
                .map_or_else(|| "latest".to_owned(), |at| at.to_string()),
            start: run.start_time.to_string(),
            end: run
                .end_time
                .map_or_else(|| "running".to_owned(), |at| at.to_string()),
            rto: seconds_text(measure.rto_seconds),
            rto_target: target_text(run.targets.rto_seconds),
            rto_met: met_text(measure.rto_met),
            rpo: seconds_text(measure.worst_rpo_seconds),
            rpo_target: target_text(run.targets.rpo_seconds),
            rpo_met: met_text(measure.rpo_met),
            vms: run
                .vms
                .iter()
                .zip(&measure.vms)
                .map(|(vm, figures)| VmRow {
                    name: vm.name.clone(),
                    status: vm.backup_status.as_str().to_owned(),
                    point: iso(vm.restore_point_time),
                    rpo: seconds_text(figures.rpo_seconds),
                    rpo_met: met_text(figures.rpo_met),
                    ready: seconds_text(figures.time_to_ready_seconds),
                })
                .collect(),
            log: report
                .log
                .iter()
                .map(|line| {
                    (
                        iso(line.start_time),
                        line.severity.as_str().to_owned(),
                        if line.description.is_empty() {
                            line.title.clone()
                        } else {
                            format!("{}: {}", line.title, line.description)
                        },
                    )
                })
                .collect(),
            notes: report
                .notes
                .iter()
                .map(|n| (n.written_at.to_string(), n.author.clone(), n.text.clone()))
                .collect(),
            generated: Timestamp::now().to_string(),
        }
    }
}

/// The printable page's HTML.
pub fn report_html(report: &RunReport) -> ApiResult<String> {
    ReportPage::of(report).render().map_err(ApiError::internal)
}

/// The policy of the printable page: its own inline style, nothing else.
const HTML_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'";

pub(crate) fn text_response(
    content_type: &str,
    body: String,
    attachment: Option<String>,
) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_SECURITY_POLICY, HTML_POLICY.to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        body,
    )
        .into_response();
    if let Some(file) = attachment
        && let Ok(value) =
            header::HeaderValue::from_str(&format!("attachment; filename=\"{file}\""))
    {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `GET /extensions/failoverplans/{planUid}/sessions/{sessionUid}/report[?format=html|csv]`.
pub async fn report(
    State(state): State<AppState>,
    _version: Version,
    ReadAccess(principal): ReadAccess,
    path: PathParams,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let (plan, session) = plan_and_session(path)?;
    let params = QueryParams::parse(raw.as_deref())?;
    let format = format_of(&params, &[Format::Json, Format::Html, Format::Csv])?;
    let report = run_report(&state, principal.scope, plan, session).await?;
    Ok(match format {
        Format::Json => json_response(200, &json!({ "data": report_json(&report) })),
        Format::Html => text_response("text/html; charset=utf-8", report_html(&report)?, None),
        Format::Csv => text_response(
            "text/csv; charset=utf-8",
            report_csv(&report),
            Some(format!("standby-report-{session}.csv")),
        ),
    })
}

fn plan_and_session(path: PathParams) -> ApiResult<(Uuid, Uuid)> {
    let Path((plan, session)) = path.map_err(|_| {
        ApiError::bad_parameter(
            "planUid",
            "The path must name a plan and a session by UUID.",
        )
    })?;
    let parse = |name: &str, text: &str| {
        Uuid::parse_str(text.trim())
            .map_err(|_| ApiError::bad_parameter(name, format!("'{text}' is not a valid UUID.")))
    };
    Ok((parse("planUid", &plan)?, parse("sessionUid", &session)?))
}

/// `POST .../sessions/{sessionUid}/notes` `{"text": "..."}`: 201 with the note.
pub async fn add_note(
    State(state): State<AppState>,
    _version: Version,
    WriteAccess(principal): WriteAccess,
    path: PathParams,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let (plan, session) = plan_and_session(path)?;
    let object = crate::params::json_object(&headers, &body, Some(&["text"]))?;
    let text = object
        .get("text")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default();
    let length = text.chars().count();
    if length == 0 || length > MAX_NOTE_CHARS {
        return Err(ApiError::bad_property(
            "text",
            format!("text must be 1 to {MAX_NOTE_CHARS} characters (it is {length})."),
        ));
    }
    visible_run(&state, principal.scope, plan, session).await?;
    let note = state
        .store
        .add_session_note(session, &principal.name, text, Timestamp::now())
        .await?;
    Ok(json_response(201, &json!({ "data": note_json(&note) })))
}

/// The longest note kept (the store keeps the same bound).
pub const MAX_NOTE_CHARS: usize = 4_000;

/// `GET .../targets`.
pub async fn get_targets(
    State(state): State<AppState>,
    _version: Version,
    ReadAccess(principal): ReadAccess,
    path: PathParam,
) -> ApiResult<Response> {
    let plan = path_uid("planUid", path)?;
    visible_plan_name(&state, principal.scope, plan).await?;
    let targets = state.store.plan_targets(plan).await?;
    Ok(json_response(
        200,
        &json!({ "data": targets_json(&targets) }),
    ))
}

/// `PUT .../targets` `{"rtoSeconds": n|null, "rpoSeconds": n|null}`: replaces both (an omitted
/// one is cleared). Runs already started keep the targets they started with.
pub async fn put_targets(
    State(state): State<AppState>,
    _version: Version,
    WriteAccess(principal): WriteAccess,
    path: PathParam,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let plan = path_uid("planUid", path)?;
    crate::vspc::require_json(&headers)?;
    let shape = |detail: String| {
        ApiError::bad_body(format!(
            "The body must be {{\"rtoSeconds\": seconds or null, \"rpoSeconds\": seconds or null}}: {detail}."
        ))
    };
    let body: Value = serde_json::from_slice(&body).map_err(|e| shape(e.to_string()))?;
    // Only an object: serde would also read a struct from an array of its fields.
    if !body.is_object() {
        return Err(shape("it is not an object".into()));
    }
    let targets: RecoveryTargets =
        serde_json::from_value(body).map_err(|e| shape(e.to_string()))?;
    targets.check().map_err(ApiError::bad_body)?;
    visible_plan_name(&state, principal.scope, plan).await?;
    state
        .store
        .set_plan_targets(plan, &targets, Timestamp::now())
        .await?;
    Ok(json_response(
        200,
        &json!({ "data": targets_json(&targets) }),
    ))
}

/// `GET .../rtoTrend[?limit=&format=csv]`: the plan's most recent finished failovers and tests
/// (at most `limit`, default 50, up to 500), oldest first, each with its achieved RTO and
/// worst RPO against the targets it ran under; and a summary.
pub async fn rto_trend(
    State(state): State<AppState>,
    _version: Version,
    ReadAccess(principal): ReadAccess,
    path: PathParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let plan = path_uid("planUid", path)?;
    let params = QueryParams::parse(raw.as_deref())?;
    let format = format_of(&params, &[Format::Json, Format::Csv])?;
    let limit = bounded_count(&params, "limit", TREND_DEFAULT, TREND_MAX)?;
    let plan_name = visible_plan_name(&state, principal.scope, plan).await?;
    let runs = trend_runs(&state, plan, limit).await?;
    if format == Format::Csv {
        let mut csv = csv_line(
            &[
                "plan",
                "run",
                "kind",
                "start",
                "verdict",
                "rto seconds",
                "rto target",
                "rto",
                "worst rpo seconds",
                "rpo target",
                "rpo",
            ]
            .map(str::to_owned),
        );
        for (run, figures) in &runs {
            csv.push_str(&csv_line(&[
                plan_name.clone(),
                run.uid.to_string(),
                run.kind.as_str().to_owned(),
                run.start_time.to_string(),
                figures.verdict.as_str().to_owned(),
                figure(figures.rto_seconds),
                count(run.targets.rto_seconds),
                met(figures.rto_met),
                figure(figures.worst_rpo_seconds),
                count(run.targets.rpo_seconds),
                met(figures.rpo_met),
            ]));
        }
        return Ok(text_response(
            "text/csv; charset=utf-8",
            csv,
            Some(format!("standby-rto-trend-{plan}.csv")),
        ));
    }
    let mut achieved: Vec<f64> = runs.iter().filter_map(|(_, m)| m.rto_seconds).collect();
    achieved.sort_by(f64::total_cmp);
    let median = median(&achieved);
    let points: Vec<Value> = runs
        .iter()
        .map(|(run, figures)| {
            json!({
                "sessionUid": run.uid,
                "kind": run.kind,
                "startTime": run.start_time,
                "verdict": figures.verdict.as_str(),
                "rtoSeconds": figures.rto_seconds,
                "rtoTargetSeconds": run.targets.rto_seconds,
                "rtoMet": figures.rto_met,
                "worstRpoSeconds": figures.worst_rpo_seconds,
                "rpoTargetSeconds": run.targets.rpo_seconds,
                "rpoMet": figures.rpo_met,
            })
        })
        .collect();
    Ok(json_response(
        200,
        &json!({ "data": {
            "planUid": plan,
            "planName": plan_name,
            "runs": points,
            "summary": {
                "runs": runs.len(),
                "recovered": achieved.len(),
                "medianRtoSeconds": median,
                "bestRtoSeconds": achieved.first(),
                "worstRtoSeconds": achieved.last(),
                "rtoMet": runs.iter().filter(|(_, m)| m.rto_met == Some(true)).count(),
                "rtoMissed": runs.iter().filter(|(_, m)| m.rto_met == Some(false)).count(),
            },
        }}),
    ))
}

/// A plan's newest `limit` finished failovers and tests with their figures, oldest first.
pub async fn trend_runs(
    state: &AppState,
    plan: Uuid,
    limit: u32,
) -> ApiResult<Vec<(SessionHistory, RunMeasure)>> {
    let mut runs = Vec::new();
    let mut offset = 0;
    while runs.len() < limit as usize {
        let page = state.store.session_history(plan, 100, offset).await?;
        for run in page.items.iter() {
            if run.kind != SessionKind::Undo
                && run.end_time.is_some()
                && runs.len() < limit as usize
            {
                runs.push((run.clone(), measure(run)));
            }
        }
        offset += page.items.len() as u32;
        if page.items.is_empty() || u64::from(offset) >= page.total {
            break;
        }
    }
    runs.reverse();
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "\"plain\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=SUM(A1)"), "\"'=SUM(A1)\"");
        assert_eq!(csv_line(&["x".into(), "".into()]), "\"x\",\"\"\r\n");
        assert_eq!(csv_line(&["a".into(), "-1".into()]), "\"a\",\"'-1\"\r\n");
    }

    #[test]
    fn an_unknown_format_is_refused() {
        let params = QueryParams::parse(Some("format=pdf")).unwrap();
        assert!(format_of(&params, &[Format::Json]).is_err());
        let params = QueryParams::parse(Some("format=HTML")).unwrap();
        assert_eq!(
            format_of(&params, &[Format::Json, Format::Html]).unwrap(),
            Format::Html
        );
        assert!(format_of(&params, &[Format::Json, Format::Csv]).is_err());
    }
}

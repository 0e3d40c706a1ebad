//! Scheduled drills, under `/api/v3/extensions/drills`: test failovers of a set of plans on a
//! cron schedule, each undone after a time to live, under a budget of VMs at once.
//!
//! - `POST /extensions/drills` `{name, planUids | filter, schedule, timeZone, ttlSeconds,
//!   maxParallelVms, stopAfterFailures}`: 201 with the drill.
//! - `GET /extensions/drills`, `GET /extensions/drills/{drillUid}` (with its recent runs).
//! - `POST .../pause`, `POST .../resume`, `DELETE /extensions/drills/{drillUid}`.
//! - `POST .../runs`: an occurrence due now.
//! - `GET .../runs/{runUid}[?format=csv]`: a run's report: each plan's state, the reason it
//!   was skipped, its test's verdict, RTO and RPO, its undo.
//!
//! A drill runs with its creator's scope: a company's drill sees and starts only that company's
//! plans, and only the company (and the provider) see the drill. [`runner`] does the running.

pub mod runner;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Map, Value, json};
use standby_model::{ClientVersion, Timestamp};
use standby_query::Filter;
use standby_store::Scope;
use standby_store::catalog::PLAN_CATALOG;
use standby_store::drills::{DrillPlanState, DrillPlans, DrillRecord, DrillRun, DrillRunPlan};
use uuid::Uuid;

use crate::AppState;
use crate::access::{ReadAccess, WriteAccess};
use crate::envelope::{empty, json_response};
use crate::error::{ApiError, ApiResult};
use crate::identity::Principal;
use crate::params::{Body, QueryParams, Version, path_uid};
use crate::reports::{Format, bounded_count, csv_line, format_of, measure, median, text_response};
use crate::schedule::Schedule;

type PathParam = Result<Path<String>, PathRejection>;
type PathParams = Result<Path<(String, String)>, PathRejection>;

/// Bounds on a drill's settings.
pub const MAX_NAME_CHARS: usize = 128;
pub const MAX_LISTED_PLANS: usize = 500;
pub const MAX_TTL_SECONDS: u32 = 7 * 86_400;
pub const MAX_PARALLEL_VMS: u32 = 100_000;
pub const MAX_STOP_AFTER_FAILURES: u32 = 10_000;
/// Runs `GET /extensions/drills/{drillUid}` shows.
const RECENT_RUNS: u32 = 20;

fn not_found(drill: Uuid) -> ApiError {
    ApiError::not_found(format!("Drill {drill} was not found."))
}

fn whole(
    object: &Map<String, Value>,
    property: &str,
    range: std::ops::RangeInclusive<u32>,
    default: Option<u32>,
) -> ApiResult<u32> {
    match object.get(property) {
        None => default
            .ok_or_else(|| ApiError::bad_property(property, format!("{property} is required."))),
        Some(value) => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                ApiError::bad_property(
                    property,
                    format!(
                        "{property} must be a whole number from {} to {}.",
                        range.start(),
                        range.end()
                    ),
                )
            }),
    }
}

/// The drill a POST describes, checked; plans named must be visible to the caller.
/// The properties a drill is created with.
pub const DRILL_PROPERTIES: [&str; 9] = [
    "name",
    "planUids",
    "filter",
    "schedule",
    "timeZone",
    "ttlSeconds",
    "maxParallelVms",
    "stopAfterFailures",
    "paused",
];

/// Creates the drill a body describes, as the caller (its scope is the drill's): the API's
/// route and the console's form.
pub async fn create_drill(
    state: &AppState,
    principal: &Principal,
    object: &Map<String, Value>,
) -> ApiResult<DrillRecord> {
    crate::access::check_write(principal)?;
    let drill = parse_drill(state, principal, object).await?;
    state.store.create_drill(&drill).await?;
    tracing::info!(drill.uid = %drill.uid, drill.name = %drill.name, user.name = %principal.name, "drill created");
    Ok(drill)
}

async fn parse_drill(
    state: &AppState,
    principal: &Principal,
    object: &Map<String, Value>,
) -> ApiResult<DrillRecord> {
    let name = object
        .get("name")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_property(
            "name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters."),
        ));
    }
    let plans = match (object.get("planUids"), object.get("filter")) {
        (Some(listed), None) => {
            let Some(items) = listed.as_array() else {
                return Err(ApiError::bad_property(
                    "planUids",
                    "planUids must be an array of plan UIDs.",
                ));
            };
            if items.is_empty() || items.len() > MAX_LISTED_PLANS {
                return Err(ApiError::bad_property(
                    "planUids",
                    format!("planUids must name 1 to {MAX_LISTED_PLANS} plans."),
                ));
            }
            let mut uids = Vec::with_capacity(items.len());
            for item in items {
                let uid = item
                    .as_str()
                    .and_then(|text| Uuid::parse_str(text).ok())
                    .ok_or_else(|| {
                        ApiError::bad_property("planUids", format!("{item} is not a plan UID."))
                    })?;
                if uids.contains(&uid) {
                    return Err(ApiError::bad_property(
                        "planUids",
                        format!("Plan {uid} is listed twice."),
                    ));
                }
                if state.store.get_plan(principal.scope, uid).await?.is_none() {
                    return Err(ApiError::not_found(format!(
                        "Failover plan {uid} was not found."
                    )));
                }
                uids.push(uid);
            }
            DrillPlans::Listed(uids)
        }
        (None, Some(filter)) => {
            // The filter as `filter=` takes it: given as JSON, or as the text of JSON.
            let text = match filter {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            Filter::parse(&text, &PLAN_CATALOG, ClientVersion::NEWEST).map_err(|error| {
                let error: ApiError = error.into();
                ApiError::bad_property("filter", error.error.message)
            })?;
            DrillPlans::Filter(text)
        }
        _ => {
            return Err(ApiError::bad_property(
                "planUids",
                "Give either planUids (a list of plans) or filter (a plan filter), not both or neither.",
            ));
        }
    };
    let schedule = object
        .get("schedule")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::bad_property("schedule", "schedule (a cron pattern) is required.")
        })?
        .trim()
        .to_owned();
    let time_zone = match object.get("timeZone") {
        None => "UTC".to_owned(),
        Some(Value::String(zone)) => zone.trim().to_owned(),
        Some(_) => {
            return Err(ApiError::bad_property(
                "timeZone",
                "timeZone must be an IANA zone name.",
            ));
        }
    };
    let parsed = Schedule::parse(&schedule, &time_zone).map_err(|message| {
        let property = if message.starts_with("timeZone") {
            "timeZone"
        } else {
            "schedule"
        };
        ApiError::bad_property(property, message)
    })?;
    let paused = match object.get("paused") {
        None => false,
        Some(Value::Bool(paused)) => *paused,
        Some(_) => {
            return Err(ApiError::bad_property(
                "paused",
                "paused must be true or false.",
            ));
        }
    };
    let now = Timestamp::now();
    Ok(DrillRecord {
        uid: Uuid::now_v7(),
        name: name.to_owned(),
        owner: principal.scope,
        owner_organization_uid: principal.organization_uid,
        created_by_uid: principal.user_uid,
        created_by: principal.name.clone(),
        plans,
        ttl_seconds: whole(object, "ttlSeconds", 1..=MAX_TTL_SECONDS, None)?,
        max_parallel_vms: whole(object, "maxParallelVms", 1..=MAX_PARALLEL_VMS, None)?,
        stop_after_failures: whole(
            object,
            "stopAfterFailures",
            0..=MAX_STOP_AFTER_FAILURES,
            Some(0),
        )?,
        paused,
        next_run_at: if paused { None } else { parsed.next_after(now) },
        schedule,
        time_zone,
        created_at: now,
    })
}

pub fn drill_json(drill: &DrillRecord) -> Value {
    let description = Schedule::parse(&drill.schedule, &drill.time_zone)
        .map(|schedule| schedule.describe())
        .unwrap_or_default();
    let (plan_uids, filter) = match &drill.plans {
        DrillPlans::Listed(uids) => (json!(uids), Value::Null),
        DrillPlans::Filter(filter) => (Value::Null, json!(filter)),
    };
    json!({
        "instanceUid": drill.uid,
        "name": drill.name,
        "planUids": plan_uids,
        "filter": filter,
        "schedule": drill.schedule,
        "scheduleDescription": description,
        "timeZone": drill.time_zone,
        "ttlSeconds": drill.ttl_seconds,
        "maxParallelVms": drill.max_parallel_vms,
        "stopAfterFailures": drill.stop_after_failures,
        "paused": drill.paused,
        "nextRunAt": drill.next_run_at,
        "createdBy": drill.created_by,
        "createdAt": drill.created_at,
        "companyUid": match drill.owner {
            Scope::All => Value::Null,
            Scope::Organization(uid) => json!(uid),
        },
    })
}

/// A plan of a run as its report shows it.
fn run_plan_json(plan: &DrillRunPlan, now: Timestamp) -> Value {
    json!({
        "planUid": plan.plan_uid,
        "planName": plan.plan_name,
        "vms": plan.vms,
        "state": plan.state.as_str(),
        "reason": plan.reason,
        "testSessionUid": plan.test_session_uid,
        "testVerdict": plan.test_verdict,
        "undoSessionUid": plan.undo_session_uid,
        "undoAt": plan.undo_at,
        "undoAttempts": plan.undo_attempts,
        "undoOverdue": undo_overdue(plan, now),
    })
}

/// Its test should have been undone a minute ago and was not.
fn undo_overdue(plan: &DrillRunPlan, now: Timestamp) -> bool {
    plan.state == DrillPlanState::UndoFailed
        || (matches!(
            plan.state,
            DrillPlanState::UndoDue | DrillPlanState::Undoing
        ) && plan.undo_at.is_some_and(|at| at.plus_seconds(60) < now))
}

pub fn run_summary(run: &DrillRun, now: Timestamp) -> Value {
    let count = |state: DrillPlanState| run.plans.iter().filter(|p| p.state == state).count();
    let verdicts = |verdict: &str| {
        run.plans
            .iter()
            .filter(|p| p.test_verdict.as_deref() == Some(verdict))
            .count()
    };
    json!({
        "instanceUid": run.uid,
        "drillUid": run.drill_uid,
        "dueAt": run.due_at,
        "state": if run.finished { "finished" } else { "running" },
        "startedAt": run.started_at,
        "endedAt": run.ended_at,
        "planCount": run.plans.len(),
        "skipped": count(DrillPlanState::Skipped),
        "undone": count(DrillPlanState::Undone),
        "undoFailed": count(DrillPlanState::UndoFailed),
        "undoOverdue": run.plans.iter().filter(|p| undo_overdue(p, now)).count(),
        "passed": verdicts("Passed") + verdicts("PassedWithWarnings"),
        "targetMissed": verdicts("TargetMissed"),
        "failed": verdicts("Failed"),
    })
}

pub async fn visible_drill(
    state: &AppState,
    principal: &Principal,
    uid: Uuid,
) -> ApiResult<DrillRecord> {
    state
        .store
        .get_drill(principal.scope, uid)
        .await?
        .ok_or_else(|| not_found(uid))
}

/// `POST /extensions/drills`.
pub async fn create(
    State(state): State<AppState>,
    _version: Version,
    WriteAccess(principal): WriteAccess,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let object = crate::params::json_object(&headers, &body, Some(&DRILL_PROPERTIES))?;
    let drill = create_drill(&state, &principal, &object).await?;
    Ok(json_response(201, &json!({ "data": drill_json(&drill) })))
}

/// `GET /extensions/drills`.
pub async fn list(
    State(state): State<AppState>,
    _version: Version,
    ReadAccess(principal): ReadAccess,
) -> ApiResult<Response> {
    let drills = state.store.list_drills(principal.scope).await?;
    let data: Vec<Value> = drills.iter().map(drill_json).collect();
    Ok(json_response(200, &json!({ "data": data })))
}

/// `GET /extensions/drills/{drillUid}`: the drill and its recent runs, newest first.
pub async fn get(
    State(state): State<AppState>,
    _version: Version,
    ReadAccess(principal): ReadAccess,
    path: PathParam,
) -> ApiResult<Response> {
    let uid = path_uid("drillUid", path)?;
    let drill = visible_drill(&state, &principal, uid).await?;
    let now = Timestamp::now();
    let runs: Vec<Value> = state
        .store
        .drill_runs(uid, RECENT_RUNS)
        .await?
        .iter()
        .map(|run| run_summary(run, now))
        .collect();
    let mut data = drill_json(&drill);
    data["runs"] = json!(runs);
    Ok(json_response(200, &json!({ "data": data })))
}

/// Pauses or resumes a drill the caller may see (a resumed drill's next occurrence counts
/// from now): the API's routes and the console's buttons.
pub async fn set_paused(
    state: &AppState,
    principal: &Principal,
    uid: Uuid,
    paused: bool,
) -> ApiResult<DrillRecord> {
    crate::access::check_write(principal)?;
    let drill = visible_drill(state, principal, uid).await?;
    let next = if paused {
        None
    } else {
        Schedule::parse(&drill.schedule, &drill.time_zone)
            .map_err(ApiError::cannot_now)?
            .next_after(Timestamp::now())
    };
    if !state.store.set_drill_paused(uid, paused, next).await? {
        return Err(not_found(uid));
    }
    visible_drill(state, principal, uid).await
}

/// Makes an occurrence of a drill due now (a paused drill refuses: resume it first).
pub async fn make_due_now(
    state: &AppState,
    principal: &Principal,
    uid: Uuid,
) -> ApiResult<Timestamp> {
    crate::access::check_write(principal)?;
    let drill = visible_drill(state, principal, uid).await?;
    if drill.paused {
        return Err(ApiError::cannot_now(
            "The drill is paused; resume it to run it.",
        ));
    }
    let now = Timestamp::now();
    if !state.store.set_drill_paused(uid, false, Some(now)).await? {
        return Err(not_found(uid));
    }
    Ok(now)
}

/// `POST /extensions/drills/{drillUid}/pause`.
pub async fn pause(
    State(state): State<AppState>,
    _version: Version,
    WriteAccess(principal): WriteAccess,
    path: PathParam,
) -> ApiResult<Response> {
    let uid = path_uid("drillUid", path)?;
    let drill = set_paused(&state, &principal, uid, true).await?;
    Ok(json_response(200, &json!({ "data": drill_json(&drill) })))
}

/// `POST /extensions/drills/{drillUid}/resume`: the next occurrence counts from now.
pub async fn resume(
    State(state): State<AppState>,
    _version: Version,
    WriteAccess(principal): WriteAccess,
    path: PathParam,
) -> ApiResult<Response> {
    let uid = path_uid("drillUid", path)?;
    let drill = set_paused(&state, &principal, uid, false).await?;
    Ok(json_response(200, &json!({ "data": drill_json(&drill) })))
}

/// `POST /extensions/drills/{drillUid}/runs`: makes an occurrence due now. 202: the runner
/// opens the run within a second or so.
pub async fn run_now(
    State(state): State<AppState>,
    _version: Version,
    WriteAccess(principal): WriteAccess,
    path: PathParam,
) -> ApiResult<Response> {
    let uid = path_uid("drillUid", path)?;
    let due = make_due_now(&state, &principal, uid).await?;
    Ok(json_response(
        202,
        &json!({ "data": { "drillUid": uid, "dueAt": due } }),
    ))
}

/// Deletes a drill the caller may see: no more runs; a run in progress still undoes every test
/// it started.
pub async fn delete_drill(state: &AppState, principal: &Principal, uid: Uuid) -> ApiResult<()> {
    crate::access::check_write(principal)?;
    visible_drill(state, principal, uid).await?;
    if !state.store.delete_drill(uid).await? {
        return Err(not_found(uid));
    }
    tracing::info!(drill.uid = %uid, user.name = %principal.name, "drill deleted");
    Ok(())
}

/// `DELETE /extensions/drills/{drillUid}`.
pub async fn delete(
    State(state): State<AppState>,
    _version: Version,
    WriteAccess(principal): WriteAccess,
    path: PathParam,
) -> ApiResult<Response> {
    let uid = path_uid("drillUid", path)?;
    delete_drill(&state, &principal, uid).await?;
    Ok(empty())
}

/// `GET /extensions/drills/{drillUid}/runs/{runUid}[?format=csv]`: the drill report of one run.
pub async fn run_report(
    State(state): State<AppState>,
    _version: Version,
    ReadAccess(principal): ReadAccess,
    path: PathParams,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let Path((drill_text, run_text)) = path.map_err(|_| {
        ApiError::bad_parameter("drillUid", "The path must name a drill and a run by UUID.")
    })?;
    let parse = |name: &str, text: &str| {
        Uuid::parse_str(text.trim())
            .map_err(|_| ApiError::bad_parameter(name, format!("'{text}' is not a valid UUID.")))
    };
    let (drill_uid, run_uid) = (parse("drillUid", &drill_text)?, parse("runUid", &run_text)?);
    let params = QueryParams::parse(raw.as_deref())?;
    let csv = format_of(&params, &[Format::Json, Format::Csv])? == Format::Csv;
    let (drill, run, plans) = drill_run_report(&state, &principal, drill_uid, run_uid).await?;
    let now = Timestamp::now();
    if csv {
        let mut text = csv_line(
            &[
                "drill",
                "run",
                "due",
                "plan",
                "vms",
                "state",
                "reason",
                "test verdict",
                "rto seconds",
                "worst rpo seconds",
                "undo attempts",
                "undo overdue",
            ]
            .map(str::to_owned),
        );
        let field = |value: &Value| match value {
            Value::Null => String::new(),
            Value::String(text) => text.clone(),
            Value::Number(n) => n
                .as_f64()
                .map(|v| {
                    if v.fract() == 0.0 {
                        format!("{v}")
                    } else {
                        format!("{v:.1}")
                    }
                })
                .unwrap_or_default(),
            other => other.to_string(),
        };
        for plan in &plans {
            text.push_str(&csv_line(&[
                drill.name.clone(),
                run.uid.to_string(),
                run.due_at.to_string(),
                field(&plan["planName"]),
                field(&plan["vms"]),
                field(&plan["state"]),
                field(&plan["reason"]),
                field(&plan["testVerdict"]),
                field(&plan["rtoSeconds"]),
                field(&plan["worstRpoSeconds"]),
                field(&plan["undoAttempts"]),
                field(&plan["undoOverdue"]),
            ]));
        }
        return Ok(text_response(
            "text/csv; charset=utf-8",
            text,
            Some(format!("standby-drill-run-{run_uid}.csv")),
        ));
    }
    let mut data = run_summary(&run, now);
    data["drillName"] = json!(drill.name);
    data["plans"] = json!(plans);
    Ok(json_response(200, &json!({ "data": data })))
}

/// One run of a drill the caller may see, with each plan as the report shows it (its test's
/// figures included): the API's report and the console's page.
pub async fn drill_run_report(
    state: &AppState,
    principal: &Principal,
    drill_uid: Uuid,
    run_uid: Uuid,
) -> ApiResult<(DrillRecord, DrillRun, Vec<Value>)> {
    let drill = visible_drill(state, principal, drill_uid).await?;
    let run = state
        .store
        .drill_run(drill_uid, run_uid)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("Run {run_uid} of drill {drill_uid} was not found."))
        })?;
    let now = Timestamp::now();
    let mut plans = Vec::with_capacity(run.plans.len());
    for plan in &run.plans {
        let mut shown = run_plan_json(plan, now);
        // The test's figures, as the plan's run report has them.
        if let Some(session) = plan.test_session_uid
            && let Some(test) = state.store.plan_session(plan.plan_uid, session).await?
        {
            let figures = measure(&test);
            shown["rtoSeconds"] = json!(figures.rto_seconds);
            shown["rtoMet"] = json!(figures.rto_met);
            shown["worstRpoSeconds"] = json!(figures.worst_rpo_seconds);
            shown["rpoMet"] = json!(figures.rpo_met);
            shown["testVerdict"] = json!(figures.verdict.as_str());
        }
        plans.push(shown);
    }
    Ok((drill, run, plans))
}

/// The runs a drill's report covers by default, and at most.
const REPORT_RUNS_DEFAULT: u32 = 50;
const REPORT_RUNS_MAX: u32 = 200;

/// One plan over a drill's runs.
#[derive(Debug, Default)]
struct PlanOverRuns {
    name: String,
    tests: u32,
    passed: u32,
    with_warnings: u32,
    target_missed: u32,
    failed: u32,
    skipped: u32,
    undo_failed: u32,
    rto: Vec<f64>,
    last_verdict: Option<String>,
    last_reason: String,
}

/// `GET /extensions/drills/{drillUid}/report[?runs=&format=csv]`: the drill over its newest runs
/// (default 50, up to 200): per plan, how many tests passed, missed a target or failed, how
/// often it was skipped and why last, its median and worst achieved RTO; and the totals.
pub async fn drill_report(
    State(state): State<AppState>,
    _version: Version,
    ReadAccess(principal): ReadAccess,
    path: PathParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let uid = path_uid("drillUid", path)?;
    let params = QueryParams::parse(raw.as_deref())?;
    let csv = format_of(&params, &[Format::Json, Format::Csv])? == Format::Csv;
    let limit = bounded_count(&params, "runs", REPORT_RUNS_DEFAULT, REPORT_RUNS_MAX)?;
    let drill = visible_drill(&state, &principal, uid).await?;
    let runs = state.store.drill_runs(uid, limit).await?;
    // Oldest first, so that "last" is the newest run's.
    let mut plans: Vec<(uuid::Uuid, PlanOverRuns)> = Vec::new();
    for run in runs.iter().rev() {
        for plan in &run.plans {
            let index = match plans.iter().position(|(p, _)| *p == plan.plan_uid) {
                Some(index) => index,
                None => {
                    plans.push((plan.plan_uid, PlanOverRuns::default()));
                    plans.len() - 1
                }
            };
            let row = &mut plans[index].1;
            row.name = plan.plan_name.clone();
            match plan.state {
                DrillPlanState::Skipped => {
                    row.skipped += 1;
                    row.last_reason = plan.reason.clone();
                }
                DrillPlanState::UndoFailed => row.undo_failed += 1,
                _ => {}
            }
            let Some(session) = plan.test_session_uid else {
                continue;
            };
            let Some(test) = state.store.plan_session(plan.plan_uid, session).await? else {
                continue;
            };
            if test.end_time.is_none() {
                continue;
            }
            let figures = measure(&test);
            row.tests += 1;
            match figures.verdict {
                standby_model::Verdict::Passed => row.passed += 1,
                standby_model::Verdict::PassedWithWarnings => row.with_warnings += 1,
                standby_model::Verdict::TargetMissed => row.target_missed += 1,
                standby_model::Verdict::Failed => row.failed += 1,
                standby_model::Verdict::Running => {}
            }
            if let Some(rto) = figures.rto_seconds {
                row.rto.push(rto);
            }
            row.last_verdict = Some(figures.verdict.as_str().to_owned());
        }
    }
    if csv {
        let mut text = csv_line(
            &[
                "drill",
                "plan",
                "tests",
                "passed",
                "passed with warnings",
                "target missed",
                "failed",
                "skipped",
                "undo failed",
                "median rto seconds",
                "worst rto seconds",
                "last verdict",
                "last skip reason",
            ]
            .map(str::to_owned),
        );
        for (_, row) in &plans {
            let seconds = |v: Option<f64>| v.map(|s| format!("{s:.1}")).unwrap_or_default();
            text.push_str(&csv_line(&[
                drill.name.clone(),
                row.name.clone(),
                row.tests.to_string(),
                row.passed.to_string(),
                row.with_warnings.to_string(),
                row.target_missed.to_string(),
                row.failed.to_string(),
                row.skipped.to_string(),
                row.undo_failed.to_string(),
                seconds(median(&row.rto)),
                seconds(row.rto.iter().copied().reduce(f64::max)),
                row.last_verdict.clone().unwrap_or_default(),
                row.last_reason.clone(),
            ]));
        }
        return Ok(text_response(
            "text/csv; charset=utf-8",
            text,
            Some(format!("standby-drill-{uid}.csv")),
        ));
    }
    let rows: Vec<Value> = plans
        .iter()
        .map(|(plan, row)| {
            json!({
                "planUid": plan,
                "planName": row.name,
                "tests": row.tests,
                "passed": row.passed,
                "passedWithWarnings": row.with_warnings,
                "targetMissed": row.target_missed,
                "failed": row.failed,
                "skipped": row.skipped,
                "undoFailed": row.undo_failed,
                "medianRtoSeconds": median(&row.rto),
                "worstRtoSeconds": row.rto.iter().copied().reduce(f64::max),
                "lastVerdict": row.last_verdict,
                "lastSkipReason": row.last_reason,
            })
        })
        .collect();
    let sum = |pick: fn(&PlanOverRuns) -> u32| plans.iter().map(|(_, r)| pick(r)).sum::<u32>();
    Ok(json_response(
        200,
        &json!({ "data": {
            "drillUid": uid,
            "drillName": drill.name,
            "runs": runs.len(),
            "firstDueAt": runs.last().map(|r| r.due_at),
            "lastDueAt": runs.first().map(|r| r.due_at),
            "plans": rows,
            "totals": {
                "tests": sum(|r| r.tests),
                "passed": sum(|r| r.passed),
                "passedWithWarnings": sum(|r| r.with_warnings),
                "targetMissed": sum(|r| r.target_missed),
                "failed": sum(|r| r.failed),
                "skipped": sum(|r| r.skipped),
                "undoFailed": sum(|r| r.undo_failed),
            },
        }}),
    ))
}

//! Extensions beyond VSPC, under `/api/v3/extensions`: what an operator wants to see before and
//! after pressing start. Same envelope, errors, auth and scoping as the VSPC routes.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use standby_fleet::SimFault;
use standby_model::Timestamp;
use standby_query::Paging;
use standby_store::catalog::OBJECT_CATALOG;
use standby_store::{ListQuery, Scope, SessionHistory, SimOutcome};
use uuid::Uuid;

use crate::AppState;
use crate::access::{ProviderAdminAccess, ProviderWriteAccess, ReadAccess};
use crate::envelope::{json_response, page_of_values};
use crate::error::{ApiError, ApiResult};
use crate::identity::Principal;
use crate::params::{Body, QueryParams, Version, path_uid};
use crate::vspc::parse_point_in_time;

type PathParam = Result<Path<String>, PathRejection>;

pub fn seconds_between(start: Timestamp, end: Option<Timestamp>) -> Option<f64> {
    end.map(|end| (end.ticks() - start.ticks()) as f64 / 10_000_000.0)
}

async fn visible_plan(state: &AppState, principal: &Principal, plan: Uuid) -> ApiResult<()> {
    match state.store.get_plan(principal.scope, plan).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(format!(
            "Failover plan {plan} was not found."
        ))),
    }
}

/// `GET /extensions/failoverplans/objects/{objectUid}/restorePoints`: a VM's points, newest first.
pub async fn restore_points(
    State(state): State<AppState>,
    _version: Version,
    ReadAccess(principal): ReadAccess,
    path: PathParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let object = path_uid("objectUid", path)?;
    let params = QueryParams::parse(raw.as_deref())?;
    let paging = params.paging(state.settings.max_page_size)?;
    let not_found = || ApiError::not_found(format!("Failover plan object {object} was not found."));
    let plan = state
        .store
        .object_plan(object)
        .await?
        .ok_or_else(not_found)?;
    visible_plan(&state, &principal, plan)
        .await
        .map_err(|_| not_found())?;
    let page = state
        .store
        .restore_points(object, paging.limit, paging.offset)
        .await?;
    let data = page
        .items
        .iter()
        .map(|p| json!({ "instanceUid": p.uid, "objectUid": p.object_uid, "creationTime": p.created_at }))
        .collect();
    Ok(page_of_values(data, page.total, paging.offset))
}

/// One VM of a start preview: the restore point a start now would give it.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewVm {
    pub instance_uid: Uuid,
    pub name: String,
    pub host_name: String,
    /// `None`: no point at or before the requested instant; the VM would fail.
    pub restore_point: Option<(Uuid, Timestamp)>,
}

/// What a start of a plan now would restore: each VM's point (in the VMs' default list order)
/// and how far apart the chosen points are. The API's preview extension and the console's start panel both show it.
#[derive(Debug, Clone, PartialEq)]
pub struct StartPreview {
    pub vms: Vec<PreviewVm>,
    pub oldest: Option<Timestamp>,
    pub newest: Option<Timestamp>,
    pub missing: usize,
}

impl StartPreview {
    /// Seconds between the oldest and the newest chosen point.
    pub fn skew_seconds(&self) -> Option<f64> {
        match (self.oldest, self.newest) {
            (Some(oldest), newest) => seconds_between(oldest, newest),
            _ => None,
        }
    }
}

/// The preview of a plan the caller has already found visible.
pub async fn start_preview(
    state: &AppState,
    scope: Scope,
    plan: Uuid,
    at: Option<Timestamp>,
) -> ApiResult<StartPreview> {
    let mut preview = StartPreview {
        vms: Vec::new(),
        oldest: None,
        newest: None,
        missing: 0,
    };
    let mut offset = 0;
    loop {
        let query = ListQuery {
            scope,
            server: None,
            plan: Some(plan),
            filter: standby_query::Filter::And(Vec::new()),
            order: standby_query::SortOrder::default_for(&OBJECT_CATALOG),
            paging: Paging { limit: 500, offset },
        };
        let page = state.store.list_objects(&query).await?;
        for object in &page.items {
            let point = state
                .store
                .newest_restore_point(object.instance_uid, at)
                .await?;
            if let Some((_, created)) = point {
                preview.oldest = Some(preview.oldest.map_or(created, |o| o.min(created)));
                preview.newest = Some(preview.newest.map_or(created, |n| n.max(created)));
            } else {
                preview.missing += 1;
            }
            preview.vms.push(PreviewVm {
                instance_uid: object.instance_uid,
                name: object.name.clone(),
                host_name: object.host_name.clone(),
                restore_point: point,
            });
        }
        offset += page.items.len() as u32;
        if page.items.is_empty() || u64::from(offset) >= page.total {
            break;
        }
    }
    Ok(preview)
}

/// `GET /extensions/failoverplans/{planUid}/preview?dateTime=`: the restore point each VM would
/// get from a start now, and how far apart the chosen points are.
pub async fn preview(
    State(state): State<AppState>,
    _version: Version,
    ReadAccess(principal): ReadAccess,
    path: PathParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let plan = path_uid("planUid", path)?;
    let params = QueryParams::parse(raw.as_deref())?;
    let at = parse_point_in_time(&params, Timestamp::now())?;
    visible_plan(&state, &principal, plan).await?;
    let preview = start_preview(&state, principal.scope, plan, at).await?;
    let vms: Vec<Value> = preview
        .vms
        .iter()
        .map(|vm| {
            json!({
                "instanceUid": vm.instance_uid,
                "name": vm.name,
                "restorePointUid": vm.restore_point.map(|(uid, _)| uid),
                "restorePointDateTime": vm.restore_point.map(|(_, created)| created),
            })
        })
        .collect();
    Ok(json_response(
        200,
        &json!({ "data": {
            "planUid": plan,
            "dateTime": at,
            "vms": vms,
            "oldestRestorePoint": preview.oldest,
            "newestRestorePoint": preview.newest,
            "skewSeconds": preview.skew_seconds(),
            "vmsWithoutRestorePoint": preview.missing,
        }}),
    ))
}

/// `GET /extensions/failoverplans/{planUid}/sessions`: the plan's runs, newest first, with each
/// VM's result and the achieved duration (RTO) of each run.
pub async fn sessions(
    State(state): State<AppState>,
    _version: Version,
    ReadAccess(principal): ReadAccess,
    path: PathParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let plan = path_uid("planUid", path)?;
    let params = QueryParams::parse(raw.as_deref())?;
    let paging = params.paging(state.settings.max_page_size)?;
    visible_plan(&state, &principal, plan).await?;
    let page = state
        .store
        .session_history(plan, paging.limit, paging.offset)
        .await?;
    let data = page.items.iter().map(session_json).collect();
    Ok(page_of_values(data, page.total, paging.offset))
}

/// One run as the sessions extension (and the session events) show it: kind, status, who
/// started it, the requested point, times, its duration, each VM's result, and the run judged
/// against the targets it started under (its report has the details).
pub fn session_json(s: &SessionHistory) -> Value {
    let measure = crate::reports::measure(s);
    let vms: Vec<Value> = s
        .vms
        .iter()
        .map(|vm| {
            json!({
                "instanceUid": vm.object_uid,
                "name": vm.name,
                "backupStatus": vm.backup_status,
                "restorePointUid": vm.restore_point_uid,
                "restorePointDateTime": vm.restore_point_time,
                "startTime": vm.start_time,
                "endTime": vm.end_time,
                "durationSeconds": seconds_between(vm.start_time, vm.end_time),
            })
        })
        .collect();
    json!({
        "instanceUid": s.uid,
        "kind": s.kind,
        "status": s.status,
        "message": s.message,
        "startedBy": s.started_by,
        "requestedPoint": s.requested_point,
        "startTime": s.start_time,
        "endTime": s.end_time,
        "durationSeconds": seconds_between(s.start_time, s.end_time),
        "verdict": measure.verdict.as_str(),
        "targets": { "rtoSeconds": s.targets.rto_seconds, "rpoSeconds": s.targets.rpo_seconds },
        "rtoSeconds": measure.rto_seconds,
        "rtoMet": measure.rto_met,
        "worstRpoSeconds": measure.worst_rpo_seconds,
        "rpoMet": measure.rpo_met,
        "vms": vms,
    })
}

/// A session-events stream follows at most this many plans.
pub const MAX_FOLLOWED_PLANS: usize = 200;

/// `GET /extensions/failoverplans/events?planUid=...` (1 to 200 plans): server-sent `session`
/// events, one per plan whenever its status or its newest run changes:
/// `{"planUid", "planStatus", "session"}` with `session` as `/sessions` shows a run (or null).
/// Every connection starts with an event for each plan, so a reconnecting client (with
/// `Last-Event-ID` or without) always has the whole state; ids count the stream's updates.
pub async fn session_events(
    State(state): State<AppState>,
    _version: Version,
    ReadAccess(principal): ReadAccess,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let params = QueryParams::parse(raw.as_deref())?;
    let mut plans: Vec<Uuid> = Vec::new();
    for text in params.all("planUid") {
        let uid = Uuid::parse_str(text.trim()).map_err(|_| {
            ApiError::bad_parameter("planUid", format!("'{text}' is not a valid UUID."))
        })?;
        if !plans.contains(&uid) {
            plans.push(uid);
        }
    }
    if plans.is_empty() || plans.len() > MAX_FOLLOWED_PLANS {
        return Err(ApiError::bad_parameter(
            "planUid",
            format!("Name 1 to {MAX_FOLLOWED_PLANS} plans with planUid."),
        ));
    }
    for plan in &plans {
        visible_plan(&state, &principal, *plan).await?;
    }
    let credential = crate::identity::bearer_token(&headers)?.to_owned();
    let store = state.store.clone();
    let snapshot = move |principal: Principal| -> crate::live::Snapshot {
        let store = store.clone();
        let plans = plans.clone();
        let scope = principal.scope;
        Box::pin(async move {
            let mut payloads = Vec::with_capacity(plans.len());
            for uid in plans {
                let plan = store.get_plan(scope, uid).await.ok()??;
                let newest = store.session_history(uid, 1, 0).await.ok()?;
                let session = newest.items.first().map(session_json);
                let payload = json!({
                    "planUid": uid,
                    "planStatus": plan.status,
                    "session": session,
                });
                payloads.push((uid.to_string(), payload.to_string()));
            }
            Some(payloads)
        })
    };
    Ok(crate::live::follow_changes(state, credential, "session", snapshot).into_response())
}

/// `PUT /extensions/sim/faults`: inject or clear a fault in the simulated hypervisor at run time.
/// Body `{"targetUid": uuid, "fault": "boot-fails"|"slow"|"offline"|"script-fails", "enabled": bool}`.
/// Provider-wide users with write access only.
pub async fn sim_fault(
    State(state): State<AppState>,
    _version: Version,
    ProviderWriteAccess(principal): ProviderWriteAccess,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let body = Value::Object(crate::params::json_object(&headers, &body, None)?);
    let bad = |property: &str, message: String| ApiError::bad_property(property, message);
    let target = body
        .get("targetUid")
        .and_then(Value::as_str)
        .and_then(|t| Uuid::parse_str(t).ok())
        .ok_or_else(|| {
            bad(
                "targetUid",
                "targetUid must be a VM's or a backup server's UUID.".into(),
            )
        })?;
    let name = body
        .get("fault")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(fault) = SimFault::parse(name) else {
        return Err(bad(
            "fault",
            format!(
                "fault must be one of {}, not '{name}'.",
                SimFault::list(&SimFault::ALL)
            ),
        ));
    };
    let enabled = body
        .get("enabled")
        .and_then(Value::as_bool)
        .ok_or_else(|| bad("enabled", "enabled must be true or false.".into()))?;
    // A fault is kept only for a target that exists and can have it.
    let is_vm = state.store.object_plan(target).await?.is_some();
    let is_server = !is_vm && state.store.server_visible(Scope::All, target).await?;
    match (is_vm, is_server) {
        (false, false) => {
            return Err(ApiError::not_found(format!(
                "No VM or backup server {target} was found."
            )));
        }
        (true, _) if fault.is_server_fault() => {
            return Err(bad(
                "fault",
                format!(
                    "'{fault}' is a backup server's fault; a VM takes {}.",
                    SimFault::list(&SimFault::VM)
                ),
            ));
        }
        (false, true) if !fault.is_server_fault() => {
            return Err(bad(
                "fault",
                format!(
                    "'{fault}' is a VM's fault; a backup server takes {}.",
                    SimFault::list(&SimFault::SERVER)
                ),
            ));
        }
        _ => {}
    }
    let sim = state.store.sim_ledger();
    sim.set_fault(target, fault, enabled).await?;
    tracing::info!(target.uid = %target, %fault, enabled, user.name = %principal.name, "sim fault changed");
    let faults: Vec<&str> = sim
        .faults(target)
        .await?
        .into_iter()
        .map(SimFault::as_str)
        .collect();
    Ok(json_response(
        200,
        &json!({ "data": { "targetUid": target, "faults": faults } }),
    ))
}

/// `GET /extensions/sim/operations`: the sim connector's ledger, oldest first. Read-only, for
/// provider administrators: it is how an operator (and the crash, multi-node and shutdown tests)
/// checks that no operation was submitted twice.
pub async fn sim_operations(
    State(state): State<AppState>,
    _version: Version,
    ProviderAdminAccess(_principal): ProviderAdminAccess,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let params = QueryParams::parse(raw.as_deref())?;
    let paging = params.paging(state.settings.max_page_size)?;
    let page = state
        .store
        .sim_ledger()
        .operations(paging.limit, paging.offset)
        .await?;
    let data = page
        .items
        .iter()
        .map(|operation| {
            json!({
                "operationId": operation.operation_id,
                "kind": operation.kind,
                "objectUid": operation.object_uid,
                "executions": operation.executions,
                "outcome": match operation.outcome {
                    None => "running",
                    Some(SimOutcome::Succeeded) => "succeeded",
                    Some(SimOutcome::Failed) => "failed",
                    Some(SimOutcome::Cancelled) => "cancelled",
                },
                "message": operation.message,
                "startTime": operation.started_at,
                "endTime": operation.finished_at,
            })
        })
        .collect();
    Ok(page_of_values(data, page.total, paging.offset))
}

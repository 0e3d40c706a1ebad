//! Extensions beyond VSPC, under `/api/v3/extensions`: what an operator wants to see before and
//! after pressing start. Same envelope, errors, auth and scoping as the VSPC routes.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};
use standby_fleet::SimFault;
use standby_model::Timestamp;
use standby_query::Paging;
use standby_store::catalog::OBJECT_CATALOG;
use standby_store::{ListQuery, Scope, SimOutcome};
use uuid::Uuid;

use crate::AppState;
use crate::access::{ProviderAdminAccess, ProviderWriteAccess, ReadAccess};
use crate::auth::Principal;
use crate::envelope::{json_response, page_of_values};
use crate::error::{ApiError, ApiResult};
use crate::params::{Body, QueryParams, Version, path_uid};
use crate::vspc::parse_point_in_time;

type PathParam = Result<Path<String>, PathRejection>;

fn seconds_between(start: Timestamp, end: Option<Timestamp>) -> Option<f64> {
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
    let mut vms = Vec::new();
    let (mut oldest, mut newest, mut missing) = (None::<Timestamp>, None::<Timestamp>, 0);
    let mut offset = 0;
    loop {
        let query = ListQuery {
            scope: principal.scope,
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
                oldest = Some(oldest.map_or(created, |o| o.min(created)));
                newest = Some(newest.map_or(created, |n| n.max(created)));
            } else {
                missing += 1;
            }
            vms.push(json!({
                "instanceUid": object.instance_uid,
                "name": object.name,
                "restorePointUid": point.map(|(uid, _)| uid),
                "restorePointDateTime": point.map(|(_, created)| created),
            }));
        }
        offset += page.items.len() as u32;
        if page.items.is_empty() || u64::from(offset) >= page.total {
            break;
        }
    }
    let skew = match (oldest, newest) {
        (Some(oldest), newest) => seconds_between(oldest, newest),
        _ => None,
    };
    Ok(json_response(
        200,
        &json!({ "data": {
            "planUid": plan,
            "dateTime": at,
            "vms": vms,
            "oldestRestorePoint": oldest,
            "newestRestorePoint": newest,
            "skewSeconds": skew,
            "vmsWithoutRestorePoint": missing,
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
    let data = page
        .items
        .iter()
        .map(|s| {
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
                "vms": vms,
            })
        })
        .collect();
    Ok(page_of_values(data, page.total, paging.offset))
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
    crate::vspc::require_json(&headers)?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_body(format!("The request body is not valid JSON: {e}.")))?;
    let bad = |property: &str, message: String| {
        let mut error = ApiError::bad_body(message);
        error.error.property_name = Some(property.to_owned());
        error
    };
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

//! The routes a `standby agent` calls, under `/api/v3/extensions/agent` (the protocol is
//! `standby_fleet::agent`). An agent authenticates with its own credential, which serves its
//! backup server and nothing else: these routes accept only agent credentials, and every other
//! route refuses them (they are not user tokens). Served outside the per-address throttle and the
//! write audit (an agent polls and beats all day), except `enroll`: it takes no credential, so it
//! is throttled like `/token`, and audited here, every attempt.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use standby_fleet::agent::{
    CREDENTIAL_PREFIX, ENROLLMENT_PREFIX, EnrollRequest, Enrolled, Heartbeat, HeartbeatAck,
    Inventory, InventoryApplied, Results, agent_plan_uid, agent_point_uid, agent_vm_uid,
};
use standby_fleet::{
    Fleet, ObjectRecord, PlanRecord, RestorePointRecord, TenantRecord, derived_uid,
};
use standby_model::{PlanType, Timestamp, WireEnum};
use standby_store::agents::AgentIdentity;
use standby_store::{AuditAction, AuditEntry, AuditOutcome};
use uuid::Uuid;

use crate::AppState;
use crate::envelope::json_response;
use crate::error::{ApiError, ApiResult};
use crate::params::{Body, QueryParams};
use crate::secrets::token_hash;

/// The longest long poll an agent may ask for.
pub const MAX_POLL_SECONDS: u64 = 30;
/// Commands handed over in one answer.
const COMMANDS_PER_POLL: u32 = 100;
/// How often a long poll looks at the store when nothing in this process signalled.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Bounds on what one inventory may declare.
const MAX_PLANS: usize = 10_000;
const MAX_VMS_PER_PLAN: usize = 1_000;
const MAX_POINTS_PER_VM: usize = 10_000;
const MAX_NAME: usize = 255;
const MAX_COMMAND: usize = 4_096;

/// A fresh secret with a prefix, and its SHA-256 (what the store keeps).
fn new_secret(prefix: &str) -> Result<(String, String), ApiError> {
    let secret = format!("{prefix}{}", crate::secrets::new_token()?);
    let hash = token_hash(&secret);
    Ok((secret, hash))
}

/// A one-time enrollment token (shown once) and its hash.
pub fn new_enrollment_token() -> Result<(String, String), ApiError> {
    new_secret(ENROLLMENT_PREFIX)
}

/// The agent a request comes from, from its bearer credential.
#[derive(Debug, Clone)]
pub struct AgentPrincipal(pub AgentIdentity);

impl FromRequestParts<AppState> for AgentPrincipal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let refused = || ApiError::unauthorized("The agent credential is invalid or was revoked.");
        let credential = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, credential)| credential.trim())
            .filter(|credential| credential.starts_with(CREDENTIAL_PREFIX))
            .ok_or_else(refused)?;
        let identity = state
            .store
            .agents()
            .authenticate_agent(&token_hash(credential))
            .await?
            .ok_or_else(refused)?;
        Ok(AgentPrincipal(identity))
    }
}

fn parse_body<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> ApiResult<T> {
    crate::vspc::require_json(headers)?;
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_body(format!("The request body is not valid: {e}.")))
}

fn data<T: serde::Serialize>(status: u16, value: &T) -> ApiResult<Response> {
    let value = serde_json::to_value(value).map_err(ApiError::internal)?;
    Ok(json_response(status, &json!({ "data": value })))
}

/// `POST /extensions/agent/enroll`: a one-time token becomes the agent's credential.
pub async fn enroll(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let request: EnrollRequest = parse_body(&headers, &body)?;
    let (credential, credential_hash) = new_secret(CREDENTIAL_PREFIX)?;
    let now = Timestamp::now();
    let enrolled = state
        .store
        .agents()
        .enroll(
            &token_hash(request.token.trim()),
            &credential_hash,
            &request.host_name,
            &request.agent_version,
            now,
        )
        .await?;
    let address = crate::audit::address_of(&extensions);
    let audit = |outcome, target: Option<String>, detail: String| AuditEntry {
        uid: Uuid::now_v7(),
        at: now,
        actor_uid: None,
        actor_name: "agent".to_owned(),
        address: address.clone(),
        action: AuditAction::AgentEnroll,
        target,
        outcome,
        detail,
    };
    let Some(identity) = enrolled else {
        crate::audit::record(
            state.store.as_ref(),
            audit(
                AuditOutcome::Refused,
                None,
                "an invalid, expired or used enrollment token".to_owned(),
            ),
        )
        .await;
        return Err(ApiError::unauthorized(
            "The enrollment token is invalid, has expired or was used already.",
        ));
    };
    crate::audit::record(
        state.store.as_ref(),
        audit(
            AuditOutcome::Success,
            Some(identity.server_uid.to_string()),
            format!(
                "backup server {} enrolled from host '{}'",
                identity.server_name, request.host_name
            ),
        ),
    )
    .await;
    tracing::info!(server = %identity.server_name, host = %request.host_name, "an agent enrolled");
    data(
        200,
        &Enrolled {
            backup_server_uid: identity.server_uid,
            backup_server_name: identity.server_name,
            credential,
        },
    )
}

/// `POST /extensions/agent/heartbeat`: the server is online; the replicas the agent knows.
pub async fn heartbeat(
    State(state): State<AppState>,
    AgentPrincipal(agent): AgentPrincipal,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let heartbeat: Heartbeat = parse_body(&headers, &body)?;
    let agents = state.store.agents();
    let now = Timestamp::now();
    agents
        .agent_seen(agent.server_uid, Some(&heartbeat.agent_version), now)
        .await?;
    agents
        .record_replicas(agent.server_uid, &heartbeat.replicas)
        .await?;
    data(200, &HeartbeatAck { server_time: now })
}

/// `GET /extensions/agent/commands?waitSeconds=N&all=BOOL`: the long poll.
pub async fn commands(
    State(state): State<AppState>,
    AgentPrincipal(agent): AgentPrincipal,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let params = QueryParams::parse(raw.as_deref())?;
    let wait = match params.get("waitSeconds") {
        None => 20,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|seconds| *seconds <= MAX_POLL_SECONDS)
            .ok_or_else(|| {
                ApiError::bad_parameter(
                    "waitSeconds",
                    format!("waitSeconds must be a whole number from 0 to {MAX_POLL_SECONDS}."),
                )
            })?,
    };
    let all = match params.get("all") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::bad_parameter("all", "all must be true or false."));
        }
    };
    let agents = state.store.agents();
    agents
        .agent_seen(agent.server_uid, None, Timestamp::now())
        .await?;
    let until = tokio::time::Instant::now() + Duration::from_secs(wait);
    let changes = agents.changes();
    let commands = loop {
        let notified = changes.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let taken = agents
            .take_commands(agent.server_uid, all, COMMANDS_PER_POLL, Timestamp::now())
            .await?;
        let now = tokio::time::Instant::now();
        if !taken.is_empty() || now >= until {
            break taken;
        }
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep(POLL_INTERVAL.min(until - now)) => {}
        }
    };
    // Not "seen" again at the end of the wait: a poll that began before the agent stopped
    // would keep a gone agent online for the whole wait. Heartbeats say it is there.
    let bodies = commands
        .iter()
        .map(|command| serde_json::from_str::<Value>(&command.body))
        .collect::<Result<Vec<Value>, _>>()
        .map_err(ApiError::internal)?;
    Ok(json_response(200, &json!({ "data": bodies })))
}

/// `POST /extensions/agent/results`.
pub async fn results(
    State(state): State<AppState>,
    AgentPrincipal(agent): AgentPrincipal,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let results: Results = parse_body(&headers, &body)?;
    let agents = state.store.agents();
    let now = Timestamp::now();
    agents.agent_seen(agent.server_uid, None, now).await?;
    let finished = agents
        .record_results(agent.server_uid, &results.results, now)
        .await?;
    Ok(json_response(
        200,
        &json!({ "data": { "finished": finished } }),
    ))
}

/// `PUT /extensions/agent/inventory`: the host's plans, VMs and restore points.
pub async fn inventory(
    State(state): State<AppState>,
    AgentPrincipal(agent): AgentPrincipal,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let inventory: Inventory = parse_body(&headers, &body)?;
    let agents = state.store.agents();
    let mut tenants = BTreeMap::new();
    for tenant in inventory
        .plans
        .iter()
        .filter_map(|plan| plan.tenant.as_deref())
    {
        if tenants.contains_key(tenant) {
            continue;
        }
        let uid = match agents.tenant_by_name(tenant).await? {
            Some((uid, organization)) if organization == agent.organization_uid => uid,
            Some(_) => {
                return Err(ApiError::cannot_now(format!(
                    "Tenant '{tenant}' belongs to another company than backup server {}.",
                    agent.server_name
                )));
            }
            None => derived_uid("tenant", tenant),
        };
        tenants.insert(tenant.to_owned(), uid);
    }
    let fleet = inventory_fleet(&agent, &inventory, &tenants)?;
    let now = Timestamp::now();
    agents
        .agent_seen(agent.server_uid, Some(&inventory.agent_version), now)
        .await?;
    let change = agents.apply_inventory(agent.server_uid, &fleet).await?;
    tracing::info!(
        server = %agent.server_name,
        plans = fleet.plans.len(),
        vms = fleet.objects.len(),
        restore_points_added = change.summary.restore_points_added,
        restore_points_removed = change.restore_points_removed,
        vms_removed = change.vms_removed,
        "inventory applied"
    );
    data(
        200,
        &InventoryApplied {
            plans: fleet.plans.len() as u64,
            vms: fleet.objects.len() as u64,
            restore_points_added: change.summary.restore_points_added,
            plans_removed: change.plans_removed,
            plans_kept: change.plans_kept,
        },
    )
}

fn checked_name(what: &str, name: &str) -> ApiResult<()> {
    if name.trim().is_empty() {
        return Err(ApiError::bad_body(format!("A {what} has an empty name.")));
    }
    // UIDs are derived from `server/plan/vm`: a `/` in a name could make two VMs one.
    if name.contains('/') {
        return Err(ApiError::bad_body(format!(
            "The {what} name '{name}' contains '/', which names may not."
        )));
    }
    if name.chars().count() > MAX_NAME {
        return Err(ApiError::bad_body(format!(
            "The {what} name '{}...' is longer than {MAX_NAME} characters.",
            name.chars().take(40).collect::<String>()
        )));
    }
    Ok(())
}

/// The inventory as fleet records of the agent's server, checked. `tenants` maps each tenant
/// name the inventory uses to its UID (new ones are created under the server's company).
pub fn inventory_fleet(
    agent: &AgentIdentity,
    inventory: &Inventory,
    tenants: &BTreeMap<String, Uuid>,
) -> ApiResult<Fleet> {
    let server = agent.server_uid;
    let mut fleet = Fleet::default();
    if inventory.plans.len() > MAX_PLANS {
        return Err(ApiError::bad_body(format!(
            "An inventory may declare at most {MAX_PLANS} plans."
        )));
    }
    let mut plan_names = BTreeSet::new();
    for plan in &inventory.plans {
        checked_name("plan", &plan.name)?;
        if !plan_names.insert(plan.name.as_str()) {
            return Err(ApiError::bad_body(format!(
                "Plan '{}' is declared twice.",
                plan.name
            )));
        }
        let plan_type = PlanType::parse(&plan.plan_type)
            .filter(|t| *t != PlanType::Unknown)
            .ok_or_else(|| {
                ApiError::bad_body(format!(
                    "Plan '{}': type must be Local, Cloud or Tenant, not '{}'.",
                    plan.name, plan.plan_type
                ))
            })?;
        let tenant_uid = match (plan_type, plan.tenant.as_deref()) {
            (PlanType::Tenant, Some(tenant)) => {
                checked_name("tenant", tenant)?;
                let uid = tenants.get(tenant).copied().ok_or_else(|| {
                    ApiError::internal(format!("tenant {tenant} was not resolved"))
                })?;
                if !fleet.tenants.iter().any(|t: &TenantRecord| t.uid == uid) {
                    fleet.tenants.push(TenantRecord {
                        uid,
                        name: tenant.to_owned(),
                        organization_uid: agent.organization_uid,
                    });
                }
                Some(uid)
            }
            (PlanType::Tenant, None) => {
                return Err(ApiError::bad_body(format!(
                    "Plan '{}' is a Tenant plan and names no tenant.",
                    plan.name
                )));
            }
            (_, Some(_)) => {
                return Err(ApiError::bad_body(format!(
                    "Plan '{}' names a tenant but is not a Tenant plan.",
                    plan.name
                )));
            }
            (_, None) => None,
        };
        for command in [&plan.pre_failover_command, &plan.post_failover_command] {
            if command.len() > MAX_COMMAND {
                return Err(ApiError::bad_body(format!(
                    "Plan '{}': a command is longer than {MAX_COMMAND} bytes.",
                    plan.name
                )));
            }
        }
        if plan.vms.is_empty() || plan.vms.len() > MAX_VMS_PER_PLAN {
            return Err(ApiError::bad_body(format!(
                "Plan '{}' must have from 1 to {MAX_VMS_PER_PLAN} VMs.",
                plan.name
            )));
        }
        let plan_uid = agent_plan_uid(server, &plan.name);
        fleet.plans.push(PlanRecord {
            uid: plan_uid,
            original_uid: plan_uid,
            backup_server_uid: server,
            name: plan.name.clone(),
            plan_type,
            tenant_uid,
            pre_failover_command: plan.pre_failover_command.clone(),
            post_failover_command: plan.post_failover_command.clone(),
            targets: inventory_targets(plan)?,
        });
        let mut vm_names = BTreeSet::new();
        for (order, vm) in plan.vms.iter().enumerate() {
            checked_name("VM", &vm.name)?;
            if !vm_names.insert(vm.name.as_str()) {
                return Err(ApiError::bad_body(format!(
                    "Plan '{}' lists VM '{}' twice.",
                    plan.name, vm.name
                )));
            }
            for (what, text) in [
                ("host", &vm.host_name),
                ("folder", &vm.folder_name),
                ("path", &vm.path),
            ] {
                if text.chars().count() > MAX_NAME {
                    return Err(ApiError::bad_body(format!(
                        "VM '{}' of plan '{}': its {what} is longer than {MAX_NAME} characters.",
                        vm.name, plan.name
                    )));
                }
            }
            if vm.restore_points.len() > MAX_POINTS_PER_VM {
                return Err(ApiError::bad_body(format!(
                    "VM '{}' of plan '{}' has more than {MAX_POINTS_PER_VM} restore points.",
                    vm.name, plan.name
                )));
            }
            let vm_uid = agent_vm_uid(server, &plan.name, &vm.name);
            fleet.objects.push(ObjectRecord {
                uid: vm_uid,
                plan_uid,
                backup_server_uid: server,
                name: vm.name.clone(),
                host_name: vm.host_name.clone(),
                folder_name: vm.folder_name.clone(),
                path: vm.path.clone(),
                boot_order: order as u32,
                boot_delay_seconds: vm.boot_delay_seconds,
                sim_faults: Vec::new(),
            });
            let mut seen = BTreeSet::new();
            for created_at in &vm.restore_points {
                if seen.insert(created_at.ticks()) {
                    fleet.restore_points.push(RestorePointRecord {
                        uid: agent_point_uid(vm_uid, *created_at),
                        object_uid: vm_uid,
                        created_at: *created_at,
                    });
                }
            }
        }
    }
    Ok(fleet)
}

/// The targets an inventory's plan declares, checked; `None` when it declares neither (the
/// stored ones stay).
fn inventory_targets(
    plan: &standby_fleet::agent::InventoryPlan,
) -> ApiResult<Option<standby_model::RecoveryTargets>> {
    let targets = standby_model::RecoveryTargets {
        rto_seconds: plan.rto_target_seconds,
        rpo_seconds: plan.rpo_target_seconds,
    };
    if targets.is_empty() {
        return Ok(None);
    }
    targets
        .check()
        .map_err(|message| ApiError::bad_body(format!("Plan '{}': {message}", plan.name)))?;
    Ok(Some(targets))
}

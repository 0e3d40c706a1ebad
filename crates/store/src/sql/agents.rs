//! Agent-connected servers and the agent connector's command queue on either backend (see
//! `agents.rs`). Writes go through the store's writer; reads on the read pool.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::Row;
use standby_fleet::Fleet;
use standby_fleet::agent::{OperationResult, Outcome, ReplicaReport};
use standby_model::{PlanStatus, Timestamp, WireEnum};
use uuid::Uuid;

use super::{DbRow, Pool};
use crate::agents::*;
use crate::freshness::{Freshness, Topics};
use crate::rows::{parse_uid, ts, uid_text};
use crate::{Scope, StoreError};

pub(super) struct SqlAgentStore {
    pub(super) pool: Pool,
    pub(super) writer: Pool,
    pub(super) freshness: Arc<Freshness>,
    pub(super) changes: Arc<tokio::sync::Notify>,
}

const SERVER_COLUMNS: &str = "s.uid, s.name, s.organization_uid, o.name, s.connector, \
     a.server_uid, a.enrollment_expires_at, a.enrolled_at, a.host_name, a.agent_version, a.last_seen";
const SERVER_FROM: &str = "backup_servers s JOIN organizations o ON o.uid = s.organization_uid \
     LEFT JOIN agents a ON a.server_uid = s.uid";

fn server_status(row: &DbRow) -> Result<ServerStatus, StoreError> {
    let uid: String = row.try_get(0)?;
    let organization: String = row.try_get(2)?;
    let agent_row: Option<String> = row.try_get(5)?;
    let agent = match agent_row {
        None => None,
        Some(_) => Some(AgentStatus {
            enrollment_expires_at: ts(row.try_get(6)?),
            enrolled_at: ts(row.try_get(7)?),
            host_name: row.try_get::<Option<String>, _>(8)?.unwrap_or_default(),
            agent_version: row.try_get::<Option<String>, _>(9)?.unwrap_or_default(),
            last_seen: ts(row.try_get(10)?),
        }),
    };
    Ok(ServerStatus {
        uid: parse_uid("backup_servers", "uid", &uid)?,
        name: row.try_get(1)?,
        organization_uid: parse_uid("backup_servers", "organization_uid", &organization)?,
        organization_name: row.try_get(3)?,
        connector: row.try_get(4)?,
        agent,
    })
}

const COMMAND_COLUMNS: &str =
    "operation_id, body, queued_at, delivered_at, outcome, detail FROM agent_commands";

fn queued_command(row: &DbRow) -> Result<QueuedCommand, StoreError> {
    let outcome: Option<String> = row.try_get(4)?;
    let outcome = match outcome {
        None => None,
        Some(text) => Some(Outcome::parse(&text).ok_or(StoreError::Corrupt {
            table: "agent_commands",
            column: "outcome",
            value: text,
        })?),
    };
    Ok(QueuedCommand {
        operation_id: row.try_get(0)?,
        body: row.try_get(1)?,
        queued_at: Timestamp::from_ticks(row.try_get(2)?),
        delivered_at: ts(row.try_get(3)?),
        outcome,
        detail: row.try_get(5)?,
    })
}

fn identity(row: &DbRow) -> Result<AgentIdentity, StoreError> {
    let server: String = row.try_get(0)?;
    let organization: String = row.try_get(2)?;
    Ok(AgentIdentity {
        server_uid: parse_uid("agents", "server_uid", &server)?,
        server_name: row.try_get(1)?,
        organization_uid: parse_uid("backup_servers", "organization_uid", &organization)?,
    })
}

/// A command delivered this long ago and still not acknowledged by the agent (a `running` or a
/// final result) is delivered again: the answer carrying it may have been lost.
const REDELIVER_AFTER_MS: i64 = 30_000;

/// Longest detail kept from an agent's report (a script's output tail is at most 4 KiB).
const MAX_DETAIL: usize = 8192;

#[async_trait]
impl AgentStore for SqlAgentStore {
    async fn add_agent_server(
        &self,
        name: &str,
        organization: Uuid,
        enrollment_hash: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Uuid>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let taken: Option<(String,)> =
            sqlx::query_as("SELECT uid FROM backup_servers WHERE name = $1 LIMIT 1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        if taken.is_some() {
            return Ok(None);
        }
        let uid = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO backup_servers (uid, name, organization_uid, connector, connector_settings) \
             VALUES ($1, $2, $3, $4, '{}')",
        )
        .bind(uid_text(uid))
        .bind(name)
        .bind(uid_text(organization))
        .bind(AGENT_CONNECTOR)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO agents (server_uid, enrollment_hash, enrollment_expires_at, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(uid_text(uid))
        .bind(enrollment_hash)
        .bind(expires_at.ticks())
        .bind(now.ticks())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.freshness.advance(Topics::ALL);
        Ok(Some(uid))
    }

    async fn servers(&self, scope: Scope) -> Result<Vec<ServerStatus>, StoreError> {
        let rows = match scope {
            Scope::All => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {SERVER_COLUMNS} FROM {SERVER_FROM} ORDER BY s.name, s.uid"
                )))
                .fetch_all(&self.pool)
                .await?
            }
            Scope::Organization(organization) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {SERVER_COLUMNS} FROM {SERVER_FROM} WHERE s.organization_uid = $1 \
                     ORDER BY s.name, s.uid"
                )))
                .bind(uid_text(organization))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(server_status).collect()
    }

    async fn server_names(
        &self,
        scope: Scope,
        limit: u32,
    ) -> Result<Vec<(Uuid, String)>, StoreError> {
        let rows: Vec<(String, String)> = match scope {
            Scope::All => {
                sqlx::query_as("SELECT uid, name FROM backup_servers ORDER BY name, uid LIMIT $1")
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
            Scope::Organization(organization) => {
                // The company's own servers, and the provider's that host its Tenant plans (the
                // servers its plans are on, as the plan scope sees them).
                sqlx::query_as(
                    "SELECT uid, name FROM backup_servers WHERE organization_uid = $1 \
                     OR uid IN (SELECT p.backup_server_uid FROM plans p \
                     JOIN tenants t ON t.uid = p.tenant_uid WHERE t.organization_uid = $1) \
                     ORDER BY name, uid LIMIT $2",
                )
                .bind(uid_text(organization))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.into_iter()
            .map(|(uid, name)| Ok((parse_uid("backup_servers", "uid", &uid)?, name)))
            .collect()
    }

    async fn server(&self, scope: Scope, uid: Uuid) -> Result<Option<ServerStatus>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SERVER_COLUMNS} FROM {SERVER_FROM} WHERE s.uid = $1"
        )))
        .bind(uid_text(uid))
        .fetch_optional(&self.pool)
        .await?;
        let server = row.as_ref().map(server_status).transpose()?;
        Ok(server.filter(|server| match scope {
            Scope::All => true,
            Scope::Organization(organization) => server.organization_uid == organization,
        }))
    }

    async fn server_by_name(&self, name: &str) -> Result<Option<ServerStatus>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SERVER_COLUMNS} FROM {SERVER_FROM} WHERE s.name = $1 ORDER BY s.uid LIMIT 1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(server_status).transpose()
    }

    async fn reenroll(
        &self,
        server: Uuid,
        enrollment_hash: &str,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE agents SET enrollment_hash = $2, enrollment_expires_at = $3, credential_hash = NULL, enrolled_at = NULL \
             WHERE server_uid = $1",
        )
        .bind(uid_text(server))
        .bind(enrollment_hash)
        .bind(expires_at.ticks())
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(changed > 0)
    }

    async fn remove_server(&self, server: Uuid) -> Result<ServerRemoval, StoreError> {
        let server = uid_text(server);
        let mut tx = self.writer.begin().await?;
        let exists: Option<(String,)> =
            sqlx::query_as("SELECT uid FROM backup_servers WHERE uid = $1")
                .bind(&server)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Ok(ServerRemoval::NotFound);
        }
        // A plan runs while one of its sessions has not ended (queued sessions included).
        let running: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT p.name FROM plans p JOIN sessions s ON s.plan_uid = p.uid \
             WHERE p.backup_server_uid = $1 AND s.end_time IS NULL ORDER BY p.name",
        )
        .bind(&server)
        .fetch_all(&mut *tx)
        .await?;
        let busy: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM plans WHERE backup_server_uid = $1 AND status IN ($2, $3) ORDER BY name",
        )
        .bind(&server)
        .bind(PlanStatus::InProgress.as_str())
        .bind(PlanStatus::InUndoProgress.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let mut names: Vec<String> = running.into_iter().chain(busy).map(|(n,)| n).collect();
        names.sort();
        names.dedup();
        if !names.is_empty() {
            return Ok(ServerRemoval::PlansRunning(names));
        }
        // Children before parents, so every foreign key holds at each step.
        const SESSIONS: &str = "SELECT s.uid FROM sessions s JOIN plans p ON p.uid = s.plan_uid \
                                WHERE p.backup_server_uid = $1";
        const OBJECTS: &str = "SELECT uid FROM plan_objects WHERE backup_server_uid = $1";
        let statements = [
            format!("DELETE FROM async_actions WHERE session_uid IN ({SESSIONS})"),
            format!("DELETE FROM jobs WHERE session_uid IN ({SESSIONS})"),
            format!("DELETE FROM session_messages WHERE session_uid IN ({SESSIONS})"),
            format!("DELETE FROM session_notes WHERE session_uid IN ({SESSIONS})"),
            format!("DELETE FROM vm_sessions WHERE session_uid IN ({SESSIONS})"),
            format!("DELETE FROM vm_sessions WHERE object_uid IN ({OBJECTS})"),
            format!("DELETE FROM sim_replicas WHERE object_uid IN ({OBJECTS})"),
            format!("DELETE FROM sim_faults WHERE target_uid IN ({OBJECTS}) OR target_uid = $1"),
            format!("DELETE FROM restore_points WHERE object_uid IN ({OBJECTS})"),
            "DELETE FROM plan_objects WHERE backup_server_uid = $1".to_owned(),
            format!("DELETE FROM sessions WHERE uid IN ({SESSIONS})"),
            "DELETE FROM drill_run_plans WHERE plan_uid IN (SELECT uid FROM plans WHERE backup_server_uid = $1)".to_owned(),
            "DELETE FROM plan_targets WHERE plan_uid IN (SELECT uid FROM plans WHERE backup_server_uid = $1)".to_owned(),
            "DELETE FROM plans WHERE backup_server_uid = $1".to_owned(),
            "DELETE FROM agent_replicas WHERE server_uid = $1".to_owned(),
            "DELETE FROM agent_commands WHERE server_uid = $1".to_owned(),
            "DELETE FROM agents WHERE server_uid = $1".to_owned(),
            "DELETE FROM backup_servers WHERE uid = $1".to_owned(),
        ];
        for statement in statements {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .bind(&server)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.freshness.advance(Topics::ALL);
        Ok(ServerRemoval::Removed)
    }

    async fn enroll(
        &self,
        enrollment_hash: &str,
        credential_hash: &str,
        host_name: &str,
        agent_version: &str,
        now: Timestamp,
    ) -> Result<Option<AgentIdentity>, StoreError> {
        // One statement: of two agents racing with one token, exactly one gets the credential.
        let enrolled: Option<(String,)> = sqlx::query_as(
            "UPDATE agents SET credential_hash = $2, enrollment_hash = NULL, enrollment_expires_at = NULL, \
             enrolled_at = $3, last_seen = $3, host_name = $4, agent_version = $5 \
             WHERE enrollment_hash = $1 AND enrollment_expires_at > $3 RETURNING server_uid",
        )
        .bind(enrollment_hash)
        .bind(credential_hash)
        .bind(now.ticks())
        .bind(crate::bounded(host_name, 255))
        .bind(crate::bounded(agent_version, 64))
        .fetch_optional(&self.writer)
        .await?;
        let Some((server,)) = enrolled else {
            return Ok(None);
        };
        // A new credential may come with a new ledger whose replica versions start again at 1:
        // what the agent reports from now on is the truth, not what an earlier one said.
        sqlx::query("DELETE FROM agent_replicas WHERE server_uid = $1")
            .bind(&server)
            .execute(&self.writer)
            .await?;
        self.authenticate_agent_on(&self.writer, credential_hash)
            .await
    }

    async fn authenticate_agent(
        &self,
        credential_hash: &str,
    ) -> Result<Option<AgentIdentity>, StoreError> {
        self.authenticate_agent_on(&self.pool, credential_hash)
            .await
    }

    async fn agent_seen(
        &self,
        server: Uuid,
        agent_version: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        match agent_version {
            Some(version) => {
                sqlx::query(
                    "UPDATE agents SET last_seen = $2, agent_version = $3 WHERE server_uid = $1",
                )
                .bind(uid_text(server))
                .bind(now.ticks())
                .bind(crate::bounded(version, 64))
                .execute(&self.writer)
                .await?
            }
            None => {
                sqlx::query("UPDATE agents SET last_seen = $2 WHERE server_uid = $1")
                    .bind(uid_text(server))
                    .bind(now.ticks())
                    .execute(&self.writer)
                    .await?
            }
        };
        Ok(())
    }

    async fn agent_status(&self, server: Uuid) -> Result<Option<AgentStatus>, StoreError> {
        Ok(self
            .server(Scope::All, server)
            .await?
            .and_then(|server| server.agent))
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<(Uuid, Uuid)>, StoreError> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT uid, organization_uid FROM tenants WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(uid, organization)| {
            Ok((
                parse_uid("tenants", "uid", &uid)?,
                parse_uid("tenants", "organization_uid", &organization)?,
            ))
        })
        .transpose()
    }

    async fn apply_inventory(
        &self,
        server: Uuid,
        fleet: &Fleet,
    ) -> Result<InventoryChange, StoreError> {
        let mut tx = self.writer.begin().await?;
        // Tenants are created, never moved: a tenant of that name that belongs to another
        // company refuses the whole push (checked inside the transaction, so two companies'
        // agents racing to create one name cannot move it either).
        for tenant in &fleet.tenants {
            sqlx::query(
                "INSERT INTO tenants (uid, name, organization_uid) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(uid_text(tenant.uid))
            .bind(&tenant.name)
            .bind(uid_text(tenant.organization_uid))
            .execute(&mut *tx)
            .await?;
            let owner: Option<(String, String)> =
                sqlx::query_as("SELECT uid, organization_uid FROM tenants WHERE name = $1")
                    .bind(&tenant.name)
                    .fetch_optional(&mut *tx)
                    .await?;
            if owner != Some((uid_text(tenant.uid), uid_text(tenant.organization_uid))) {
                return Err(StoreError::Conflict(format!(
                    "Tenant '{}' belongs to another company.",
                    tenant.name
                )));
            }
        }
        let without_tenants = Fleet {
            tenants: Vec::new(),
            ..fleet.clone()
        };
        let summary = super::import::import_in(&mut tx, &without_tenants).await?;
        // Restore points the host no longer has: the engine must not choose them.
        let mut removed = 0;
        for object in &fleet.objects {
            let kept: Vec<String> = fleet
                .restore_points
                .iter()
                .filter(|point| point.object_uid == object.uid)
                .map(|point| uid_text(point.uid))
                .collect();
            let existing: Vec<(String,)> =
                sqlx::query_as("SELECT uid FROM restore_points WHERE object_uid = $1")
                    .bind(uid_text(object.uid))
                    .fetch_all(&mut *tx)
                    .await?;
            for (point,) in existing {
                if !kept.contains(&point) {
                    removed += sqlx::query("DELETE FROM restore_points WHERE uid = $1")
                        .bind(&point)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
            }
        }
        // VMs of reported plans that the host no longer lists, and plans it no longer lists:
        // removed when nothing remembers them; kept while a session ran on them (their
        // history) or runs (a session would lose its VMs).
        let reported_vms: Vec<String> = fleet.objects.iter().map(|vm| uid_text(vm.uid)).collect();
        let mut vms_removed = 0;
        for plan in &fleet.plans {
            let vms: Vec<(String,)> =
                sqlx::query_as("SELECT uid FROM plan_objects WHERE plan_uid = $1")
                    .bind(uid_text(plan.uid))
                    .fetch_all(&mut *tx)
                    .await?;
            let mut removed_here = 0;
            for (vm,) in vms.into_iter().filter(|(vm,)| !reported_vms.contains(vm)) {
                if remove_vm_without_history(&mut tx, server, &vm).await? {
                    removed_here += 1;
                }
            }
            vms_removed += removed_here;
            if removed_here > 0 {
                sqlx::query(
                    "UPDATE plans SET objects_count = (SELECT COUNT(*) FROM plan_objects o WHERE o.plan_uid = plans.uid) \
                     WHERE uid = $1",
                )
                .bind(uid_text(plan.uid))
                .execute(&mut *tx)
                .await?;
            }
        }
        let plans: Vec<(String, String)> = sqlx::query_as(
            "SELECT uid, name FROM plans WHERE backup_server_uid = $1 ORDER BY name",
        )
        .bind(uid_text(server))
        .fetch_all(&mut *tx)
        .await?;
        let reported: Vec<String> = fleet.plans.iter().map(|plan| uid_text(plan.uid)).collect();
        let (mut plans_removed, mut plans_kept) = (Vec::new(), Vec::new());
        for (uid, name) in plans.into_iter().filter(|(uid, _)| !reported.contains(uid)) {
            let sessions: (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM sessions WHERE plan_uid = $1")
                    .bind(&uid)
                    .fetch_one(&mut *tx)
                    .await?;
            if sessions.0 > 0 {
                plans_kept.push(name);
                continue;
            }
            let vms: Vec<(String,)> =
                sqlx::query_as("SELECT uid FROM plan_objects WHERE plan_uid = $1")
                    .bind(&uid)
                    .fetch_all(&mut *tx)
                    .await?;
            let mut all_gone = true;
            for (vm,) in vms {
                all_gone &= remove_vm_without_history(&mut tx, server, &vm).await?;
            }
            if !all_gone {
                plans_kept.push(name);
                continue;
            }
            sqlx::query("DELETE FROM plans WHERE uid = $1")
                .bind(&uid)
                .execute(&mut *tx)
                .await?;
            plans_removed.push(name);
        }
        tx.commit().await?;
        self.freshness.advance(Topics::ALL);
        Ok(InventoryChange {
            summary,
            restore_points_removed: removed,
            vms_removed,
            plans_removed,
            plans_kept,
        })
    }

    async fn queue_command(
        &self,
        server: Uuid,
        operation_id: &str,
        body: &str,
        now: Timestamp,
    ) -> Result<QueuedCommand, StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO agent_commands (server_uid, operation_id, body, queued_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (server_uid, operation_id) DO NOTHING",
        )
        .bind(uid_text(server))
        .bind(operation_id)
        .bind(body)
        .bind(now.ticks())
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COMMAND_COLUMNS} WHERE server_uid = $1 AND operation_id = $2"
        )))
        .bind(uid_text(server))
        .bind(operation_id)
        .fetch_one(&mut *tx)
        .await?;
        let command = queued_command(&row)?;
        tx.commit().await?;
        self.changes.notify_waiters();
        Ok(command)
    }

    async fn command(
        &self,
        server: Uuid,
        operation_id: &str,
    ) -> Result<Option<QueuedCommand>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COMMAND_COLUMNS} WHERE server_uid = $1 AND operation_id = $2"
        )))
        .bind(uid_text(server))
        .bind(operation_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(queued_command).transpose()
    }

    async fn take_commands(
        &self,
        server: Uuid,
        all: bool,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<QueuedCommand>, StoreError> {
        // Not only the never delivered: also those delivered a while ago that the agent never
        // acknowledged (a poll's answer lost on the way), delivered again.
        let undelivered = if all {
            ""
        } else {
            " AND (delivered_at IS NULL OR (outcome IS NULL AND delivered_at < $3))"
        };
        let mut tx = self.writer.begin().await?;
        let query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COMMAND_COLUMNS} WHERE server_uid = $1 AND (outcome IS NULL OR outcome = 'running'){undelivered} \
             ORDER BY queued_at, operation_id LIMIT $2"
        )))
        .bind(uid_text(server))
        .bind(i64::from(limit));
        let query = if all {
            query
        } else {
            query.bind(now.plus_millis(-(REDELIVER_AFTER_MS)).ticks())
        };
        let rows = query.fetch_all(&mut *tx).await?;
        let candidates: Vec<QueuedCommand> =
            rows.iter().map(queued_command).collect::<Result<_, _>>()?;
        let mut commands = Vec::with_capacity(candidates.len());
        for command in candidates {
            // Still open when marked: on PostgreSQL a cancel may have ended it since the read,
            // and a cancelled command must never reach the host.
            let marked = sqlx::query(
                "UPDATE agent_commands SET delivered_at = $3, deliveries = deliveries + 1 \
                 WHERE server_uid = $1 AND operation_id = $2 AND (outcome IS NULL OR outcome = 'running')",
            )
            .bind(uid_text(server))
            .bind(&command.operation_id)
            .bind(now.ticks())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if marked == 1 {
                commands.push(command);
            }
        }
        tx.commit().await?;
        Ok(commands)
    }

    async fn cancel_undelivered(
        &self,
        server: Uuid,
        operation_id: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE agent_commands SET outcome = 'cancelled', detail = $3 \
             WHERE server_uid = $1 AND operation_id = $2 AND delivered_at IS NULL AND outcome IS NULL",
        )
        .bind(uid_text(server))
        .bind(operation_id)
        .bind(crate::bounded(reason, MAX_DETAIL))
        .execute(&self.writer)
        .await?
        .rows_affected();
        if changed > 0 {
            self.changes.notify_waiters();
        }
        Ok(changed > 0)
    }

    async fn record_results(
        &self,
        server: Uuid,
        results: &[OperationResult],
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut finished = 0;
        let mut tx = self.writer.begin().await?;
        for result in results {
            // Only a command still open takes a result: the first final one is the one kept.
            let changed = sqlx::query(
                "UPDATE agent_commands SET outcome = $3, detail = $4, reported_at = $5 \
                 WHERE server_uid = $1 AND operation_id = $2 AND (outcome IS NULL OR outcome = 'running')",
            )
            .bind(uid_text(server))
            .bind(&result.operation_id)
            .bind(result.outcome.as_str())
            .bind(crate::bounded(&result.detail, MAX_DETAIL))
            .bind(now.ticks())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if result.outcome.is_final() {
                finished += changed;
            }
            if let Some(replica) = &result.replica {
                upsert_replica(&mut tx, server, replica).await?;
            }
        }
        tx.commit().await?;
        self.changes.notify_waiters();
        Ok(finished)
    }

    async fn record_replicas(
        &self,
        server: Uuid,
        replicas: &[ReplicaReport],
    ) -> Result<(), StoreError> {
        if replicas.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        for replica in replicas {
            upsert_replica(&mut tx, server, replica).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn replica(&self, server: Uuid, vm: Uuid) -> Result<ReportedReplica, StoreError> {
        let state: Option<(String,)> = sqlx::query_as(
            "SELECT state FROM agent_replicas WHERE server_uid = $1 AND vm_uid = $2",
        )
        .bind(uid_text(server))
        .bind(uid_text(vm))
        .fetch_optional(&self.pool)
        .await?;
        match state.as_ref().map(|(state,)| state.as_str()) {
            None | Some("off") => Ok(ReportedReplica::Off),
            Some("failover") => Ok(ReportedReplica::Running { test: false }),
            Some("test") => Ok(ReportedReplica::Running { test: true }),
            Some(other) => Err(StoreError::Corrupt {
                table: "agent_replicas",
                column: "state",
                value: other.to_owned(),
            }),
        }
    }

    async fn vm_context(&self, vm: Uuid) -> Result<Option<VmContext>, StoreError> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT p.uid, p.name, o.name FROM plan_objects o JOIN plans p ON p.uid = o.plan_uid \
             WHERE o.uid = $1",
        )
        .bind(uid_text(vm))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(plan, plan_name, vm_name)| {
            Ok(VmContext {
                plan_uid: parse_uid("plans", "uid", &plan)?,
                plan_name,
                vm_name,
            })
        })
        .transpose()
    }

    async fn session_context(&self, session: Uuid) -> Result<Option<SessionContext>, StoreError> {
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT p.uid, p.name, s.kind FROM sessions s JOIN plans p ON p.uid = s.plan_uid \
             WHERE s.uid = $1",
        )
        .bind(uid_text(session))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(plan, plan_name, kind)| {
            Ok(SessionContext {
                plan_uid: parse_uid("plans", "uid", &plan)?,
                plan_name,
                test: kind == "test",
            })
        })
        .transpose()
    }

    async fn restore_point_time(&self, point: Uuid) -> Result<Option<Timestamp>, StoreError> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT created_at FROM restore_points WHERE uid = $1")
                .bind(uid_text(point))
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(ticks,)| Timestamp::from_ticks(ticks)))
    }

    fn changes(&self) -> Arc<tokio::sync::Notify> {
        self.changes.clone()
    }
}

impl SqlAgentStore {
    async fn authenticate_agent_on(
        &self,
        pool: &Pool,
        credential_hash: &str,
    ) -> Result<Option<AgentIdentity>, StoreError> {
        let row = sqlx::query(
            "SELECT a.server_uid, s.name, s.organization_uid FROM agents a \
             JOIN backup_servers s ON s.uid = a.server_uid WHERE a.credential_hash = $1",
        )
        .bind(credential_hash)
        .fetch_optional(pool)
        .await?;
        row.as_ref().map(identity).transpose()
    }
}

/// Removes a VM with its restore points unless a session ever ran on it; `true` if removed.
async fn remove_vm_without_history(
    tx: &mut sqlx::Transaction<'_, super::Db>,
    server: Uuid,
    vm: &str,
) -> Result<bool, StoreError> {
    let steps: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM vm_sessions WHERE object_uid = $1")
        .bind(vm)
        .fetch_one(&mut **tx)
        .await?;
    if steps.0 > 0 {
        return Ok(false);
    }
    for statement in [
        "DELETE FROM restore_points WHERE object_uid = $1",
        "DELETE FROM sim_replicas WHERE object_uid = $1",
        "DELETE FROM sim_faults WHERE target_uid = $1",
        "DELETE FROM plan_objects WHERE uid = $1",
    ] {
        sqlx::query(statement).bind(vm).execute(&mut **tx).await?;
    }
    sqlx::query("DELETE FROM agent_replicas WHERE server_uid = $1 AND vm_uid = $2")
        .bind(uid_text(server))
        .bind(vm)
        .execute(&mut **tx)
        .await?;
    Ok(true)
}

async fn upsert_replica(
    tx: &mut sqlx::Transaction<'_, super::Db>,
    server: Uuid,
    replica: &ReplicaReport,
) -> Result<(), StoreError> {
    let state = match (replica.running, replica.test) {
        (false, _) => "off",
        (true, false) => "failover",
        (true, true) => "test",
    };
    sqlx::query(
        "INSERT INTO agent_replicas (server_uid, vm_uid, state, version) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (server_uid, vm_uid) DO UPDATE SET state = excluded.state, version = excluded.version \
         WHERE agent_replicas.version < excluded.version",
    )
    .bind(uid_text(server))
    .bind(uid_text(replica.vm_uid))
    .bind(state)
    .bind(replica.version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

//! Fleet import: one transaction of upserts. Re-importing the same fleet changes nothing; a
//! changed file updates what it declares (names, types, tenants, commands, VM settings) and adds
//! new restore points, but never touches a plan's status or its sessions.

use super::{DbArguments, Pool};
use sqlx::{Arguments, AssertSqlSafe, Transaction};
use standby_fleet::Fleet;
use standby_model::{PlanStatus, RecoveryTargets, Timestamp, WireEnum};
use uuid::Uuid;

use crate::keys::text_keys;
use crate::rows::uid_text;
use crate::{ImportSummary, StoreError};

/// Rows per multi-row INSERT (well under SQLite's 32,766 bound parameters).
const CHUNK_ROWS: usize = 400;

type Row = Vec<Value>;

/// A bound value of an import row.
enum Value {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
}

fn bind(arguments: &mut DbArguments, value: Value) -> Result<(), StoreError> {
    let added = match value {
        Value::Text(text) => arguments.add(text),
        Value::OptText(text) => arguments.add(text),
        Value::Int(number) => arguments.add(number),
        Value::OptInt(number) => arguments.add(number),
    };
    added.map_err(|e| StoreError::Database(sqlx::Error::Encode(e)))
}

/// `INSERT INTO table (columns) VALUES (...), (...) <tail>` in chunks; returns rows changed.
async fn insert_rows(
    tx: &mut Transaction<'_, super::Db>,
    table: &str,
    columns: &[&str],
    tail: &str,
    rows: Vec<Row>,
) -> Result<u64, StoreError> {
    let mut changed = 0;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Row> = rows.by_ref().take(CHUNK_ROWS).collect();
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        let mut arguments = DbArguments::default();
        let mut index = 0;
        for (r, row) in chunk.into_iter().enumerate() {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for (c, value) in row.into_iter().enumerate() {
                index += 1;
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${index}"));
                bind(&mut arguments, value)?;
            }
            sql.push(')');
        }
        sql.push(' ');
        sql.push_str(tail);
        // The SQL text is built from our own table and column names only; values are bound.
        changed += sqlx::query_with(AssertSqlSafe(sql), arguments)
            .execute(&mut **tx)
            .await?
            .rows_affected();
    }
    Ok(changed)
}

pub(super) async fn import_fleet(pool: &Pool, fleet: &Fleet) -> Result<ImportSummary, StoreError> {
    let mut tx = pool.begin().await?;
    let summary = import_in(&mut tx, fleet).await?;
    tx.commit().await?;
    Ok(summary)
}

/// Imports the fleet only into a store without plans, atomically: of several nodes starting
/// at once on one empty database, exactly one seeds it. `None`: the store already had plans.
pub(super) async fn seed_fleet(
    pool: &Pool,
    fleet: &Fleet,
) -> Result<Option<ImportSummary>, StoreError> {
    let mut tx = pool.begin().await?;
    if let Some(lock) = super::SEED_LOCK {
        sqlx::query(lock).execute(&mut *tx).await?;
    }
    let existing: Option<(String,)> = sqlx::query_as("SELECT uid FROM plans LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?;
    if existing.is_some() {
        return Ok(None);
    }
    let summary = import_in(&mut tx, fleet).await?;
    tx.commit().await?;
    Ok(Some(summary))
}

/// One table's rows for an upsert, each column named once beside its value: the INSERT's
/// column list and the ON CONFLICT update are generated from the names, so adding a column is
/// one line here and cannot leave the update list behind.
struct Rows {
    columns: Vec<&'static str>,
    rows: Vec<Row>,
}

/// One row being built.
#[derive(Default)]
struct RowBuilder {
    columns: Vec<&'static str>,
    values: Row,
}

impl RowBuilder {
    fn text(mut self, column: &'static str, value: impl Into<String>) -> Self {
        self.columns.push(column);
        self.values.push(Value::Text(value.into()));
        self
    }

    fn opt_text(mut self, column: &'static str, value: Option<String>) -> Self {
        self.columns.push(column);
        self.values.push(Value::OptText(value));
        self
    }

    fn opt_int(mut self, column: &'static str, value: Option<i64>) -> Self {
        self.columns.push(column);
        self.values.push(Value::OptInt(value));
        self
    }

    fn int(mut self, column: &'static str, value: i64) -> Self {
        self.columns.push(column);
        self.values.push(Value::Int(value));
        self
    }

    /// A filterable text with its ignorecase and lexicographic keys: `name`, `name_ci`,
    /// `name_nat` (the three column names are given, being `'static`).
    fn keyed(self, columns: [&'static str; 3], value: &str) -> Self {
        let (text, folded, natural) = text_keys(value);
        self.text(columns[0], text)
            .text(columns[1], folded)
            .text(columns[2], natural)
    }
}

impl Rows {
    fn of<T>(items: &[T], row: impl Fn(&T) -> RowBuilder) -> Rows {
        let mut columns = Vec::new();
        let rows = items
            .iter()
            .map(|item| {
                let built = row(item);
                if columns.is_empty() {
                    columns = built.columns;
                }
                built.values
            })
            .collect();
        Rows { columns, rows }
    }

    /// Inserts, updating every column but the key and `keep` on a conflict of the key.
    async fn upsert(
        self,
        tx: &mut Transaction<'_, super::Db>,
        table: &str,
        key: &str,
        keep: &[&str],
    ) -> Result<u64, StoreError> {
        let updates: Vec<String> = self
            .columns
            .iter()
            .filter(|column| **column != key && !keep.contains(column))
            .map(|column| format!("{column} = excluded.{column}"))
            .collect();
        let tail = format!("ON CONFLICT ({key}) DO UPDATE SET {}", updates.join(", "));
        insert_rows(tx, table, &self.columns, &tail, self.rows).await
    }

    /// Inserts; a row that exists already is an error.
    async fn insert(
        self,
        tx: &mut Transaction<'_, super::Db>,
        table: &str,
    ) -> Result<u64, StoreError> {
        insert_rows(tx, table, &self.columns, "", self.rows).await
    }

    /// Inserts, leaving rows that exist (by any unique key) as they are.
    async fn insert_new(
        self,
        tx: &mut Transaction<'_, super::Db>,
        table: &str,
    ) -> Result<u64, StoreError> {
        insert_rows(
            tx,
            table,
            &self.columns,
            "ON CONFLICT DO NOTHING",
            self.rows,
        )
        .await
    }
}

pub(super) async fn import_in(
    tx: &mut Transaction<'_, super::Db>,
    fleet: &Fleet,
) -> Result<ImportSummary, StoreError> {
    let now = Timestamp::now().ticks();
    let mut sessions_added = 0;

    let organizations = Rows::of(&fleet.organizations, |o| {
        RowBuilder::default()
            .text("uid", uid_text(o.uid))
            .text("name", o.name.as_str())
            .text("kind", o.kind.as_str())
    })
    .upsert(tx, "organizations", "uid", &[])
    .await?;
    Rows::of(&fleet.tenants, |t| {
        RowBuilder::default()
            .text("uid", uid_text(t.uid))
            .text("name", t.name.as_str())
            .text("organization_uid", uid_text(t.organization_uid))
    })
    .upsert(tx, "tenants", "uid", &[])
    .await?;
    let servers = Rows::of(&fleet.servers, |s| {
        RowBuilder::default()
            .text("uid", uid_text(s.uid))
            .text("name", s.name.as_str())
            .text("organization_uid", uid_text(s.organization_uid))
            .text("connector", s.connector.as_str())
            .text("connector_settings", s.connector_settings.to_json())
    })
    .upsert(tx, "backup_servers", "uid", &[])
    .await?;
    // A re-import never touches a plan's status (its sessions own it).
    let plans = Rows::of(&fleet.plans, |p| {
        RowBuilder::default()
            .text("uid", uid_text(p.uid))
            .text("original_uid", uid_text(p.original_uid))
            .text("backup_server_uid", uid_text(p.backup_server_uid))
            .keyed(["name", "name_ci", "name_nat"], &p.name)
            .text("type", p.plan_type.as_str())
            .text("status", PlanStatus::Ready.as_str())
            .opt_text("tenant_uid", p.tenant_uid.map(uid_text))
            .keyed(
                [
                    "pre_failover_command",
                    "pre_failover_command_ci",
                    "pre_failover_command_nat",
                ],
                &p.pre_failover_command,
            )
            .keyed(
                [
                    "post_failover_command",
                    "post_failover_command_ci",
                    "post_failover_command_nat",
                ],
                &p.post_failover_command,
            )
            .int("updated_at", now)
    })
    .upsert(tx, "plans", "uid", &["status"])
    .await?;
    // Targets the fleet declares replace the stored ones; a plan declaring none keeps its own.
    let declared: Vec<(Uuid, RecoveryTargets)> = fleet
        .plans
        .iter()
        .filter_map(|p| p.targets.map(|targets| (p.uid, targets)))
        .collect();
    if !declared.is_empty() {
        Rows::of(&declared, |(plan, targets)| {
            RowBuilder::default()
                .text("plan_uid", uid_text(*plan))
                .opt_int("rto_seconds", targets.rto_seconds.map(i64::from))
                .opt_int("rpo_seconds", targets.rpo_seconds.map(i64::from))
                .int("updated_at", now)
        })
        .upsert(tx, "plan_targets", "plan_uid", &[])
        .await?;
    }
    let objects = Rows::of(&fleet.objects, |o| {
        RowBuilder::default()
            .text("uid", uid_text(o.uid))
            .text("plan_uid", uid_text(o.plan_uid))
            .text("backup_server_uid", uid_text(o.backup_server_uid))
            .keyed(["name", "name_ci", "name_nat"], &o.name)
            .keyed(["host_name", "host_name_ci", "host_name_nat"], &o.host_name)
            .keyed(
                ["folder_name", "folder_name_ci", "folder_name_nat"],
                &o.folder_name,
            )
            .keyed(["path", "path_ci", "path_nat"], &o.path)
            .int("boot_order", i64::from(o.boot_order))
            .int("boot_delay_seconds", i64::from(o.boot_delay_seconds))
    })
    .upsert(tx, "plan_objects", "uid", &[])
    .await?;
    // Only the plans this fleet declares (a fleet's VMs are always in its own plans): a large
    // fleet imported slice by slice must not recount every plan each time.
    let plan_uids: Vec<String> = fleet.plans.iter().map(|p| uid_text(p.uid)).collect();
    for chunk in plan_uids.chunks(CHUNK_ROWS) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "UPDATE plans SET objects_count = (SELECT COUNT(*) FROM plan_objects o WHERE o.plan_uid = plans.uid) \
             WHERE uid IN ({})",
            placeholders.join(", ")
        );
        let mut arguments = DbArguments::default();
        for plan in chunk {
            bind(&mut arguments, Value::Text(plan.clone()))?;
        }
        sqlx::query_with(AssertSqlSafe(sql), arguments)
            .execute(&mut **tx)
            .await?;
    }
    // The fleet's servers and VMs get exactly the sim faults it declares.
    let targets: Vec<String> = fleet
        .servers
        .iter()
        .map(|s| s.uid)
        .chain(fleet.objects.iter().map(|o| o.uid))
        .map(uid_text)
        .collect();
    for chunk in targets.chunks(CHUNK_ROWS) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "DELETE FROM sim_faults WHERE target_uid IN ({})",
            placeholders.join(", ")
        );
        let mut arguments = DbArguments::default();
        for target in chunk {
            bind(&mut arguments, Value::Text(target.clone()))?;
        }
        sqlx::query_with(AssertSqlSafe(sql), arguments)
            .execute(&mut **tx)
            .await?;
    }
    let faults = fleet
        .servers
        .iter()
        .flat_map(|s| s.sim_faults.iter().map(move |f| (s.uid, f)))
        .chain(
            fleet
                .objects
                .iter()
                .flat_map(|o| o.sim_faults.iter().map(move |f| (o.uid, f))),
        )
        .map(|(target, fault)| {
            vec![
                Value::Text(uid_text(target)),
                Value::Text(fault.as_str().to_owned()),
            ]
        })
        .collect();
    insert_rows(
        tx,
        "sim_faults",
        &["target_uid", "fault"],
        "ON CONFLICT DO NOTHING",
        faults,
    )
    .await?;
    let restore_points_added = Rows::of(&fleet.restore_points, |p| {
        RowBuilder::default()
            .text("uid", uid_text(p.uid))
            .text("object_uid", uid_text(p.object_uid))
            .int("created_at", p.created_at.ticks())
    })
    .insert_new(tx, "restore_points")
    .await?;

    for session in &fleet.history {
        let message = session.message.as_deref().map(text_keys);
        let inserted = sqlx::query(
            "INSERT INTO sessions (uid, plan_uid, kind, status, message, message_ci, message_nat, started_by, requested_point, \
             start_time, end_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (uid) DO NOTHING",
        )
        .bind(uid_text(session.uid))
        .bind(uid_text(session.plan_uid))
        .bind(session.kind.as_str())
        .bind(session.status.as_str())
        .bind(message.as_ref().map(|m| m.0.clone()))
        .bind(message.as_ref().map(|m| m.1.clone()))
        .bind(message.as_ref().map(|m| m.2.clone()))
        .bind(&session.started_by)
        .bind(session.requested_point.map(|p| p.ticks()))
        .bind(session.start_time.ticks())
        .bind(session.end_time.ticks())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            continue;
        }
        sessions_added += 1;
        let messages: Vec<(usize, &standby_model::SessionMessage)> =
            session.messages.iter().enumerate().collect();
        Rows::of(&messages, |(seq, m)| {
            RowBuilder::default()
                .text("session_uid", uid_text(session.uid))
                .int("seq", *seq as i64)
                .text("title", m.title.as_str())
                .text("description", m.description.as_str())
                .text("severity", m.severity.as_str())
                .opt_int("start_time", m.start_time.map(|t| t.ticks()))
                .opt_int("end_time", m.end_time.map(|t| t.ticks()))
        })
        .insert(tx, "session_messages")
        .await?;
        Rows::of(&session.vm_sessions, |v| {
            RowBuilder::default()
                .text("uid", uid_text(v.uid))
                .text("session_uid", uid_text(session.uid))
                .text("object_uid", uid_text(v.object_uid))
                .text("backup_status", v.backup_status.as_str())
                .opt_text("restore_point_uid", v.restore_point_uid.map(uid_text))
                .opt_int(
                    "restore_point_time",
                    v.restore_point_time.map(|t| t.ticks()),
                )
                .int("start_time", v.start_time.ticks())
                .opt_int("end_time", v.end_time.map(|t| t.ticks()))
        })
        .insert(tx, "vm_sessions")
        .await?;
        sqlx::query(
            "UPDATE plan_objects SET restore_session_uid = (SELECT v.uid FROM vm_sessions v \
               WHERE v.session_uid = $1 AND v.object_uid = plan_objects.uid) \
             WHERE uid IN (SELECT object_uid FROM vm_sessions WHERE session_uid = $1)",
        )
        .bind(uid_text(session.uid))
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE plans SET status = $1, last_session_uid = $2, updated_at = $3 WHERE uid = $4",
        )
        .bind(session.plan_status_after.as_str())
        .bind(uid_text(session.uid))
        .bind(now)
        .bind(uid_text(session.plan_uid))
        .execute(&mut **tx)
        .await?;
    }
    Ok(ImportSummary {
        organizations,
        servers,
        plans,
        objects,
        restore_points_added,
        sessions_added,
    })
}

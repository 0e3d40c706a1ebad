//! Fleet import: one transaction of upserts. Re-importing the same fleet changes nothing; a
//! changed file updates what it declares (names, types, tenants, commands, VM settings) and adds
//! new restore points, but never touches a plan's status or its sessions.

use super::{DbArguments, Pool};
use sqlx::{Arguments, AssertSqlSafe, Transaction};
use standby_fleet::Fleet;
use standby_model::{PlanStatus, Timestamp, WireEnum};

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

async fn import_in(
    tx: &mut Transaction<'_, super::Db>,
    fleet: &Fleet,
) -> Result<ImportSummary, StoreError> {
    let now = Timestamp::now().ticks();
    let mut sessions_added = 0;

    let organizations = insert_rows(
        tx,
        "organizations",
        &["uid", "name", "kind"],
        "ON CONFLICT (uid) DO UPDATE SET name = excluded.name, kind = excluded.kind",
        fleet
            .organizations
            .iter()
            .map(|o| {
                vec![
                    Value::Text(uid_text(o.uid)),
                    Value::Text(o.name.clone()),
                    Value::Text(o.kind.as_str().into()),
                ]
            })
            .collect(),
    )
    .await?;
    insert_rows(
        tx,
        "tenants",
        &["uid", "name", "organization_uid"],
        "ON CONFLICT (uid) DO UPDATE SET name = excluded.name, organization_uid = excluded.organization_uid",
        fleet
            .tenants
            .iter()
            .map(|t| vec![Value::Text(uid_text(t.uid)), Value::Text(t.name.clone()), Value::Text(uid_text(t.organization_uid))])
            .collect(),
    )
    .await?;
    let servers = insert_rows(
        tx,
        "backup_servers",
        &["uid", "name", "organization_uid", "connector", "connector_settings"],
        "ON CONFLICT (uid) DO UPDATE SET name = excluded.name, organization_uid = excluded.organization_uid, \
         connector = excluded.connector, connector_settings = excluded.connector_settings",
        fleet
            .servers
            .iter()
            .map(|s| {
                vec![
                    Value::Text(uid_text(s.uid)),
                    Value::Text(s.name.clone()),
                    Value::Text(uid_text(s.organization_uid)),
                    Value::Text(s.connector.clone()),
                    Value::Text(s.connector_settings.to_json()),
                ]
            })
            .collect(),
    )
    .await?;
    let plans = insert_rows(
        tx,
        "plans",
        &[
            "uid", "original_uid", "backup_server_uid", "name", "name_ci", "name_nat", "type", "status", "tenant_uid",
            "pre_failover_command", "pre_failover_command_ci", "pre_failover_command_nat", "post_failover_command",
            "post_failover_command_ci", "post_failover_command_nat", "updated_at",
        ],
        "ON CONFLICT (uid) DO UPDATE SET original_uid = excluded.original_uid, backup_server_uid = excluded.backup_server_uid, \
         name = excluded.name, name_ci = excluded.name_ci, name_nat = excluded.name_nat, type = excluded.type, \
         tenant_uid = excluded.tenant_uid, pre_failover_command = excluded.pre_failover_command, \
         pre_failover_command_ci = excluded.pre_failover_command_ci, pre_failover_command_nat = excluded.pre_failover_command_nat, \
         post_failover_command = excluded.post_failover_command, post_failover_command_ci = excluded.post_failover_command_ci, \
         post_failover_command_nat = excluded.post_failover_command_nat, updated_at = excluded.updated_at",
        fleet
            .plans
            .iter()
            .map(|p| {
                let (name, name_ci, name_nat) = text_keys(&p.name);
                let (pre, pre_ci, pre_nat) = text_keys(&p.pre_failover_command);
                let (post, post_ci, post_nat) = text_keys(&p.post_failover_command);
                vec![
                    Value::Text(uid_text(p.uid)),
                    Value::Text(uid_text(p.original_uid)),
                    Value::Text(uid_text(p.backup_server_uid)),
                    Value::Text(name),
                    Value::Text(name_ci),
                    Value::Text(name_nat),
                    Value::Text(p.plan_type.as_str().into()),
                    Value::Text(PlanStatus::Ready.as_str().into()),
                    Value::OptText(p.tenant_uid.map(uid_text)),
                    Value::Text(pre),
                    Value::Text(pre_ci),
                    Value::Text(pre_nat),
                    Value::Text(post),
                    Value::Text(post_ci),
                    Value::Text(post_nat),
                    Value::Int(now),
                ]
            })
            .collect(),
    )
    .await?;
    let objects = insert_rows(
        tx,
        "plan_objects",
        &[
            "uid", "plan_uid", "backup_server_uid", "name", "name_ci", "name_nat", "host_name", "host_name_ci", "host_name_nat",
            "folder_name", "folder_name_ci", "folder_name_nat", "path", "path_ci", "path_nat", "boot_order", "boot_delay_seconds",
        ],
        "ON CONFLICT (uid) DO UPDATE SET plan_uid = excluded.plan_uid, backup_server_uid = excluded.backup_server_uid, \
         name = excluded.name, name_ci = excluded.name_ci, name_nat = excluded.name_nat, host_name = excluded.host_name, \
         host_name_ci = excluded.host_name_ci, host_name_nat = excluded.host_name_nat, folder_name = excluded.folder_name, \
         folder_name_ci = excluded.folder_name_ci, folder_name_nat = excluded.folder_name_nat, path = excluded.path, \
         path_ci = excluded.path_ci, path_nat = excluded.path_nat, boot_order = excluded.boot_order, \
         boot_delay_seconds = excluded.boot_delay_seconds",
        fleet
            .objects
            .iter()
            .map(|o| {
                let mut row = vec![
                    Value::Text(uid_text(o.uid)),
                    Value::Text(uid_text(o.plan_uid)),
                    Value::Text(uid_text(o.backup_server_uid)),
                ];
                for text in [&o.name, &o.host_name, &o.folder_name, &o.path] {
                    let (value, folded, natural) = text_keys(text);
                    row.extend([Value::Text(value), Value::Text(folded), Value::Text(natural)]);
                }
                row.extend([Value::Int(i64::from(o.boot_order)), Value::Int(i64::from(o.boot_delay_seconds))]);
                row
            })
            .collect(),
    )
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
    let restore_points_added = insert_rows(
        tx,
        "restore_points",
        &["uid", "object_uid", "created_at"],
        "ON CONFLICT (uid) DO NOTHING",
        fleet
            .restore_points
            .iter()
            .map(|p| {
                vec![
                    Value::Text(uid_text(p.uid)),
                    Value::Text(uid_text(p.object_uid)),
                    Value::Int(p.created_at.ticks()),
                ]
            })
            .collect(),
    )
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
        insert_rows(
            tx,
            "session_messages",
            &[
                "session_uid",
                "seq",
                "title",
                "description",
                "severity",
                "start_time",
                "end_time",
            ],
            "",
            session
                .messages
                .iter()
                .enumerate()
                .map(|(seq, m)| {
                    vec![
                        Value::Text(uid_text(session.uid)),
                        Value::Int(seq as i64),
                        Value::Text(m.title.clone()),
                        Value::Text(m.description.clone()),
                        Value::Text(m.severity.as_str().into()),
                        Value::OptInt(m.start_time.map(|t| t.ticks())),
                        Value::OptInt(m.end_time.map(|t| t.ticks())),
                    ]
                })
                .collect(),
        )
        .await?;
        insert_rows(
            tx,
            "vm_sessions",
            &[
                "uid",
                "session_uid",
                "object_uid",
                "backup_status",
                "restore_point_uid",
                "restore_point_time",
                "start_time",
                "end_time",
            ],
            "",
            session
                .vm_sessions
                .iter()
                .map(|v| {
                    vec![
                        Value::Text(uid_text(v.uid)),
                        Value::Text(uid_text(session.uid)),
                        Value::Text(uid_text(v.object_uid)),
                        Value::Text(v.backup_status.as_str().into()),
                        Value::OptText(v.restore_point_uid.map(uid_text)),
                        Value::OptInt(v.restore_point_time.map(|t| t.ticks())),
                        Value::Int(v.start_time.ticks()),
                        Value::OptInt(v.end_time.map(|t| t.ticks())),
                    ]
                })
                .collect(),
        )
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

//! Reads of plans and plan objects (with their sessions), and PATCH.

use std::collections::HashMap;

use super::{DbArguments, DbRow, Pool};
use sqlx::{Arguments, AssertSqlSafe, Connection, Row};
use standby_model::state::{PlanRequest, on_request};
use standby_model::{
    BackupStatus, FailoverPlan, LastSession, MessageSeverity, PlanObject, PlanStatus, PlanType,
    RestoreSession, SessionMessage, SessionStatus, Timestamp, WireEnum,
};
use standby_query::sql::SqlBuilder;
use standby_query::{Filter, Scalar};
use uuid::Uuid;

use crate::freshness::{Freshness, Topics};
use crate::keys::text_keys;
use crate::rows::{parse_enum, parse_optional_uid, parse_uid, ts, uid_text};
use crate::{CommandChange, ListQuery, Page, Scope, StoreError};

/// Binds the query language's values in order.
pub(super) fn arguments(binds: &[Scalar]) -> Result<DbArguments, StoreError> {
    let mut arguments = DbArguments::default();
    for bind in binds {
        let added = match bind {
            Scalar::Null => arguments.add(Option::<String>::None),
            Scalar::Bool(flag) => arguments.add(*flag),
            Scalar::Int(number) => arguments.add(*number),
            Scalar::Text(text) => arguments.add(text.clone()),
        };
        added.map_err(|e| StoreError::Database(sqlx::Error::Encode(e)))?;
    }
    Ok(arguments)
}

/// Server and company names of a page of plans, one query per 500 plans (a page is at most
/// a few hundred).
pub(super) async fn plan_owners(
    pool: &Pool,
    plans: &[Uuid],
) -> Result<HashMap<Uuid, crate::PlanOwner>, StoreError> {
    let mut owners = HashMap::with_capacity(plans.len());
    for chunk in plans.chunks(500) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT p.uid, s.name, COALESCE(tenant_company.name, server_company.name), ls.kind, ls.start_time \
             FROM plans p JOIN backup_servers s ON s.uid = p.backup_server_uid \
             LEFT JOIN sessions ls ON ls.uid = p.last_session_uid \
             JOIN organizations server_company ON server_company.uid = s.organization_uid \
             LEFT JOIN tenants t ON t.uid = p.tenant_uid \
             LEFT JOIN organizations tenant_company ON tenant_company.uid = t.organization_uid \
             WHERE p.uid IN ({})",
            placeholders.join(", ")
        );
        type OwnerRow = (String, String, String, Option<String>, Option<i64>);
        let mut query = sqlx::query_as::<_, OwnerRow>(AssertSqlSafe(sql));
        for plan in chunk {
            query = query.bind(uid_text(*plan));
        }
        for (uid, server_name, company_name, kind, start) in query.fetch_all(pool).await? {
            let last_run = match (kind, start) {
                (Some(kind), Some(start)) => Some((
                    standby_model::SessionKind::parse(&kind).ok_or_else(|| {
                        StoreError::Corrupt {
                            table: "sessions",
                            column: "kind",
                            value: kind.clone(),
                        }
                    })?,
                    Timestamp::from_ticks(start),
                )),
                _ => None,
            };
            owners.insert(
                parse_uid("plans", "uid", &uid)?,
                crate::PlanOwner {
                    server_name,
                    company_name,
                    last_run,
                },
            );
        }
    }
    Ok(owners)
}

pub(super) async fn boot_order(pool: &Pool, plan: Uuid) -> Result<Vec<Uuid>, StoreError> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT uid FROM plan_objects WHERE plan_uid = $1 ORDER BY boot_order, uid")
            .bind(uid_text(plan))
            .fetch_all(pool)
            .await?;
    rows.iter()
        .map(|(uid,)| parse_uid("plan_objects", "uid", uid))
        .collect()
}

/// A plan's columns, read as one JSON array per plan ([`PlanRow`]).
const PLAN_COLUMNS: &str = "p.uid, p.original_uid, p.backup_server_uid, p.name, p.type, p.status, p.tenant_uid, \
     p.objects_count, p.pre_failover_command, p.post_failover_command, ls.uid, ls.end_time, ls.status, ls.message";

const OBJECT_SELECT: &str = "SELECT o.uid, o.plan_uid, o.name, o.host_name, o.folder_name, o.path, o.backup_server_uid, \
     rs.uid, rs.backup_status, rs.restore_point_uid, rs.restore_point_time, rs.start_time, rs.end_time";

/// Where every condition list starts; each condition is appended as ` AND ...`.
const NO_CONDITION: &str = " WHERE 1=1";

/// The plans an organization may see, as a condition on `{plan_uid}` / `{server_uid}` columns.
fn push_scope(builder: &mut SqlBuilder<'_>, scope: Scope, server_column: &str, plan_column: &str) {
    if let Scope::Organization(organization) = scope {
        builder.push(&format!(
            " AND ({server_column} IN (SELECT uid FROM backup_servers WHERE organization_uid = "
        ));
        builder.push_bind(Scalar::Text(uid_text(organization)));
        builder.push(&format!(
            ") OR {plan_column} IN (SELECT p2.uid FROM plans p2 JOIN tenants t ON t.uid = p2.tenant_uid WHERE t.organization_uid = "
        ));
        builder.push_bind(Scalar::Text(uid_text(organization)));
        builder.push("))");
    }
}

fn push_plan_conditions(
    builder: &mut SqlBuilder<'_>,
    scope: Scope,
    server: Option<Uuid>,
    filter: &Filter,
) {
    builder.push(NO_CONDITION);
    push_scope(builder, scope, "p.backup_server_uid", "p.uid");
    if let Some(server) = server {
        builder.push(" AND p.backup_server_uid = ");
        builder.push_bind(Scalar::Text(uid_text(server)));
    }
    if !filter.is_trivial() {
        builder.push(" AND ");
        builder.push_filter(filter);
    }
}

/// Where a list's rows come from: the table, its joined session, and the key that names a row.
struct ListSource {
    table: &'static str,
    join: &'static str,
    joined_alias: &'static str,
    key: &'static str,
}

const PLAN_SOURCE: ListSource = ListSource {
    table: "plans p",
    join: " LEFT JOIN sessions ls ON ls.uid = p.last_session_uid",
    joined_alias: "ls.",
    key: "p.uid",
};

const OBJECT_SOURCE: ListSource = ListSource {
    table: "plan_objects o",
    join: " LEFT JOIN vm_sessions rs ON rs.uid = o.restore_session_uid",
    joined_alias: "rs.",
    key: "o.uid",
};

impl ListSource {
    /// `FROM` the table and its joined session.
    fn all_tables(&self) -> String {
        format!(" FROM {}{}", self.table, self.join)
    }

    /// `FROM` for a query reading only `sql`: the joined table is left out unless `sql` reads
    /// it, since SQLite would otherwise probe it once per row, which on a large fleet costs
    /// more than the count or the walk itself.
    fn tables_read_by(&self, sql: &str) -> String {
        if sql.contains(self.joined_alias) {
            self.all_tables()
        } else {
            format!(" FROM {}", self.table)
        }
    }
}

/// `SELECT COUNT(*)` over the conditions in `conditions`.
async fn count(
    pool: &Pool,
    freshness: &Freshness,
    topics: Topics,
    conditions: SqlBuilder<'_>,
    source: &ListSource,
) -> Result<u64, StoreError> {
    let from = source.tables_read_by(&conditions.sql);
    // With no condition at all, SQLite counts a table from its b-tree pages without reading a
    // row (100,000 plans: 0.1 ms instead of 5 ms), but only if there is no WHERE clause.
    let conditions_sql = if conditions.sql == NO_CONDITION {
        ""
    } else {
        conditions.sql.as_str()
    };
    let sql = format!("SELECT COUNT(*){from}{conditions_sql}");
    // Counting is most of a list's cost (100,000 index entries for a status filter), and the
    // total only changes with a write of what it counts: it is kept while their stamp holds.
    let generation = freshness.stamp(topics);
    let key = format!("{sql}\n{:?}", conditions.binds);
    let arguments = arguments(&conditions.binds)?;
    freshness
        .count(generation, key, async {
            let row = sqlx::query_with(AssertSqlSafe(sql), arguments)
                .fetch_one(pool)
                .await?;
            Ok(row.try_get::<i64, _>(0)?.max(0) as u64)
        })
        .await
}

pub(super) async fn list_plans(
    pool: &Pool,
    freshness: &Freshness,
    query: &ListQuery,
) -> Result<Page<FailoverPlan>, StoreError> {
    let mut counting = SqlBuilder::new(super::DIALECT);
    push_plan_conditions(&mut counting, query.scope, query.server, &query.filter);
    let total = count(pool, freshness, Topics::PLAN_READ, counting, &PLAN_SOURCE).await?;

    let mut listing = SqlBuilder::new(super::DIALECT);
    listing.push(&plan_select());
    push_page_rows(
        &mut listing,
        &PLAN_SOURCE,
        |builder| push_plan_conditions(builder, query.scope, query.server, &query.filter),
        query,
    );
    let items = fetch_plans(pool, listing).await?;
    Ok(Page { items, total })
}

pub(super) async fn get_plan(
    pool: &Pool,
    scope: Scope,
    uid: Uuid,
) -> Result<Option<FailoverPlan>, StoreError> {
    // One row: read as a row (the JSON page costs more than it saves for one plan: 14,270
    // against 10,361 uncached reads a second on the large fleet).
    let mut builder = SqlBuilder::new(super::DIALECT);
    builder
        .push("SELECT ")
        .push(PLAN_COLUMNS)
        .push(&PLAN_SOURCE.all_tables());
    push_plan_conditions(&mut builder, scope, None, &Filter::And(Vec::new()));
    builder.push(" AND p.uid = ");
    builder.push_bind(Scalar::Text(uid_text(uid)));
    let row = sqlx::query_with(AssertSqlSafe(builder.sql), arguments(&builder.binds)?)
        .fetch_optional(pool)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut plans = vec![plan_from_row(plan_row(&row)?)?];
    attach_messages(pool, &mut plans).await?;
    Ok(plans.pop())
}

/// A row of [`PLAN_COLUMNS`].
fn plan_row(row: &DbRow) -> Result<PlanRow, StoreError> {
    Ok((
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
        row.try_get(5)?,
        row.try_get(6)?,
        row.try_get(7)?,
        row.try_get(8)?,
        row.try_get(9)?,
        row.try_get(10)?,
        row.try_get(11)?,
        row.try_get(12)?,
        row.try_get(13)?,
    ))
}

/// `FROM` and the rest of a page's query, after its `SELECT`. The first page is read directly.
/// A later page first picks its rows' keys from the conditions and the order alone, then reads
/// only those rows: with `OFFSET n` the database otherwise reads, joins and drops n whole rows
/// (page 500 of the large fleet: 11 ms, against 1 ms when an index walk skips them). On the first
/// page, the extra step costs more than it saves (0.28 against 0.20 ms).
///
/// The keys are a table of their own (`page_keys`), not an `IN (...)` correlated with the outer
/// query: should the walk ever leave out the joined session while a condition reads it, the
/// query fails instead of quietly reading the outer row's session.
fn push_page_rows(
    builder: &mut SqlBuilder<'_>,
    source: &ListSource,
    push_conditions: impl Fn(&mut SqlBuilder<'_>),
    query: &ListQuery,
) {
    if query.paging.offset == 0 {
        builder.push(&source.all_tables());
        push_conditions(builder);
        builder.push_order_by(&query.order);
        push_paging(builder, query.paging.limit, 0);
        return;
    }
    // What the walk for the keys reads (its binds are pushed again below, in place).
    let mut walk = SqlBuilder::new(super::DIALECT);
    push_conditions(&mut walk);
    walk.push_order_by(&query.order);
    builder.push(&format!(
        " FROM (SELECT {key} AS page_key{from}",
        key = source.key,
        from = source.tables_read_by(&walk.sql)
    ));
    push_conditions(builder);
    builder.push_order_by(&query.order);
    push_paging(builder, query.paging.limit, query.paging.offset);
    builder.push(&format!(
        ") page_keys JOIN {table} ON {key} = page_keys.page_key{join}",
        table = source.table,
        key = source.key,
        join = source.join
    ));
    builder.push_order_by(&query.order);
}

fn push_paging(builder: &mut SqlBuilder<'_>, limit: u32, offset: u32) {
    builder.push(" LIMIT ");
    builder.push_bind(Scalar::Int(i64::from(limit)));
    builder.push(" OFFSET ");
    builder.push_bind(Scalar::Int(i64::from(offset)));
}

/// `SELECT` of [`PLAN_COLUMNS`] named `c0` to `c13`, for [`fetch_plans`] to turn into JSON after
/// the page is cut (built before the `LIMIT`, PostgreSQL wrote JSON for all 10,000 plans of the
/// medium fleet to keep 100: 40 ms a page).
fn plan_select() -> String {
    let aliased: Vec<String> = PLAN_COLUMNS
        .split(',')
        .enumerate()
        .map(|(i, column)| format!("{} AS c{i}", column.trim()))
        .collect();
    format!("SELECT {}", aliased.join(", "))
}

/// One plan as the database writes it in JSON, in [`PLAN_COLUMNS`]' order.
type PlanRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    String,
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

/// Runs a query of [`plan_select`] rows and reads the page. The database joins the page's rows
/// into one JSON text, so the page crosses from the database to Rust as one value: sqlx's SQLite
/// driver otherwise hands every row from its connection thread to the async side through a
/// channel (a thread wake-up each) and copies every value, which was most of the CPU of a page
/// read afresh.
async fn fetch_plans(
    pool: &Pool,
    builder: SqlBuilder<'_>,
) -> Result<Vec<FailoverPlan>, StoreError> {
    let (open, close) = super::JSON_ARRAY;
    let columns: Vec<String> = (0..PLAN_COLUMNS.split(',').count())
        .map(|i| format!("c{i}"))
        .collect();
    let sql = format!(
        "SELECT COALESCE('[' || string_agg({open}{}{close}, ',') || ']', '[]') FROM ({}) page",
        columns.join(", "),
        builder.sql
    );
    let page: String = sqlx::query_scalar_with(AssertSqlSafe(sql), arguments(&builder.binds)?)
        .fetch_one(pool)
        .await?;
    let rows: Vec<PlanRow> = serde_json::from_str(&page).map_err(|error| StoreError::Corrupt {
        table: "plans",
        column: "(page)",
        value: error.to_string(),
    })?;
    let mut plans = rows
        .into_iter()
        .map(plan_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    attach_messages(pool, &mut plans).await?;
    Ok(plans)
}

fn plan_from_row(row: PlanRow) -> Result<FailoverPlan, StoreError> {
    const T: &str = "plans";
    let (
        uid,
        original_uid,
        server_uid,
        name,
        plan_type,
        status,
        tenant,
        objects_count,
        pre,
        post,
        session_uid,
        end_time,
        session_status,
        message,
    ) = row;
    let last_session = match session_uid {
        None => None,
        Some(uid) => Some(LastSession {
            instance_uid: parse_uid("sessions", "uid", &uid)?,
            end_time: ts(end_time),
            status: parse_enum::<SessionStatus>(
                "sessions",
                "status",
                session_status.as_deref().unwrap_or(""),
            )?,
            message,
            detailed_messages: Vec::new(),
        }),
    };
    Ok(FailoverPlan {
        instance_uid: parse_uid(T, "uid", &uid)?,
        original_uid: parse_uid(T, "original_uid", &original_uid)?,
        backup_server_uid: parse_uid(T, "backup_server_uid", &server_uid)?,
        name,
        plan_type: parse_enum::<PlanType>(T, "type", &plan_type)?,
        status: parse_enum::<PlanStatus>(T, "status", &status)?,
        tenant_uid: parse_optional_uid(T, "tenant_uid", tenant.as_deref())?,
        objects_count: i32::try_from(objects_count).unwrap_or(i32::MAX),
        pre_failover_script_enabled: !pre.is_empty(),
        pre_failover_command: pre,
        post_failover_script_enabled: !post.is_empty(),
        post_failover_command: post,
        last_session,
    })
}

/// Loads `detailedMessages` for the last sessions of a page of plans, in one query.
async fn attach_messages(pool: &Pool, plans: &mut [FailoverPlan]) -> Result<(), StoreError> {
    let sessions: Vec<String> = plans
        .iter()
        .filter_map(|p| p.last_session.as_ref())
        .map(|s| uid_text(s.instance_uid))
        .collect();
    if sessions.is_empty() {
        return Ok(());
    }
    let mut builder = SqlBuilder::new(super::DIALECT);
    builder.push("SELECT session_uid, title, description, severity, start_time, end_time FROM session_messages WHERE session_uid IN (");
    for (i, session) in sessions.into_iter().enumerate() {
        if i > 0 {
            builder.push(", ");
        }
        builder.push_bind(Scalar::Text(session));
    }
    builder.push(") ORDER BY session_uid, seq");
    let rows = sqlx::query_with(AssertSqlSafe(builder.sql), arguments(&builder.binds)?)
        .fetch_all(pool)
        .await?;
    let mut by_session: HashMap<Uuid, Vec<SessionMessage>> = HashMap::new();
    for row in rows {
        let session = parse_uid(
            "session_messages",
            "session_uid",
            &row.try_get::<String, _>(0)?,
        )?;
        by_session.entry(session).or_default().push(SessionMessage {
            title: row.try_get(1)?,
            description: row.try_get(2)?,
            severity: parse_enum::<MessageSeverity>(
                "session_messages",
                "severity",
                &row.try_get::<String, _>(3)?,
            )?,
            start_time: ts(row.try_get(4)?),
            end_time: ts(row.try_get(5)?),
        });
    }
    for plan in plans {
        if let Some(session) = plan.last_session.as_mut() {
            session.detailed_messages =
                by_session.remove(&session.instance_uid).unwrap_or_default();
        }
    }
    Ok(())
}

fn push_object_conditions(builder: &mut SqlBuilder<'_>, query: &ListQuery) {
    builder.push(NO_CONDITION);
    push_scope(builder, query.scope, "o.backup_server_uid", "o.plan_uid");
    if let Some(server) = query.server {
        builder.push(" AND o.backup_server_uid = ");
        builder.push_bind(Scalar::Text(uid_text(server)));
    }
    if let Some(plan) = query.plan {
        builder.push(" AND o.plan_uid = ");
        builder.push_bind(Scalar::Text(uid_text(plan)));
    }
    if !query.filter.is_trivial() {
        builder.push(" AND ");
        builder.push_filter(&query.filter);
    }
}

pub(super) async fn list_objects(
    pool: &Pool,
    freshness: &Freshness,
    query: &ListQuery,
) -> Result<Page<PlanObject>, StoreError> {
    let mut counting = SqlBuilder::new(super::DIALECT);
    push_object_conditions(&mut counting, query);
    let total = count(
        pool,
        freshness,
        Topics::OBJECT_READ,
        counting,
        &OBJECT_SOURCE,
    )
    .await?;

    let mut listing = SqlBuilder::new(super::DIALECT);
    listing.push(OBJECT_SELECT);
    push_page_rows(
        &mut listing,
        &OBJECT_SOURCE,
        |builder| push_object_conditions(builder, query),
        query,
    );
    let rows = sqlx::query_with(AssertSqlSafe(listing.sql), arguments(&listing.binds)?)
        .fetch_all(pool)
        .await?;
    let items = rows
        .iter()
        .map(object_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page { items, total })
}

fn object_from_row(row: &DbRow) -> Result<PlanObject, StoreError> {
    const T: &str = "plan_objects";
    let session_uid: Option<String> = row.try_get(7)?;
    let restore_session = match session_uid {
        None => None,
        Some(uid) => {
            let point: Option<String> = row.try_get(9)?;
            Some(RestoreSession {
                instance_uid: parse_uid("vm_sessions", "uid", &uid)?,
                backup_status: parse_enum::<BackupStatus>(
                    "vm_sessions",
                    "backup_status",
                    &row.try_get::<String, _>(8)?,
                )?,
                restore_point_uid: parse_optional_uid(
                    "vm_sessions",
                    "restore_point_uid",
                    point.as_deref(),
                )?,
                restore_point_date_time: ts(row.try_get(10)?),
                start_date_time: Timestamp::from_ticks(row.try_get(11)?),
                end_date_time: ts(row.try_get(12)?),
            })
        }
    };
    Ok(PlanObject {
        instance_uid: parse_uid(T, "uid", &row.try_get::<String, _>(0)?)?,
        plan_uid: parse_uid(T, "plan_uid", &row.try_get::<String, _>(1)?)?,
        name: row.try_get(2)?,
        host_name: row.try_get(3)?,
        folder_name: row.try_get(4)?,
        path: row.try_get(5)?,
        backup_server_uid: parse_uid(T, "backup_server_uid", &row.try_get::<String, _>(6)?)?,
        restore_session,
    })
}

pub(super) async fn server_visible(
    pool: &Pool,
    scope: Scope,
    uid: Uuid,
) -> Result<bool, StoreError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT organization_uid FROM backup_servers WHERE uid = $1")
            .bind(uid_text(uid))
            .fetch_optional(pool)
            .await?;
    let Some((owner,)) = row else {
        return Ok(false);
    };
    Ok(match scope {
        Scope::All => true,
        Scope::Organization(organization) => {
            // A company also sees a provider server that hosts one of its Tenant plans.
            owner == uid_text(organization)
                || sqlx::query_as::<_, (i64,)>(
                    "SELECT COUNT(*) FROM plans p JOIN tenants t ON t.uid = p.tenant_uid \
                     WHERE p.backup_server_uid = $1 AND t.organization_uid = $2",
                )
                .bind(uid_text(uid))
                .bind(uid_text(organization))
                .fetch_one(pool)
                .await?
                .0 > 0
        }
    })
}

pub(super) async fn update_plan_commands(
    readers: &Pool,
    committer: &super::commit::Committer,
    scope: Scope,
    current: &FailoverPlan,
    change: &CommandChange,
    idempotent_answer: Option<&(Uuid, crate::StoredResponse)>,
) -> Result<Option<FailoverPlan>, StoreError> {
    let uid = current.instance_uid;
    let queued = change.clone();
    let answer = idempotent_answer.cloned();
    // The PATCH was built on `current`: it applies only if the plan is still as read (its
    // commands, its status and its last session), so its answer, `current` with the change, is
    // the plan as stored even when another PATCH or a whole session came in between.
    let read = PlanAsRead {
        pre_failover_command: current.pre_failover_command.clone(),
        post_failover_command: current.post_failover_command.clone(),
        status: current.status.as_str(),
        last_session_uid: current
            .last_session
            .as_ref()
            .map(|session| uid_text(session.instance_uid))
            .unwrap_or_default(),
    };
    let applied = committer
        .run(move |conn| {
            Box::pin(
                async move { write_commands(conn, uid, &queued, &read, answer.as_ref()).await },
            )
        })
        .await?;
    if !applied {
        // Reads go to `readers`, after the write: the writer's time is for writes.
        let Some(latest) = get_plan(readers, scope, uid).await? else {
            return Ok(None);
        };
        return match on_request(latest.status, PlanRequest::Patch) {
            Err(refused) => Err(StoreError::Refused(refused)),
            Ok(_) => Err(StoreError::Conflict(
                "The failover plan changed while it was being patched; try again.".into(),
            )),
        };
    }
    // Applied to exactly the commands `current` has, in a status that allows it: the plan as
    // the change leaves it is `current` with the change (no read back needed).
    Ok(Some(change.applied_to(current)))
}

/// What a PATCH's write requires of the plan: what its caller read.
struct PlanAsRead {
    pre_failover_command: String,
    post_failover_command: String,
    status: &'static str,
    /// `""` for a plan that never ran.
    last_session_uid: String,
}

/// The write of [`update_plan_commands`]; `false` when a session runs (or began meanwhile), or
/// the plan changed since it was read.
async fn write_commands(
    conn: &mut super::commit::Conn,
    uid: Uuid,
    change: &CommandChange,
    read: &PlanAsRead,
    idempotent_answer: Option<&(Uuid, crate::StoredResponse)>,
) -> Result<bool, StoreError> {
    let keys = |value: &Option<String>| {
        value
            .as_deref()
            .map(text_keys)
            .map_or((None, None, None), |(v, c, n)| (Some(v), Some(c), Some(n)))
    };
    let (pre, pre_ci, pre_nat) = keys(&change.pre_failover_command);
    let (post, post_ci, post_nat) = keys(&change.post_failover_command);
    // One conditional statement: the status check and the write cannot be split by a session
    // start. The statuses a PATCH is allowed in are the state machine's.
    let allowed: Vec<&str> = PlanStatus::ALL
        .iter()
        .filter(|s| on_request(**s, PlanRequest::Patch).is_ok())
        .map(|s| s.as_str())
        .collect();
    let placeholders: Vec<String> = (0..allowed.len()).map(|i| format!("${}", i + 13)).collect();
    let sql = format!(
        "UPDATE plans SET \
           pre_failover_command = COALESCE($1, pre_failover_command), \
           pre_failover_command_ci = COALESCE($2, pre_failover_command_ci), \
           pre_failover_command_nat = COALESCE($3, pre_failover_command_nat), \
           post_failover_command = COALESCE($4, post_failover_command), \
           post_failover_command_ci = COALESCE($5, post_failover_command_ci), \
           post_failover_command_nat = COALESCE($6, post_failover_command_nat), \
           updated_at = $7 \
         WHERE uid = $8 AND pre_failover_command = $9 AND post_failover_command = $10 \
           AND status = $11 AND COALESCE(last_session_uid, '') = $12 AND status IN ({})",
        placeholders.join(", ")
    );
    let mut update = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(pre)
        .bind(pre_ci)
        .bind(pre_nat)
        .bind(post)
        .bind(post_ci)
        .bind(post_nat)
        .bind(Timestamp::now().ticks())
        .bind(uid_text(uid))
        .bind(&read.pre_failover_command)
        .bind(&read.post_failover_command)
        .bind(read.status)
        .bind(&read.last_session_uid);
    for status in &allowed {
        update = update.bind(*status);
    }
    let mut tx = conn.begin().await?;
    let updated = update.execute(&mut *tx).await?;
    if updated.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    if let Some((request_id, answer)) = idempotent_answer {
        super::idempotency::complete(&mut *tx, *request_id, answer).await?;
    }
    tx.commit().await?;
    Ok(true)
}

//! Scheduled drills (see `crate::drills`): every change is a conditional write, so that of
//! several nodes exactly one claims an occurrence or moves a run's plan.

use super::{DbRow, Pool};
use sqlx::Row;
use standby_model::Timestamp;
use uuid::Uuid;

use crate::drills::*;
use crate::rows::{parse_optional_uid, parse_uid, ts, uid_text};
use crate::{Scope, StoreError};

const DRILL_COLUMNS: &str = "uid, name, owner_all, owner_organization_uid, created_by_uid, created_by, \
     plan_uids, plan_filter, schedule, time_zone, ttl_seconds, max_parallel_vms, stop_after_failures, \
     paused, next_run_at, created_at";

fn count(row: &DbRow, index: usize) -> Result<u32, StoreError> {
    let value: i64 = row.try_get(index)?;
    Ok(u32::try_from(value.max(0)).unwrap_or(u32::MAX))
}

fn drill_of(row: &DbRow) -> Result<DrillRecord, StoreError> {
    let organization = parse_uid(
        "drills",
        "owner_organization_uid",
        &row.try_get::<String, _>(3)?,
    )?;
    let owner_all: bool = row.try_get(2)?;
    let listed: Option<String> = row.try_get(6)?;
    let filter: Option<String> = row.try_get(7)?;
    let plans = match (listed, filter) {
        (Some(listed), _) => {
            let texts: Vec<String> =
                serde_json::from_str(&listed).map_err(|_| StoreError::Corrupt {
                    table: "drills",
                    column: "plan_uids",
                    value: listed.clone(),
                })?;
            DrillPlans::Listed(
                texts
                    .iter()
                    .map(|text| parse_uid("drills", "plan_uids", text))
                    .collect::<Result<_, _>>()?,
            )
        }
        (None, Some(filter)) => DrillPlans::Filter(filter),
        (None, None) => {
            return Err(StoreError::Corrupt {
                table: "drills",
                column: "plan_uids",
                value: "neither plans nor a filter".into(),
            });
        }
    };
    Ok(DrillRecord {
        uid: parse_uid("drills", "uid", &row.try_get::<String, _>(0)?)?,
        name: row.try_get(1)?,
        owner: if owner_all {
            Scope::All
        } else {
            Scope::Organization(organization)
        },
        owner_organization_uid: organization,
        created_by_uid: parse_uid("drills", "created_by_uid", &row.try_get::<String, _>(4)?)?,
        created_by: row.try_get(5)?,
        plans,
        schedule: row.try_get(8)?,
        time_zone: row.try_get(9)?,
        ttl_seconds: count(row, 10)?,
        max_parallel_vms: count(row, 11)?,
        stop_after_failures: count(row, 12)?,
        paused: row.try_get(13)?,
        next_run_at: ts(row.try_get(14)?),
        created_at: Timestamp::from_ticks(row.try_get(15)?),
    })
}

pub(super) async fn create_drill(pool: &Pool, drill: &DrillRecord) -> Result<(), StoreError> {
    let (listed, filter) = match &drill.plans {
        DrillPlans::Listed(plans) => (
            Some(
                serde_json::to_string(&plans.iter().map(|p| uid_text(*p)).collect::<Vec<_>>())
                    .unwrap_or_else(|_| "[]".into()),
            ),
            None,
        ),
        DrillPlans::Filter(filter) => (None, Some(filter.clone())),
    };
    sqlx::query(
        "INSERT INTO drills (uid, name, owner_all, owner_organization_uid, created_by_uid, created_by, plan_uids, \
         plan_filter, schedule, time_zone, ttl_seconds, max_parallel_vms, stop_after_failures, paused, deleted, \
         next_run_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, FALSE, $15, $16)",
    )
    .bind(uid_text(drill.uid))
    .bind(&drill.name)
    .bind(drill.owner == Scope::All)
    .bind(uid_text(drill.owner_organization_uid))
    .bind(uid_text(drill.created_by_uid))
    .bind(&drill.created_by)
    .bind(listed)
    .bind(filter)
    .bind(&drill.schedule)
    .bind(&drill.time_zone)
    .bind(i64::from(drill.ttl_seconds))
    .bind(i64::from(drill.max_parallel_vms))
    .bind(i64::from(drill.stop_after_failures))
    .bind(drill.paused)
    .bind(drill.next_run_at.map(|t| t.ticks()))
    .bind(drill.created_at.ticks())
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn list_drills(pool: &Pool, scope: Scope) -> Result<Vec<DrillRecord>, StoreError> {
    let rows =
        match scope {
            Scope::All => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {DRILL_COLUMNS} FROM drills WHERE deleted = FALSE ORDER BY name, uid"
                )))
                .fetch_all(pool)
                .await?
            }
            Scope::Organization(organization) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {DRILL_COLUMNS} FROM drills WHERE deleted = FALSE AND owner_all = FALSE \
                 AND owner_organization_uid = $1 ORDER BY name, uid"
            )))
            .bind(uid_text(organization))
            .fetch_all(pool)
            .await?,
        };
    rows.iter().map(drill_of).collect()
}

pub(super) async fn get_drill(
    pool: &Pool,
    scope: Scope,
    uid: Uuid,
) -> Result<Option<DrillRecord>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {DRILL_COLUMNS} FROM drills WHERE uid = $1 AND deleted = FALSE"
    )))
    .bind(uid_text(uid))
    .fetch_optional(pool)
    .await?;
    let Some(drill) = row.as_ref().map(drill_of).transpose()? else {
        return Ok(None);
    };
    // A company sees its own drills only; the provider's are not a company's.
    Ok(match scope {
        Scope::All => Some(drill),
        Scope::Organization(organization)
            if drill.owner != Scope::All && drill.owner_organization_uid == organization =>
        {
            Some(drill)
        }
        Scope::Organization(_) => None,
    })
}

pub(super) async fn drill_settings(
    pool: &Pool,
    uid: Uuid,
) -> Result<Option<DrillRecord>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {DRILL_COLUMNS} FROM drills WHERE uid = $1"
    )))
    .bind(uid_text(uid))
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(drill_of).transpose()
}

pub(super) async fn set_drill_paused(
    pool: &Pool,
    uid: Uuid,
    paused: bool,
    next_run_at: Option<Timestamp>,
) -> Result<bool, StoreError> {
    let changed = sqlx::query(
        "UPDATE drills SET paused = $1, next_run_at = $2 WHERE uid = $3 AND deleted = FALSE",
    )
    .bind(paused)
    .bind(next_run_at.map(|t| t.ticks()))
    .bind(uid_text(uid))
    .execute(pool)
    .await?;
    Ok(changed.rows_affected() > 0)
}

pub(super) async fn delete_drill(pool: &Pool, uid: Uuid) -> Result<bool, StoreError> {
    let changed = sqlx::query(
        "UPDATE drills SET deleted = TRUE, next_run_at = NULL WHERE uid = $1 AND deleted = FALSE",
    )
    .bind(uid_text(uid))
    .execute(pool)
    .await?;
    Ok(changed.rows_affected() > 0)
}

pub(super) async fn due_drills(
    pool: &Pool,
    now: Timestamp,
) -> Result<Vec<DrillRecord>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {DRILL_COLUMNS} FROM drills WHERE next_run_at <= $1 AND deleted = FALSE AND paused = FALSE \
         ORDER BY next_run_at LIMIT 100"
    )))
    .bind(now.ticks())
    .fetch_all(pool)
    .await?;
    rows.iter().map(drill_of).collect()
}

pub(super) async fn claim_drill_occurrence(
    pool: &Pool,
    drill: Uuid,
    due: Timestamp,
    next: Option<Timestamp>,
    run: Option<(Uuid, Vec<NewDrillRunPlan>)>,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let claimed = sqlx::query(
        "UPDATE drills SET next_run_at = $1 WHERE uid = $2 AND next_run_at = $3 AND deleted = FALSE AND paused = FALSE",
    )
    .bind(next.map(|t| t.ticks()))
    .bind(uid_text(drill))
    .bind(due.ticks())
    .execute(&mut *tx)
    .await?;
    if claimed.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    if let Some((run, plans)) = run {
        sqlx::query(
            "INSERT INTO drill_runs (uid, drill_uid, due_at, state, started_at) VALUES ($1, $2, $3, 'running', $4)",
        )
        .bind(uid_text(run))
        .bind(uid_text(drill))
        .bind(due.ticks())
        .bind(now.ticks())
        .execute(&mut *tx)
        .await?;
        for (position, plan) in plans.iter().enumerate() {
            let (state, reason) = match &plan.skipped {
                Some(reason) => (DrillPlanState::Skipped, reason.as_str()),
                None => (DrillPlanState::Pending, ""),
            };
            sqlx::query(
                "INSERT INTO drill_run_plans (run_uid, plan_uid, position, vms, state, reason, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(uid_text(run))
            .bind(uid_text(plan.plan_uid))
            .bind(position as i64)
            .bind(i64::from(plan.vms))
            .bind(state.as_str())
            .bind(crate::bounded(reason, 512))
            .bind(now.ticks())
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(true)
}

const RUN_COLUMNS: &str = "uid, drill_uid, due_at, state, started_at, ended_at";

async fn runs_of(pool: &Pool, rows: Vec<DbRow>) -> Result<Vec<DrillRun>, StoreError> {
    let mut runs = Vec::with_capacity(rows.len());
    for row in rows {
        let uid = parse_uid("drill_runs", "uid", &row.try_get::<String, _>(0)?)?;
        let plan_rows = sqlx::query(
            "SELECT d.plan_uid, p.name, d.position, d.vms, d.state, d.reason, d.test_session_uid, \
             d.undo_session_uid, d.undo_at, d.undo_attempts, d.updated_at, d.test_verdict \
             FROM drill_run_plans d JOIN plans p ON p.uid = d.plan_uid WHERE d.run_uid = $1 ORDER BY d.position",
        )
        .bind(uid_text(uid))
        .fetch_all(pool)
        .await?;
        let mut plans = Vec::with_capacity(plan_rows.len());
        for plan in &plan_rows {
            let state_text: String = plan.try_get(4)?;
            let test: Option<String> = plan.try_get(6)?;
            let undo: Option<String> = plan.try_get(7)?;
            plans.push(DrillRunPlan {
                plan_uid: parse_uid(
                    "drill_run_plans",
                    "plan_uid",
                    &plan.try_get::<String, _>(0)?,
                )?,
                plan_name: plan.try_get(1)?,
                position: count(plan, 2)?,
                vms: count(plan, 3)?,
                state: DrillPlanState::parse(&state_text).ok_or(StoreError::Corrupt {
                    table: "drill_run_plans",
                    column: "state",
                    value: state_text.clone(),
                })?,
                reason: plan.try_get(5)?,
                test_session_uid: parse_optional_uid(
                    "drill_run_plans",
                    "test_session_uid",
                    test.as_deref(),
                )?,
                undo_session_uid: parse_optional_uid(
                    "drill_run_plans",
                    "undo_session_uid",
                    undo.as_deref(),
                )?,
                undo_at: ts(plan.try_get(8)?),
                undo_attempts: count(plan, 9)?,
                test_verdict: plan.try_get(11)?,
                updated_at: Timestamp::from_ticks(plan.try_get(10)?),
            });
        }
        let state: String = row.try_get(3)?;
        runs.push(DrillRun {
            uid,
            drill_uid: parse_uid("drill_runs", "drill_uid", &row.try_get::<String, _>(1)?)?,
            due_at: Timestamp::from_ticks(row.try_get(2)?),
            finished: state == "finished",
            started_at: Timestamp::from_ticks(row.try_get(4)?),
            ended_at: ts(row.try_get(5)?),
            plans,
        });
    }
    Ok(runs)
}

pub(super) async fn open_drill_runs(pool: &Pool) -> Result<Vec<DrillRun>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM drill_runs WHERE state = 'running' ORDER BY started_at, uid"
    )))
    .fetch_all(pool)
    .await?;
    runs_of(pool, rows).await
}

pub(super) async fn drill_runs(
    pool: &Pool,
    drill: Uuid,
    limit: u32,
) -> Result<Vec<DrillRun>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM drill_runs WHERE drill_uid = $1 ORDER BY due_at DESC, uid DESC LIMIT $2"
    )))
    .bind(uid_text(drill))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    runs_of(pool, rows).await
}

pub(super) async fn drill_run(
    pool: &Pool,
    drill: Uuid,
    run: Uuid,
) -> Result<Option<DrillRun>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RUN_COLUMNS} FROM drill_runs WHERE drill_uid = $1 AND uid = $2"
    )))
    .bind(uid_text(drill))
    .bind(uid_text(run))
    .fetch_all(pool)
    .await?;
    Ok(runs_of(pool, rows).await?.into_iter().next())
}

pub(super) async fn move_drill_plan(
    pool: &Pool,
    run: Uuid,
    plan: Uuid,
    from: DrillPlanState,
    change: &DrillPlanMove,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    // Each optional field is kept unless the move names it (a flag per field).
    let moved = sqlx::query(
        "UPDATE drill_run_plans SET state = $1, \
         reason = CASE WHEN $2 THEN $3 ELSE reason END, \
         test_session_uid = CASE WHEN $4 THEN $5 ELSE test_session_uid END, \
         undo_session_uid = CASE WHEN $6 THEN $7 ELSE undo_session_uid END, \
         undo_at = CASE WHEN $8 THEN $9 ELSE undo_at END, \
         undo_attempts = CASE WHEN $10 THEN $11 ELSE undo_attempts END, \
         test_verdict = CASE WHEN $16 THEN $17 ELSE test_verdict END, \
         updated_at = $12 \
         WHERE run_uid = $13 AND plan_uid = $14 AND state = $15",
    )
    .bind(change.to.as_str())
    .bind(change.reason.is_some())
    .bind(
        change
            .reason
            .as_deref()
            .map(|r| crate::bounded(r, 512))
            .unwrap_or_default(),
    )
    .bind(change.test_session_uid.is_some())
    .bind(change.test_session_uid.map(uid_text))
    .bind(change.undo_session_uid.is_some())
    .bind(change.undo_session_uid.map(uid_text))
    .bind(change.undo_at.is_some())
    .bind(change.undo_at.flatten().map(|t| t.ticks()))
    .bind(change.undo_attempts.is_some())
    .bind(i64::from(change.undo_attempts.unwrap_or_default()))
    .bind(now.ticks())
    .bind(uid_text(run))
    .bind(uid_text(plan))
    .bind(from.as_str())
    .bind(change.test_verdict.is_some())
    .bind(change.test_verdict.clone())
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    // A skipped plan and an undo given up on are told, in the move's transaction.
    let event = match change.to {
        DrillPlanState::Skipped => Some(crate::notifications::DRILL_SKIPPED),
        DrillPlanState::UndoFailed => Some(crate::notifications::UNDO_OVERDUE),
        _ => None,
    };
    if let Some(event) = event {
        let drill: Option<(String, String)> = sqlx::query_as(
            "SELECT d.uid, d.name FROM drill_runs r JOIN drills d ON d.uid = r.drill_uid WHERE r.uid = $1",
        )
        .bind(uid_text(run))
        .fetch_optional(&mut *tx)
        .await?;
        let body = serde_json::json!({
            "drillUid": drill.as_ref().map(|d| d.0.clone()),
            "drillName": drill.as_ref().map(|d| d.1.clone()),
            "drillRunUid": run,
            "planUid": plan,
            "reason": change.reason,
        });
        super::notifications::insert_event(&mut tx, event, Some(plan), None, None, &body, now)
            .await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn finish_drill_run(
    pool: &Pool,
    run: Uuid,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let finished = sqlx::query(
        "UPDATE drill_runs SET state = 'finished', ended_at = $1 WHERE uid = $2 AND state = 'running'",
    )
    .bind(now.ticks())
    .bind(uid_text(run))
    .execute(pool)
    .await?;
    Ok(finished.rows_affected() > 0)
}

pub(super) async fn session_drill(
    pool: &Pool,
    session: Uuid,
) -> Result<Option<SessionDrill>, StoreError> {
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT d.uid, d.name, r.uid FROM drill_run_plans p JOIN drill_runs r ON r.uid = p.run_uid \
         JOIN drills d ON d.uid = r.drill_uid WHERE p.test_session_uid = $1 OR p.undo_session_uid = $1 LIMIT 1",
    )
    .bind(uid_text(session))
    .fetch_optional(pool)
    .await?;
    row.map(|(drill, name, run)| {
        Ok(SessionDrill {
            drill_uid: parse_uid("drills", "uid", &drill)?,
            drill_name: name,
            run_uid: parse_uid("drill_runs", "uid", &run)?,
        })
    })
    .transpose()
}

//! Sessions, the job queue with its fencing, and async actions, on either backend.

use super::commit::{Committer, Conn};
use super::{DbRow, Pool};
use sqlx::{Connection, Row};
use standby_model::state::{PlanRequest, on_request};
use standby_model::{
    ActionStatus, BackupStatus, JobState, PlanStatus, SessionKind, SessionMessage, SessionStatus,
    Timestamp, WireEnum,
};
use uuid::Uuid;

use crate::keys::text_keys;
use crate::rows::{parse_enum, parse_optional_uid, parse_uid, ts, uid_text};
use crate::sessions::*;
use crate::{Scope, StoreError};
use standby_fleet::ConnectorSettings;
use standby_model::SessionPhase;

fn request_of(kind: SessionKind) -> PlanRequest {
    match kind {
        SessionKind::Failover => PlanRequest::Start { test: false },
        SessionKind::Test => PlanRequest::Start { test: true },
        SessionKind::Undo => PlanRequest::Undo,
    }
}

/// Moves the plan to its running status and queues the session, or says why not. `Ok(false)`:
/// the plan is not visible in `scope`.
pub(super) async fn begin_session(
    readers: &Pool,
    committer: &Committer,
    scope: Scope,
    new: &NewSession,
    now: Timestamp,
) -> Result<bool, StoreError> {
    // Reads go to `readers`, before the write is queued: the writer's time is for writes.
    let Some(plan) = super::plans::get_plan(readers, scope, new.plan_uid).await? else {
        return Ok(false);
    };
    let request = request_of(new.kind);
    let target = match on_request(plan.status, request) {
        Ok(target) => target,
        Err(refused) => return Err(StoreError::Refused(refused)),
    };
    let queued = new.clone();
    let applied = committer
        .run(move |conn| Box::pin(async move { write_session(conn, &queued, target, now).await }))
        .await?;
    if applied {
        return Ok(true);
    }
    let status = super::plans::get_plan(readers, scope, new.plan_uid)
        .await?
        .map_or(plan.status, |p| p.status);
    Err(match on_request(status, request) {
        Err(refused) => StoreError::Refused(refused),
        Ok(_) => StoreError::Conflict(
            "The failover plan changed while the request was handled; try again.".into(),
        ),
    })
}

/// The write of [`begin_session`]; `false` when the plan's status no longer allows the request.
async fn write_session(
    conn: &mut Conn,
    new: &NewSession,
    target: PlanStatus,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let allowed: Vec<&str> = PlanStatus::ALL
        .iter()
        .filter(|s| on_request(**s, request_of(new.kind)).is_ok())
        .map(|s| s.as_str())
        .collect();
    let mut tx = conn.begin().await?;
    // The status test and the write are one statement: of two concurrent starts, one wins.
    let placeholders: Vec<String> = (0..allowed.len()).map(|i| format!("${}", i + 5)).collect();
    let sql = format!(
        "UPDATE plans SET status = $1, last_session_uid = $2, updated_at = $3 WHERE uid = $4 AND status IN ({})",
        placeholders.join(", ")
    );
    let mut update = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(target.as_str())
        .bind(uid_text(new.uid))
        .bind(now.ticks())
        .bind(uid_text(new.plan_uid));
    for status in &allowed {
        update = update.bind(*status);
    }
    if update.execute(&mut *tx).await?.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query(
        // The plan's targets as they are now go with the session: its report is judged by them.
        "INSERT INTO sessions (uid, plan_uid, kind, status, started_by, requested_point, start_time, phase, action_uid, \
         rto_target_seconds, rpo_target_seconds) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $9, $8, \
         (SELECT rto_seconds FROM plan_targets WHERE plan_uid = $2), (SELECT rpo_seconds FROM plan_targets WHERE plan_uid = $2))",
    )
    .bind(uid_text(new.uid))
    .bind(uid_text(new.plan_uid))
    .bind(new.kind.as_str())
    .bind(SessionStatus::None.as_str())
    .bind(&new.started_by)
    .bind(new.requested_point.map(|p| p.ticks()))
    .bind(now.ticks())
    .bind(uid_text(new.action.uid))
    .bind(SessionPhase::Queued.as_str())
    .execute(&mut *tx)
    .await?;
    let parameters =
        serde_json::to_string(&new.action.query_parameters).unwrap_or_else(|_| "{}".into());
    sqlx::query(
        "INSERT INTO async_actions (uid, initiator_uid, action_name, status, query_parameters, session_uid, result, created_at) \
         VALUES ($1, $2, $3, $8, $4, $5, $6, $7)",
    )
    .bind(uid_text(new.action.uid))
    .bind(uid_text(new.action.initiator_uid))
    .bind(&new.action.action_name)
    .bind(parameters)
    .bind(uid_text(new.uid))
    .bind(&new.action.result)
    .bind(now.ticks())
    .bind(ActionStatus::Running.as_str())
    .execute(&mut *tx)
    .await
    .map_err(|error| match error {
        sqlx::Error::Database(e) if e.is_unique_violation() => {
            StoreError::Conflict(format!("The async action {} already exists; send a new X-Request-id.", new.action.uid))
        }
        other => StoreError::Database(other),
    })?;
    // The outbox row goes with the session: a run that started is told, at least once.
    super::notifications::insert_event(
        &mut tx,
        crate::notifications::RUN_STARTED,
        Some(new.plan_uid),
        None,
        None,
        &serde_json::json!({
            "sessionUid": new.uid,
            "planUid": new.plan_uid,
            "kind": new.kind.as_str(),
            "startedBy": new.started_by,
            "requestedPoint": new.requested_point,
        }),
        now,
    )
    .await?;
    sqlx::query(
        "INSERT INTO jobs (uid, kind, session_uid, state, run_at, created_at, updated_at) VALUES ($1, 'session', $2, $4, $3, $3, $3)",
    )
    .bind(uid_text(Uuid::now_v7()))
    .bind(uid_text(new.uid))
    .bind(now.ticks())
    .bind(JobState::Ready.as_str())
    .execute(&mut *tx)
    .await?;
    if let Some((request_id, answer)) = &new.idempotent_answer {
        super::idempotency::complete(&mut *tx, *request_id, answer).await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn claim_job(
    conn: &mut Conn,
    worker: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<Option<Job>, StoreError> {
    // On PostgreSQL the subquery locks the row it picks and skips rows other nodes are claiming;
    // the outer state test is re-checked after any wait, so a job is never claimed twice. The
    // epoch goes up with every claim: the previous holder's writes are refused from now on.
    let sql = format!(
        "UPDATE jobs SET state = $4, locked_by = $1, lease_until = $2, attempts = attempts + 1, epoch = epoch + 1, updated_at = $3 \
         WHERE uid = (SELECT uid FROM jobs WHERE state = $5 AND run_at <= $3 ORDER BY run_at, uid LIMIT 1{}) AND state = $5 \
         RETURNING uid, session_uid, attempts, epoch, last_error",
        super::CLAIM_LOCK
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(worker)
        .bind(lease_until.ticks())
        .bind(now.ticks())
        .bind(JobState::Running.as_str())
        .bind(JobState::Ready.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let job = Job {
        uid: parse_uid("jobs", "uid", &row.try_get::<String, _>(0)?)?,
        session_uid: parse_uid("jobs", "session_uid", &row.try_get::<String, _>(1)?)?,
        attempts: row.try_get(2)?,
        epoch: row.try_get(3)?,
        last_error: row.try_get(4)?,
    };
    sqlx::query("UPDATE sessions SET phase = $2 WHERE uid = $1 AND phase = $3")
        .bind(uid_text(job.session_uid))
        .bind(SessionPhase::Running.as_str())
        .bind(SessionPhase::Queued.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(Some(job))
}

/// The fence: proves, inside the write's own transaction, that the job is still running at the
/// caller's epoch. On PostgreSQL the UPDATE also locks the job's row until the commit, so a claim
/// by another node (which updates that row) waits for this write or makes it fail; on SQLite
/// writers are serialized anyway.
async fn hold(tx: &mut sqlx::Transaction<'_, super::Db>, fence: Fence) -> Result<(), StoreError> {
    let held =
        sqlx::query("UPDATE jobs SET epoch = epoch WHERE uid = $1 AND epoch = $2 AND state = $3")
            .bind(uid_text(fence.job))
            .bind(fence.epoch)
            .bind(JobState::Running.as_str())
            .execute(&mut **tx)
            .await?;
    if held.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::Fenced {
            job: fence.job,
            epoch: fence.epoch,
        })
    }
}

pub(super) async fn holds_job(pool: &Pool, fence: Fence) -> Result<bool, StoreError> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT epoch FROM jobs WHERE uid = $1 AND epoch = $2 AND state = $3")
            .bind(uid_text(fence.job))
            .bind(fence.epoch)
            .bind(JobState::Running.as_str())
            .fetch_optional(pool)
            .await?;
    Ok(row.is_some())
}

pub(super) async fn extend_lease(
    conn: &mut Conn,
    fence: Fence,
    lease_until: Timestamp,
) -> Result<LeaseRenewal, StoreError> {
    let mut tx = conn.begin().await?;
    let updated = sqlx::query(
        "UPDATE jobs SET lease_until = $1 WHERE uid = $2 AND epoch = $3 AND state = $4",
    )
    .bind(lease_until.ticks())
    .bind(uid_text(fence.job))
    .bind(fence.epoch)
    .bind(JobState::Running.as_str())
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(LeaseRenewal::Lost);
    }
    let (cancel_requested,): (bool,) = sqlx::query_as(
        "SELECT s.cancel_requested FROM sessions s JOIN jobs j ON j.session_uid = s.uid WHERE j.uid = $1",
    )
    .bind(uid_text(fence.job))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(LeaseRenewal::Held { cancel_requested })
}

/// Hands a held job back to the queue at once (a graceful shutdown). The attempt is not
/// counted: the session stopped at a safe point, nothing went wrong.
pub(super) async fn release_job(
    conn: &mut Conn,
    fence: Fence,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE jobs SET state = $4, locked_by = NULL, lease_until = NULL, attempts = attempts - 1, updated_at = $1 \
         WHERE uid = $2 AND state = $5 AND epoch = $3",
    )
    .bind(now.ticks())
    .bind(uid_text(fence.job))
    .bind(fence.epoch)
    .bind(JobState::Ready.as_str())
    .bind(JobState::Running.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Puts a held job back in the queue after an error, to be claimed again at `run_at` (the
/// backoff), with the error kept for the next attempt and for the final message.
pub(super) async fn retry_job(
    conn: &mut Conn,
    fence: Fence,
    error: &str,
    run_at: Timestamp,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE jobs SET state = $5, locked_by = NULL, lease_until = NULL, last_error = $1, run_at = $2, updated_at = $3 \
         WHERE uid = $4 AND state = $6 AND epoch = $7",
    )
    .bind(crate::bounded(error, 1000))
    .bind(run_at.ticks())
    .bind(now.ticks())
    .bind(uid_text(fence.job))
    .bind(JobState::Ready.as_str())
    .bind(JobState::Running.as_str())
    .bind(fence.epoch)
    .execute(&mut *conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Puts running jobs whose lease ran out (or, with `None`, every running job) back in the queue.
pub(super) async fn requeue_jobs(
    conn: &mut Conn,
    expired_before: Option<Timestamp>,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let updated = sqlx::query(
        "UPDATE jobs SET state = $3, locked_by = NULL, lease_until = NULL, updated_at = $1 \
         WHERE state = $4 AND ($2 IS NULL OR lease_until < $2)",
    )
    .bind(now.ticks())
    .bind(expired_before.map(|t| t.ticks()))
    .bind(JobState::Ready.as_str())
    .bind(JobState::Running.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(updated.rows_affected())
}

/// Jobs not done, by state; the `(state, run_at)` index keeps this off the done ones.
pub(super) async fn job_counts(pool: &Pool) -> Result<JobCounts, StoreError> {
    let rows =
        sqlx::query("SELECT state, COUNT(*) FROM jobs WHERE state IN ($1, $2) GROUP BY state")
            .bind(JobState::Ready.as_str())
            .bind(JobState::Running.as_str())
            .fetch_all(pool)
            .await?;
    let mut counts = JobCounts::default();
    for row in rows {
        let state = parse_job_state(&row.try_get::<String, _>(0)?)?;
        let count = u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0);
        match state {
            JobState::Ready => counts.queued = count,
            JobState::Running => counts.running = count,
            JobState::Done => {}
        }
    }
    Ok(counts)
}

fn parse_job_state(text: &str) -> Result<JobState, StoreError> {
    JobState::parse(text).ok_or_else(|| StoreError::Corrupt {
        table: "jobs",
        column: "state",
        value: text.to_owned(),
    })
}

pub(super) async fn session_work(
    pool: &Pool,
    session: Uuid,
) -> Result<Option<SessionWork>, StoreError> {
    let Some(row) = sqlx::query(
        "SELECT s.plan_uid, s.kind, s.requested_point, s.start_time, s.cancel_requested, p.backup_server_uid, bs.connector, \
                p.pre_failover_command, p.post_failover_command, bs.connector_settings \
         FROM sessions s JOIN plans p ON p.uid = s.plan_uid JOIN backup_servers bs ON bs.uid = p.backup_server_uid \
         WHERE s.uid = $1",
    )
    .bind(uid_text(session))
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let kind_text: String = row.try_get(1)?;
    let kind = SessionKind::parse(&kind_text).ok_or(StoreError::Corrupt {
        table: "sessions",
        column: "kind",
        value: kind_text,
    })?;
    let plan_uid = parse_uid("sessions", "plan_uid", &row.try_get::<String, _>(0)?)?;
    let vm_rows = sqlx::query(
        "SELECT o.uid, o.name, o.boot_delay_seconds, v.uid, v.backup_status, v.restore_point_uid, v.restore_point_time, v.start_time \
         FROM plan_objects o LEFT JOIN vm_sessions v ON v.object_uid = o.uid AND v.session_uid = $1 \
         WHERE o.plan_uid = $2 ORDER BY o.boot_order, o.uid",
    )
    .bind(uid_text(session))
    .bind(uid_text(plan_uid))
    .fetch_all(pool)
    .await?;
    let mut vms = Vec::with_capacity(vm_rows.len());
    for vm in vm_rows {
        let step_uid: Option<String> = vm.try_get(3)?;
        let step = match step_uid {
            None => None,
            Some(uid) => {
                let point: Option<String> = vm.try_get(5)?;
                Some(VmStep {
                    uid: parse_uid("vm_sessions", "uid", &uid)?,
                    status: parse_enum::<BackupStatus>(
                        "vm_sessions",
                        "backup_status",
                        &vm.try_get::<String, _>(4)?,
                    )?,
                    restore_point_uid: parse_optional_uid(
                        "vm_sessions",
                        "restore_point_uid",
                        point.as_deref(),
                    )?,
                    restore_point_time: ts(vm.try_get(6)?),
                    start_time: Timestamp::from_ticks(vm.try_get(7)?),
                })
            }
        };
        let delay: i64 = vm.try_get(2)?;
        vms.push(VmWork {
            object_uid: parse_uid("plan_objects", "uid", &vm.try_get::<String, _>(0)?)?,
            name: vm.try_get(1)?,
            boot_delay_seconds: u32::try_from(delay).unwrap_or(0),
            step,
        });
    }
    let titles: Vec<(String,)> =
        sqlx::query_as("SELECT title FROM session_messages WHERE session_uid = $1 ORDER BY seq")
            .bind(uid_text(session))
            .fetch_all(pool)
            .await?;
    Ok(Some(SessionWork {
        session_uid: session,
        plan_uid,
        kind,
        requested_point: ts(row.try_get(2)?),
        start_time: Timestamp::from_ticks(row.try_get(3)?),
        cancel_requested: row.try_get(4)?,
        backup_server_uid: parse_uid("plans", "backup_server_uid", &row.try_get::<String, _>(5)?)?,
        connector: row.try_get(6)?,
        connector_settings: {
            let text: String = row.try_get(9)?;
            ConnectorSettings::from_json(&text).ok_or(StoreError::Corrupt {
                table: "backup_servers",
                column: "connector_settings",
                value: text,
            })?
        },
        pre_failover_command: row.try_get(7)?,
        post_failover_command: row.try_get(8)?,
        vms,
        message_titles: titles.into_iter().map(|(t,)| t).collect(),
    }))
}

pub(super) async fn newest_restore_point(
    pool: &Pool,
    object: Uuid,
    at_or_before: Option<Timestamp>,
) -> Result<Option<(Uuid, Timestamp)>, StoreError> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT uid, created_at FROM restore_points WHERE object_uid = $1 AND ($2 IS NULL OR created_at <= $2) \
         ORDER BY created_at DESC, uid DESC LIMIT 1",
    )
    .bind(uid_text(object))
    .bind(at_or_before.map(|t| t.ticks()))
    .fetch_optional(pool)
    .await?;
    row.map(|(uid, at)| {
        Ok((
            parse_uid("restore_points", "uid", &uid)?,
            Timestamp::from_ticks(at),
        ))
    })
    .transpose()
}

pub(super) async fn record_vm_start(
    conn: &mut Conn,
    fence: Fence,
    session: Uuid,
    object: Uuid,
    step: &VmStep,
) -> Result<(), StoreError> {
    let mut tx = conn.begin().await?;
    hold(&mut tx, fence).await?;
    sqlx::query(
        "INSERT INTO vm_sessions (uid, session_uid, object_uid, backup_status, restore_point_uid, restore_point_time, start_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (uid) DO NOTHING",
    )
    .bind(uid_text(step.uid))
    .bind(uid_text(session))
    .bind(uid_text(object))
    .bind(step.status.as_str())
    .bind(step.restore_point_uid.map(uid_text))
    .bind(step.restore_point_time.map(|t| t.ticks()))
    .bind(step.start_time.ticks())
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE plan_objects SET restore_session_uid = $1 WHERE uid = $2")
        .bind(uid_text(step.uid))
        .bind(uid_text(object))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Ends a VM's step and writes its log line in one transaction, so a crash keeps both or neither.
pub(super) async fn record_vm_end(
    conn: &mut Conn,
    fence: Fence,
    session: Uuid,
    step: Uuid,
    status: BackupStatus,
    end: Timestamp,
    message: &SessionMessage,
) -> Result<(), StoreError> {
    let mut tx = conn.begin().await?;
    hold(&mut tx, fence).await?;
    let updated = sqlx::query("UPDATE vm_sessions SET backup_status = $1, end_time = $2 WHERE uid = $3 AND end_time IS NULL")
        .bind(status.as_str())
        .bind(end.ticks())
        .bind(uid_text(step))
        .execute(&mut *tx)
        .await?;
    if updated.rows_affected() == 1 {
        insert_message(&mut tx, session, message).await?;
        if status == BackupStatus::Failed {
            super::notifications::insert_event(
                &mut tx,
                crate::notifications::VM_FAILED,
                None,
                Some(session),
                None,
                &serde_json::json!({
                    "sessionUid": session,
                    "vmSessionUid": step,
                    "message": message.title,
                    "detail": message.description,
                }),
                end,
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

async fn insert_message(
    tx: &mut sqlx::Transaction<'_, super::Db>,
    session: Uuid,
    message: &SessionMessage,
) -> Result<(), StoreError> {
    // Concurrent VM steps of one session number their lines from MAX(seq): serialize them.
    if let Some(lock) = super::LOCK_SESSION {
        sqlx::query(lock)
            .bind(uid_text(session))
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO session_messages (session_uid, seq, title, description, severity, start_time, end_time) \
         VALUES ($1, (SELECT COALESCE(MAX(seq), -1) + 1 FROM session_messages WHERE session_uid = $1), $2, $3, $4, $5, $6)",
    )
    .bind(uid_text(session))
    .bind(&message.title)
    .bind(&message.description)
    .bind(message.severity.as_str())
    .bind(message.start_time.map(|t| t.ticks()))
    .bind(message.end_time.map(|t| t.ticks()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(super) async fn append_message(
    conn: &mut Conn,
    fence: Fence,
    session: Uuid,
    message: &SessionMessage,
) -> Result<(), StoreError> {
    let mut tx = conn.begin().await?;
    hold(&mut tx, fence).await?;
    insert_message(&mut tx, session, message).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn finish_session(
    conn: &mut Conn,
    fence: Fence,
    session: Uuid,
    end: &SessionEnd,
    now: Timestamp,
) -> Result<(), StoreError> {
    let message = end.message.as_deref().map(text_keys);
    let mut tx = conn.begin().await?;
    hold(&mut tx, fence).await?;
    let updated = sqlx::query(
        "UPDATE sessions SET phase = $7, status = $1, message = $2, message_ci = $3, message_nat = $4, end_time = $5 \
         WHERE uid = $6 AND phase <> $7",
    )
    .bind(end.session_status.as_str())
    .bind(message.as_ref().map(|m| m.0.clone()))
    .bind(message.as_ref().map(|m| m.1.clone()))
    .bind(message.as_ref().map(|m| m.2.clone()))
    .bind(now.ticks())
    .bind(uid_text(session))
    .bind(SessionPhase::Finished.as_str())
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 1 {
        // Only a plan whose session is running can end; which statuses those are is the state
        // machine's to say.
        let running: Vec<&str> = PlanStatus::ALL
            .iter()
            .filter(|s| s.is_busy())
            .map(|s| s.as_str())
            .collect();
        let placeholders: Vec<String> = (0..running.len()).map(|i| format!("${}", i + 4)).collect();
        let sql = format!(
            "UPDATE plans SET status = $1, updated_at = $2 \
             WHERE uid = (SELECT plan_uid FROM sessions WHERE uid = $3) AND status IN ({})",
            placeholders.join(", ")
        );
        let mut update = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(end.plan_status.as_str())
            .bind(now.ticks())
            .bind(uid_text(session));
        for status in &running {
            update = update.bind(*status);
        }
        update.execute(&mut *tx).await?;
        sqlx::query("UPDATE async_actions SET status = $1, finished_at = $2, expires_at = $3 WHERE session_uid = $4 AND status = $5")
            .bind(end.action_status.as_str())
            .bind(now.ticks())
            .bind(end.action_expires_at.ticks())
            .bind(uid_text(session))
            .bind(ActionStatus::Running.as_str())
            .execute(&mut *tx)
            .await?;
        let event = if end.session_status == SessionStatus::Failed {
            crate::notifications::RUN_FAILED
        } else {
            crate::notifications::RUN_FINISHED
        };
        super::notifications::insert_event(
            &mut tx,
            event,
            None,
            Some(session),
            None,
            &serde_json::json!({
                "sessionUid": session,
                "status": end.session_status.as_str(),
                "planStatus": end.plan_status.as_str(),
                "message": end.message,
            }),
            now,
        )
        .await?;
    }
    sqlx::query("UPDATE jobs SET state = $1, locked_by = NULL, lease_until = NULL, updated_at = $2 WHERE uid = $3")
        .bind(JobState::Done.as_str())
        .bind(now.ticks())
        .bind(uid_text(fence.job))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn request_cancel(pool: &Pool, session: Uuid) -> Result<bool, StoreError> {
    let updated =
        sqlx::query("UPDATE sessions SET cancel_requested = TRUE WHERE uid = $1 AND phase <> $2")
            .bind(uid_text(session))
            .bind(SessionPhase::Finished.as_str())
            .execute(pool)
            .await?;
    Ok(updated.rows_affected() == 1)
}

pub(super) async fn cancel_requested(pool: &Pool, session: Uuid) -> Result<bool, StoreError> {
    let row: Option<(bool,)> =
        sqlx::query_as("SELECT cancel_requested FROM sessions WHERE uid = $1")
            .bind(uid_text(session))
            .fetch_optional(pool)
            .await?;
    Ok(row.is_some_and(|(flag,)| flag))
}

const ACTION_COLUMNS: &str =
    "uid, initiator_uid, action_name, status, request_body, query_parameters, session_uid, result";

fn action_from_row(row: &DbRow) -> Result<AsyncActionRecord, StoreError> {
    let parameters: Option<String> = row.try_get(5)?;
    let session: Option<String> = row.try_get(6)?;
    Ok(AsyncActionRecord {
        uid: parse_uid("async_actions", "uid", &row.try_get::<String, _>(0)?)?,
        initiator_uid: parse_uid(
            "async_actions",
            "initiator_uid",
            &row.try_get::<String, _>(1)?,
        )?,
        action_name: row.try_get(2)?,
        status: {
            let text: String = row.try_get(3)?;
            ActionStatus::parse(&text).ok_or(StoreError::Corrupt {
                table: "async_actions",
                column: "status",
                value: text,
            })?
        },
        request_body: row.try_get(4)?,
        query_parameters: parameters
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or_default(),
        session_uid: parse_optional_uid("async_actions", "session_uid", session.as_deref())?,
        result: row.try_get(7)?,
    })
}

/// Live actions (running, or finished and not yet expired), oldest first; `None`: everyone's.
pub(super) async fn list_actions(
    pool: &Pool,
    initiator: Option<Uuid>,
    now: Timestamp,
) -> Result<Vec<AsyncActionRecord>, StoreError> {
    let sql = format!(
        "SELECT {ACTION_COLUMNS} FROM async_actions WHERE ($1 IS NULL OR initiator_uid = $1) \
         AND (expires_at IS NULL OR expires_at > $2) ORDER BY created_at, uid"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(initiator.map(uid_text))
        .bind(now.ticks())
        .fetch_all(pool)
        .await?;
    rows.iter().map(action_from_row).collect()
}

pub(super) async fn get_action(
    pool: &Pool,
    uid: Uuid,
    now: Timestamp,
) -> Result<Option<AsyncActionRecord>, StoreError> {
    let sql = format!(
        "SELECT {ACTION_COLUMNS} FROM async_actions WHERE uid = $1 AND (expires_at IS NULL OR expires_at > $2)"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(uid_text(uid))
        .bind(now.ticks())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(action_from_row).transpose()
}

pub(super) async fn forget_action(
    pool: &Pool,
    uid: Uuid,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let updated =
        sqlx::query("UPDATE async_actions SET expires_at = $1 WHERE uid = $2 AND status <> $3")
            .bind(now.ticks())
            .bind(uid_text(uid))
            .bind(ActionStatus::Running.as_str())
            .execute(pool)
            .await?;
    Ok(updated.rows_affected() == 1)
}

/// The plan an object belongs to.
pub(super) async fn object_plan(pool: &Pool, object: Uuid) -> Result<Option<Uuid>, StoreError> {
    let row: Option<(String,)> = sqlx::query_as("SELECT plan_uid FROM plan_objects WHERE uid = $1")
        .bind(uid_text(object))
        .fetch_optional(pool)
        .await?;
    row.map(|(plan,)| parse_uid("plan_objects", "plan_uid", &plan))
        .transpose()
}

/// A VM's restore points, newest first.
pub(super) async fn restore_points(
    pool: &Pool,
    object: Uuid,
    limit: u32,
    offset: u32,
) -> Result<crate::Page<RestorePointView>, StoreError> {
    let (total,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM restore_points WHERE object_uid = $1")
            .bind(uid_text(object))
            .fetch_one(pool)
            .await?;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT uid, created_at FROM restore_points WHERE object_uid = $1 ORDER BY created_at DESC, uid DESC LIMIT $2 OFFSET $3",
    )
    .bind(uid_text(object))
    .bind(i64::from(limit))
    .bind(i64::from(offset))
    .fetch_all(pool)
    .await?;
    let items = rows
        .into_iter()
        .map(|(uid, at)| {
            Ok(RestorePointView {
                uid: parse_uid("restore_points", "uid", &uid)?,
                object_uid: object,
                created_at: Timestamp::from_ticks(at),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(crate::Page {
        items,
        total: total.max(0) as u64,
    })
}

//! What a run's report reads: a plan's sessions with each VM's result and the targets in force
//! when each started, their log lines and operator notes; and the targets themselves.

use super::{DbRow, Pool};
use sqlx::Row;
use standby_model::{
    BackupStatus, MessageSeverity, RecoveryTargets, SessionKind, SessionMessage, SessionStatus,
    Timestamp,
};
use uuid::Uuid;

use crate::rows::{parse_enum, parse_optional_uid, parse_uid, ts, uid_text};
use crate::sessions::*;
use crate::{Page, StoreError};

/// Longest operator note kept, in characters.
pub(crate) const MAX_NOTE_CHARS: usize = 4_000;

const SESSION_COLUMNS: &str = "uid, kind, status, message, started_by, requested_point, start_time, end_time, \
                               rto_target_seconds, rpo_target_seconds";

fn seconds(value: Option<i64>) -> Option<u32> {
    value.and_then(|seconds| u32::try_from(seconds).ok())
}

/// A session row (of [`SESSION_COLUMNS`]) with its VMs.
async fn session_of(pool: &Pool, row: &DbRow) -> Result<SessionHistory, StoreError> {
    let uid = parse_uid("sessions", "uid", &row.try_get::<String, _>(0)?)?;
    let kind_text: String = row.try_get(1)?;
    let kind = SessionKind::parse(&kind_text).ok_or(StoreError::Corrupt {
        table: "sessions",
        column: "kind",
        value: kind_text,
    })?;
    let vm_rows = sqlx::query(
        "SELECT v.object_uid, o.name, v.backup_status, v.restore_point_uid, v.restore_point_time, v.start_time, v.end_time \
         FROM vm_sessions v JOIN plan_objects o ON o.uid = v.object_uid WHERE v.session_uid = $1 ORDER BY o.boot_order, o.uid",
    )
    .bind(uid_text(uid))
    .fetch_all(pool)
    .await?;
    let mut vms = Vec::with_capacity(vm_rows.len());
    for vm in vm_rows {
        let point: Option<String> = vm.try_get(3)?;
        vms.push(VmHistory {
            object_uid: parse_uid("vm_sessions", "object_uid", &vm.try_get::<String, _>(0)?)?,
            name: vm.try_get(1)?,
            backup_status: parse_enum::<BackupStatus>(
                "vm_sessions",
                "backup_status",
                &vm.try_get::<String, _>(2)?,
            )?,
            restore_point_uid: parse_optional_uid(
                "vm_sessions",
                "restore_point_uid",
                point.as_deref(),
            )?,
            restore_point_time: ts(vm.try_get(4)?),
            start_time: Timestamp::from_ticks(vm.try_get(5)?),
            end_time: ts(vm.try_get(6)?),
        });
    }
    Ok(SessionHistory {
        uid,
        kind,
        status: parse_enum::<SessionStatus>("sessions", "status", &row.try_get::<String, _>(2)?)?,
        message: row.try_get(3)?,
        started_by: row.try_get(4)?,
        requested_point: ts(row.try_get(5)?),
        start_time: Timestamp::from_ticks(row.try_get(6)?),
        end_time: ts(row.try_get(7)?),
        targets: RecoveryTargets {
            rto_seconds: seconds(row.try_get(8)?),
            rpo_seconds: seconds(row.try_get(9)?),
        },
        vms,
    })
}

/// A plan's sessions, newest first, each with its VMs' results.
pub(super) async fn session_history(
    pool: &Pool,
    plan: Uuid,
    limit: u32,
    offset: u32,
) -> Result<Page<SessionHistory>, StoreError> {
    let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sessions WHERE plan_uid = $1")
        .bind(uid_text(plan))
        .fetch_one(pool)
        .await?;
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE plan_uid = $1 \
         ORDER BY start_time DESC, uid DESC LIMIT $2 OFFSET $3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(uid_text(plan))
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(pool)
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        items.push(session_of(pool, row).await?);
    }
    Ok(Page {
        items,
        total: total.max(0) as u64,
    })
}

/// One session of a plan; `None` if the plan has no such session.
pub(super) async fn plan_session(
    pool: &Pool,
    plan: Uuid,
    session: Uuid,
) -> Result<Option<SessionHistory>, StoreError> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE uid = $1 AND plan_uid = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(uid_text(session))
        .bind(uid_text(plan))
        .fetch_optional(pool)
        .await?;
    match row {
        Some(row) => Ok(Some(session_of(pool, &row).await?)),
        None => Ok(None),
    }
}

pub(super) async fn session_messages(
    pool: &Pool,
    session: Uuid,
) -> Result<Vec<SessionMessage>, StoreError> {
    let rows = sqlx::query(
        "SELECT title, description, severity, start_time, end_time FROM session_messages \
         WHERE session_uid = $1 ORDER BY seq",
    )
    .bind(uid_text(session))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(SessionMessage {
                title: row.try_get(0)?,
                description: row.try_get(1)?,
                severity: parse_enum::<MessageSeverity>(
                    "session_messages",
                    "severity",
                    &row.try_get::<String, _>(2)?,
                )?,
                start_time: ts(row.try_get(3)?),
                end_time: ts(row.try_get(4)?),
            })
        })
        .collect()
}

pub(super) async fn plan_targets(pool: &Pool, plan: Uuid) -> Result<RecoveryTargets, StoreError> {
    let row: Option<(Option<i64>, Option<i64>)> =
        sqlx::query_as("SELECT rto_seconds, rpo_seconds FROM plan_targets WHERE plan_uid = $1")
            .bind(uid_text(plan))
            .fetch_optional(pool)
            .await?;
    Ok(
        row.map_or_else(RecoveryTargets::default, |(rto, rpo)| RecoveryTargets {
            rto_seconds: seconds(rto),
            rpo_seconds: seconds(rpo),
        }),
    )
}

pub(super) async fn set_plan_targets(
    pool: &Pool,
    plan: Uuid,
    targets: &RecoveryTargets,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO plan_targets (plan_uid, rto_seconds, rpo_seconds, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (plan_uid) DO UPDATE SET rto_seconds = excluded.rto_seconds, \
         rpo_seconds = excluded.rpo_seconds, updated_at = excluded.updated_at",
    )
    .bind(uid_text(plan))
    .bind(targets.rto_seconds.map(i64::from))
    .bind(targets.rpo_seconds.map(i64::from))
    .bind(now.ticks())
    .execute(pool)
    .await?;
    Ok(())
}

fn note_of(row: &DbRow) -> Result<SessionNote, StoreError> {
    Ok(SessionNote {
        seq: row.try_get(0)?,
        author: row.try_get(1)?,
        written_at: Timestamp::from_ticks(row.try_get(2)?),
        text: row.try_get(3)?,
    })
}

pub(super) async fn session_notes(
    pool: &Pool,
    session: Uuid,
) -> Result<Vec<SessionNote>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, author, written_at, text FROM session_notes WHERE session_uid = $1 ORDER BY seq",
    )
    .bind(uid_text(session))
    .fetch_all(pool)
    .await?;
    rows.iter().map(note_of).collect()
}

/// Appends a note; its number is the next of the session's, so two notes written at once on
/// two nodes may collide on it: the loser tries again with the next number.
pub(super) async fn add_session_note(
    pool: &Pool,
    session: Uuid,
    author: &str,
    text: &str,
    now: Timestamp,
) -> Result<SessionNote, StoreError> {
    let text = crate::bounded(text, MAX_NOTE_CHARS);
    let author = crate::bounded(author, 128);
    let mut attempts = 0;
    loop {
        let inserted = sqlx::query(
            "INSERT INTO session_notes (session_uid, seq, author, written_at, text) \
             VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM session_notes WHERE session_uid = $1), $2, $3, $4) \
             RETURNING seq, author, written_at, text",
        )
        .bind(uid_text(session))
        .bind(&author)
        .bind(now.ticks())
        .bind(&text)
        .fetch_one(pool)
        .await;
        match inserted {
            Ok(row) => return note_of(&row),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() && attempts < 5 => {
                attempts += 1;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

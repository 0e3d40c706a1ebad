//! Notifications (see `crate::notifications`): channels, the outbox, deliveries.

use super::{DbRow, Pool};
use sqlx::Row;
use standby_model::Timestamp;
use uuid::Uuid;

use crate::notifications::*;
use crate::rows::{parse_optional_uid, parse_uid, ts, uid_text};
use crate::{Scope, StoreError};

/// Writes an event to the outbox inside the caller's transaction. Its plan is `plan`, else the
/// plan of `session` (a finished run or a failed VM names its session only).
pub(super) async fn insert_event(
    tx: &mut sqlx::Transaction<'_, super::Db>,
    name: &str,
    plan: Option<Uuid>,
    session: Option<Uuid>,
    server: Option<Uuid>,
    body: &serde_json::Value,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO notification_events (uid, name, plan_uid, server_uid, body, created_at, dispatched) \
         VALUES ($1, $2, COALESCE($3, (SELECT plan_uid FROM sessions WHERE uid = $4)), $5, $6, $7, FALSE)",
    )
    .bind(uid_text(Uuid::now_v7()))
    .bind(name)
    .bind(plan.map(uid_text))
    .bind(session.map(uid_text))
    .bind(server.map(uid_text))
    .bind(body.to_string())
    .bind(now.ticks())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const CHANNEL_COLUMNS: &str =
    "uid, owner_all, owner_organization_uid, kind, target, secret, events, created_by, created_at";

fn channel_of(row: &DbRow) -> Result<ChannelRecord, StoreError> {
    let organization = parse_uid(
        "notification_channels",
        "owner_organization_uid",
        &row.try_get::<String, _>(2)?,
    )?;
    let owner_all: bool = row.try_get(1)?;
    let kind: String = row.try_get(3)?;
    let events: String = row.try_get(6)?;
    Ok(ChannelRecord {
        uid: parse_uid(
            "notification_channels",
            "uid",
            &row.try_get::<String, _>(0)?,
        )?,
        owner: if owner_all {
            Scope::All
        } else {
            Scope::Organization(organization)
        },
        owner_organization_uid: organization,
        kind: match kind.as_str() {
            "webhook" => ChannelKind::Webhook,
            "email" => ChannelKind::Email,
            _ => {
                return Err(StoreError::Corrupt {
                    table: "notification_channels",
                    column: "kind",
                    value: kind,
                });
            }
        },
        target: row.try_get(4)?,
        secret: row.try_get(5)?,
        events: serde_json::from_str(&events).map_err(|_| StoreError::Corrupt {
            table: "notification_channels",
            column: "events",
            value: events.clone(),
        })?,
        created_by: row.try_get(7)?,
        created_at: Timestamp::from_ticks(row.try_get(8)?),
    })
}

pub(super) async fn create_channel(pool: &Pool, channel: &ChannelRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO notification_channels (uid, owner_all, owner_organization_uid, kind, target, secret, events, \
         created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(uid_text(channel.uid))
    .bind(channel.owner == Scope::All)
    .bind(uid_text(channel.owner_organization_uid))
    .bind(channel.kind.as_str())
    .bind(&channel.target)
    .bind(&channel.secret)
    .bind(serde_json::to_string(&channel.events).unwrap_or_else(|_| "[]".into()))
    .bind(&channel.created_by)
    .bind(channel.created_at.ticks())
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn list_channels(
    pool: &Pool,
    scope: Scope,
) -> Result<Vec<ChannelRecord>, StoreError> {
    let rows = match scope {
        Scope::All => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {CHANNEL_COLUMNS} FROM notification_channels ORDER BY created_at, uid"
            )))
            .fetch_all(pool)
            .await?
        }
        Scope::Organization(organization) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {CHANNEL_COLUMNS} FROM notification_channels WHERE owner_all = FALSE \
                 AND owner_organization_uid = $1 ORDER BY created_at, uid"
            )))
            .bind(uid_text(organization))
            .fetch_all(pool)
            .await?
        }
    };
    rows.iter().map(channel_of).collect()
}

pub(super) async fn get_channel(
    pool: &Pool,
    scope: Scope,
    uid: Uuid,
) -> Result<Option<ChannelRecord>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANNEL_COLUMNS} FROM notification_channels WHERE uid = $1"
    )))
    .bind(uid_text(uid))
    .fetch_optional(pool)
    .await?;
    let Some(channel) = row.as_ref().map(channel_of).transpose()? else {
        return Ok(None);
    };
    Ok(match scope {
        Scope::All => Some(channel),
        Scope::Organization(organization)
            if channel.owner != Scope::All && channel.owner_organization_uid == organization =>
        {
            Some(channel)
        }
        Scope::Organization(_) => None,
    })
}

pub(super) async fn delete_channel(pool: &Pool, uid: Uuid) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM notification_deliveries WHERE channel_uid = $1")
        .bind(uid_text(uid))
        .execute(&mut *tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM notification_channels WHERE uid = $1")
        .bind(uid_text(uid))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(deleted.rows_affected() > 0)
}

pub(super) async fn record_event(
    pool: &Pool,
    name: &str,
    plan: Option<Uuid>,
    server: Option<Uuid>,
    body: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let body: serde_json::Value =
        serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.to_owned()));
    let mut tx = pool.begin().await?;
    insert_event(&mut tx, name, plan, None, server, &body, now).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn pending_events(
    pool: &Pool,
    limit: u32,
) -> Result<Vec<OutboxEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT uid, name, plan_uid, server_uid, body, created_at FROM notification_events \
         WHERE dispatched = FALSE ORDER BY created_at, uid LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let plan: Option<String> = row.try_get(2)?;
            let server: Option<String> = row.try_get(3)?;
            Ok(OutboxEvent {
                uid: parse_uid("notification_events", "uid", &row.try_get::<String, _>(0)?)?,
                name: row.try_get(1)?,
                plan_uid: parse_optional_uid("notification_events", "plan_uid", plan.as_deref())?,
                server_uid: parse_optional_uid(
                    "notification_events",
                    "server_uid",
                    server.as_deref(),
                )?,
                body: row.try_get(4)?,
                created_at: Timestamp::from_ticks(row.try_get(5)?),
            })
        })
        .collect()
}

pub(super) async fn dispatch_events(
    pool: &Pool,
    events: &[(Uuid, Vec<NewDelivery>)],
    now: Timestamp,
) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let mut dispatched = 0;
    for (event, deliveries) in events {
        let claimed = sqlx::query(
            "UPDATE notification_events SET dispatched = TRUE WHERE uid = $1 AND dispatched = FALSE",
        )
        .bind(uid_text(*event))
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            continue;
        }
        dispatched += 1;
        insert_deliveries(&mut tx, *event, deliveries, now).await?;
    }
    tx.commit().await?;
    Ok(dispatched)
}

async fn insert_deliveries(
    tx: &mut sqlx::Transaction<'_, super::Db>,
    event: Uuid,
    deliveries: &[NewDelivery],
    now: Timestamp,
) -> Result<(), StoreError> {
    for delivery in deliveries {
        sqlx::query(
            "INSERT INTO notification_deliveries (uid, channel_uid, event_uid, event_name, body, state, attempts, \
             next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6) \
             ON CONFLICT (channel_uid, event_uid, event_name) DO NOTHING",
        )
        .bind(uid_text(delivery.uid))
        .bind(uid_text(delivery.channel_uid))
        .bind(uid_text(event))
        .bind(&delivery.event_name)
        .bind(&delivery.body)
        .bind(now.ticks())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

const DELIVERY_COLUMNS: &str = "uid, channel_uid, event_uid, event_name, body, state, attempts, next_attempt_at, \
     last_status, last_error, created_at, delivered_at";

fn delivery_of(row: &DbRow) -> Result<DeliveryRecord, StoreError> {
    let state: String = row.try_get(5)?;
    let attempts: i64 = row.try_get(6)?;
    let status: Option<i64> = row.try_get(8)?;
    Ok(DeliveryRecord {
        uid: parse_uid(
            "notification_deliveries",
            "uid",
            &row.try_get::<String, _>(0)?,
        )?,
        channel_uid: parse_uid(
            "notification_deliveries",
            "channel_uid",
            &row.try_get::<String, _>(1)?,
        )?,
        event_uid: parse_uid(
            "notification_deliveries",
            "event_uid",
            &row.try_get::<String, _>(2)?,
        )?,
        event_name: row.try_get(3)?,
        body: row.try_get(4)?,
        state: DeliveryState::parse(&state).ok_or(StoreError::Corrupt {
            table: "notification_deliveries",
            column: "state",
            value: state.clone(),
        })?,
        attempts: u32::try_from(attempts.max(0)).unwrap_or(u32::MAX),
        next_attempt_at: Timestamp::from_ticks(row.try_get(7)?),
        last_status: status.and_then(|s| u16::try_from(s).ok()),
        last_error: row.try_get(9)?,
        created_at: Timestamp::from_ticks(row.try_get(10)?),
        delivered_at: ts(row.try_get(11)?),
    })
}

pub(super) async fn due_deliveries(
    pool: &Pool,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM notification_deliveries WHERE state = 'pending' AND next_attempt_at <= $1 \
         ORDER BY next_attempt_at, uid LIMIT $2"
    )))
    .bind(now.ticks())
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(delivery_of).collect()
}

pub(super) async fn claim_delivery(
    pool: &Pool,
    delivery: &DeliveryRecord,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<bool, StoreError> {
    let claimed = sqlx::query(
        "UPDATE notification_deliveries SET attempts = attempts + 1, next_attempt_at = $1 \
         WHERE uid = $2 AND state = 'pending' AND attempts = $3 AND next_attempt_at <= $4",
    )
    .bind(lease_until.ticks())
    .bind(uid_text(delivery.uid))
    .bind(i64::from(delivery.attempts))
    .bind(now.ticks())
    .execute(pool)
    .await?;
    Ok(claimed.rows_affected() > 0)
}

pub(super) async fn finish_attempt(
    pool: &Pool,
    delivery: Uuid,
    attempt: u32,
    outcome: &AttemptOutcome,
    now: Timestamp,
) -> Result<bool, StoreError> {
    // Only the attempt that is still the latest may say how it ended.
    let finished = match outcome {
        AttemptOutcome::Delivered { status } => {
            sqlx::query(
                "UPDATE notification_deliveries SET state = 'delivered', delivered_at = $1, last_status = $2, \
                 last_error = '' WHERE uid = $3 AND attempts = $4 AND state = 'pending'",
            )
            .bind(now.ticks())
            .bind(status.map(i64::from))
            .bind(uid_text(delivery))
            .bind(i64::from(attempt))
            .execute(pool)
            .await?
        }
        AttemptOutcome::Failed {
            status,
            error,
            retry_at,
        } => {
            let state = if retry_at.is_some() {
                DeliveryState::Pending
            } else {
                DeliveryState::Failed
            };
            sqlx::query(
                "UPDATE notification_deliveries SET state = $1, next_attempt_at = $2, last_status = $3, \
                 last_error = $4 WHERE uid = $5 AND attempts = $6 AND state = 'pending'",
            )
            .bind(state.as_str())
            .bind(retry_at.unwrap_or(now).ticks())
            .bind(status.map(i64::from))
            .bind(crate::bounded(error, 1_000))
            .bind(uid_text(delivery))
            .bind(i64::from(attempt))
            .execute(pool)
            .await?
        }
    };
    Ok(finished.rows_affected() > 0)
}

pub(super) async fn channel_deliveries(
    pool: &Pool,
    channel: Uuid,
    limit: u32,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM notification_deliveries WHERE channel_uid = $1 \
         ORDER BY created_at DESC, uid DESC LIMIT $2"
    )))
    .bind(uid_text(channel))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(delivery_of).collect()
}

pub(super) async fn claim_offline_servers(
    pool: &Pool,
    cutoff: Timestamp,
    now: Timestamp,
) -> Result<Vec<Uuid>, StoreError> {
    let candidates: Vec<(String, String)> = sqlx::query_as(
        "SELECT a.server_uid, s.name FROM agents a JOIN backup_servers s ON s.uid = a.server_uid \
         WHERE a.enrolled_at IS NOT NULL AND a.last_seen < $1 \
         AND (a.offline_notified_at IS NULL OR a.offline_notified_at < a.last_seen) LIMIT 100",
    )
    .bind(cutoff.ticks())
    .fetch_all(pool)
    .await?;
    let mut told = Vec::new();
    for (server, name) in candidates {
        let uid = parse_uid("agents", "server_uid", &server)?;
        let mut tx = pool.begin().await?;
        let claimed = sqlx::query(
            "UPDATE agents SET offline_notified_at = $1 WHERE server_uid = $2 AND last_seen < $3 \
             AND (offline_notified_at IS NULL OR offline_notified_at < last_seen)",
        )
        .bind(now.ticks())
        .bind(&server)
        .bind(cutoff.ticks())
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            tx.rollback().await?;
            continue;
        }
        let last_seen: Option<i64> =
            sqlx::query_scalar("SELECT last_seen FROM agents WHERE server_uid = $1")
                .bind(&server)
                .fetch_one(&mut *tx)
                .await?;
        let body = serde_json::json!({
            "backupServerUid": uid,
            "backupServerName": name,
            "lastSeen": ts(last_seen),
        });
        insert_event(&mut tx, SERVER_OFFLINE, None, None, Some(uid), &body, now).await?;
        tx.commit().await?;
        told.push(uid);
    }
    Ok(told)
}

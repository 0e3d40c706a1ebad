//! `X-Request-id` records: reserve before handling, complete with the response, replay after.

use super::Pool;
use sqlx::Row;
use standby_model::Timestamp;
use uuid::Uuid;

use crate::rows::uid_text;
use crate::{IdempotencyKey, Reservation, StoreError, StoredResponse};

/// A reservation older than this with no response belongs to a request that died with its
/// process; a repeat may take it over.
const ABANDONED_AFTER_SECONDS: i64 = 120;

pub(super) async fn reserve(
    pool: &Pool,
    key: &IdempotencyKey,
    now: Timestamp,
    expires_at: Timestamp,
) -> Result<Reservation, StoreError> {
    let id = uid_text(key.request_id);
    // Expired records, and reservations abandoned by a crash, no longer hold their id.
    sqlx::query("DELETE FROM idempotency WHERE request_id = $1 AND (expires_at <= $2 OR (status IS NULL AND created_at <= $3))")
        .bind(&id)
        .bind(now.ticks())
        .bind(now.plus_seconds(-ABANDONED_AFTER_SECONDS).ticks())
        .execute(pool)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO idempotency (request_id, principal_uid, fingerprint, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (request_id) DO NOTHING",
    )
    .bind(&id)
    .bind(uid_text(key.principal_uid))
    .bind(&key.fingerprint)
    .bind(now.ticks())
    .bind(expires_at.ticks())
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Reservation::Fresh);
    }
    let Some(row) = sqlx::query("SELECT principal_uid, fingerprint, status, headers, body FROM idempotency WHERE request_id = $1")
        .bind(&id)
        .fetch_optional(pool)
        .await?
    else {
        // Deleted between our insert and read (purged); the caller may simply retry.
        return Ok(Reservation::InFlight);
    };
    let principal: String = row.try_get(0)?;
    let fingerprint: String = row.try_get(1)?;
    if principal != uid_text(key.principal_uid) || fingerprint != key.fingerprint {
        return Ok(Reservation::Mismatch);
    }
    let status: Option<i64> = row.try_get(2)?;
    let Some(status) = status else {
        return Ok(Reservation::InFlight);
    };
    let headers: Option<String> = row.try_get(3)?;
    let headers: Vec<(String, String)> = match headers {
        Some(text) => serde_json::from_str(&text).map_err(|_| StoreError::Corrupt {
            table: "idempotency",
            column: "headers",
            value: text.clone(),
        })?,
        None => Vec::new(),
    };
    let body: Option<Vec<u8>> = row.try_get(4)?;
    Ok(Reservation::Replay(StoredResponse {
        status: u16::try_from(status).unwrap_or(520),
        headers,
        body: body.unwrap_or_default(),
    }))
}

/// Keeps the response for a reservation; on its own or inside the transaction of the change it
/// answers.
pub(super) async fn complete<'e>(
    executor: impl sqlx::Executor<'e, Database = super::Db>,
    request_id: Uuid,
    response: &StoredResponse,
) -> Result<(), StoreError> {
    let headers = serde_json::to_string(&response.headers).map_err(|e| StoreError::Corrupt {
        table: "idempotency",
        column: "headers",
        value: e.to_string(),
    })?;
    sqlx::query(
        "UPDATE idempotency SET status = $1, headers = $2, body = $3 WHERE request_id = $4",
    )
    .bind(i64::from(response.status))
    .bind(headers)
    .bind(&response.body)
    .bind(uid_text(request_id))
    .execute(executor)
    .await?;
    Ok(())
}

pub(super) async fn release(pool: &Pool, request_id: Uuid) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM idempotency WHERE request_id = $1 AND status IS NULL")
        .bind(uid_text(request_id))
        .execute(pool)
        .await?;
    Ok(())
}

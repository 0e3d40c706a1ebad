//! Users, bearer tokens and login attempts.

use super::{DbRow, Pool};
use sqlx::Row;
use standby_model::{Role, Timestamp, WireEnum};
use uuid::Uuid;

use crate::rows::{parse_enum, parse_optional_uid, parse_uid, uid_text};
use crate::{LoginAttempt, StoreError, TokenKind, TokenRecord, UserRecord};

const USER_COLUMNS: &str = "u.uid, u.name, u.organization_uid, u.role, u.password_hash, u.disabled";
const TOKEN_COLUMNS: &str =
    "t.hash, t.user_uid, t.kind, t.read_only, t.family, t.created_at, t.expires_at";

fn user_from_row(row: &DbRow, offset: usize) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        uid: parse_uid("users", "uid", &row.try_get::<String, _>(offset)?)?,
        name: row.try_get(offset + 1)?,
        organization_uid: parse_uid(
            "users",
            "organization_uid",
            &row.try_get::<String, _>(offset + 2)?,
        )?,
        role: parse_enum::<Role>("users", "role", &row.try_get::<String, _>(offset + 3)?)?,
        password_hash: row.try_get(offset + 4)?,
        disabled: row.try_get(offset + 5)?,
    })
}

fn token_from_row(row: &DbRow) -> Result<TokenRecord, StoreError> {
    let kind: String = row.try_get(2)?;
    Ok(TokenRecord {
        hash: row.try_get(0)?,
        user_uid: parse_uid("tokens", "user_uid", &row.try_get::<String, _>(1)?)?,
        kind: match kind.as_str() {
            "access" => TokenKind::Access,
            "refresh" => TokenKind::Refresh,
            _ => {
                return Err(StoreError::Corrupt {
                    table: "tokens",
                    column: "kind",
                    value: kind,
                });
            }
        },
        read_only: row.try_get(3)?,
        family: parse_uid("tokens", "family", &row.try_get::<String, _>(4)?)?,
        created_at: Timestamp::from_ticks(row.try_get(5)?),
        expires_at: Timestamp::from_ticks(row.try_get(6)?),
    })
}

pub(super) async fn count_users(pool: &Pool) -> Result<u64, StoreError> {
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await?;
    Ok(count.max(0) as u64)
}

pub(super) async fn create_user(pool: &Pool, user: &UserRecord) -> Result<(), StoreError> {
    let result = sqlx::query(
        "INSERT INTO users (uid, name, organization_uid, role, password_hash, disabled, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(uid_text(user.uid))
    .bind(&user.name)
    .bind(uid_text(user.organization_uid))
    .bind(user.role.as_str())
    .bind(&user.password_hash)
    .bind(user.disabled)
    .bind(Timestamp::now().ticks())
    .execute(pool)
    .await;
    match result {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict(
            format!("A user named '{}' already exists.", user.name),
        )),
        other => other.map(|_| ()).map_err(StoreError::from),
    }
}

pub(super) async fn find_user_by_name(
    pool: &Pool,
    name: &str,
) -> Result<Option<UserRecord>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.name = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(name)
        .fetch_optional(pool)
        .await?;
    row.map(|row| user_from_row(&row, 0)).transpose()
}

pub(super) async fn provider_organization(pool: &Pool) -> Result<Option<Uuid>, StoreError> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT uid FROM organizations WHERE kind = 'provider' ORDER BY name LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    row.map(|(uid,)| parse_uid("organizations", "uid", &uid))
        .transpose()
}

pub(super) async fn ensure_provider_organization(
    pool: &Pool,
    name: &str,
) -> Result<Uuid, StoreError> {
    if let Some(uid) = provider_organization(pool).await? {
        return Ok(uid);
    }
    let uid = standby_fleet::derived_uid("organization", name);
    sqlx::query("INSERT INTO organizations (uid, name, kind) VALUES ($1, $2, 'provider') ON CONFLICT (uid) DO NOTHING")
        .bind(uid_text(uid))
        .bind(name)
        .execute(pool)
        .await?;
    Ok(uid)
}

pub(super) async fn revoke_token(pool: &Pool, hash: &str) -> Result<bool, StoreError> {
    let revoked =
        sqlx::query("UPDATE tokens SET revoked = TRUE WHERE hash = $1 AND revoked = FALSE")
            .bind(hash)
            .execute(pool)
            .await?;
    Ok(revoked.rows_affected() > 0)
}

pub(super) async fn insert_token(pool: &Pool, token: &TokenRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tokens (hash, user_uid, kind, read_only, family, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&token.hash)
    .bind(uid_text(token.user_uid))
    .bind(token.kind.as_str())
    .bind(token.read_only)
    .bind(uid_text(token.family))
    .bind(token.created_at.ticks())
    .bind(token.expires_at.ticks())
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn consume_refresh_token(
    pool: &Pool,
    hash: &str,
    now: Timestamp,
) -> Result<Option<(TokenRecord, UserRecord)>, StoreError> {
    // Revoke first, atomically: of two concurrent refreshes with one token, only one wins.
    let revoked = sqlx::query(
        "UPDATE tokens SET revoked = TRUE WHERE hash = $1 AND kind = 'refresh' AND revoked = FALSE AND expires_at > $2",
    )
    .bind(hash)
    .bind(now.ticks())
    .execute(pool)
    .await?;
    if revoked.rows_affected() == 0 {
        // A refresh token used a second time was stolen or leaked: end its whole login chain.
        sqlx::query(
            "UPDATE tokens SET revoked = TRUE WHERE family = (SELECT family FROM tokens WHERE hash = $1 AND kind = 'refresh' AND revoked = TRUE)",
        )
        .bind(hash)
        .execute(pool)
        .await?;
        return Ok(None);
    }
    let sql = format!(
        "SELECT {TOKEN_COLUMNS}, {USER_COLUMNS} FROM tokens t JOIN users u ON u.uid = t.user_uid \
         WHERE t.hash = $1 AND u.disabled = FALSE"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(hash)
        .fetch_optional(pool)
        .await?;
    row.map(|row| Ok((token_from_row(&row)?, user_from_row(&row, 7)?)))
        .transpose()
}

pub(super) async fn company_names(
    pool: &Pool,
    limit: u32,
) -> Result<Vec<(Uuid, String)>, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT uid, name FROM organizations WHERE kind = 'company' ORDER BY name, uid LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(uid, name)| Ok((parse_uid("organizations", "uid", &uid)?, name)))
        .collect()
}

pub(super) async fn list_organizations(
    pool: &Pool,
) -> Result<Vec<standby_fleet::OrganizationRecord>, StoreError> {
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT uid, name, kind FROM organizations ORDER BY kind DESC, name")
            .fetch_all(pool)
            .await?;
    rows.into_iter()
        .map(|(uid, name, kind)| {
            Ok(standby_fleet::OrganizationRecord {
                uid: parse_uid("organizations", "uid", &uid)?,
                name,
                kind: standby_fleet::OrganizationKind::parse(&kind).ok_or(StoreError::Corrupt {
                    table: "organizations",
                    column: "kind",
                    value: kind,
                })?,
            })
        })
        .collect()
}

pub(super) async fn list_users(pool: &Pool) -> Result<Vec<UserRecord>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.name");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?;
    rows.iter().map(|row| user_from_row(row, 0)).collect()
}

/// Applies a change to a user and revokes their tokens in one transaction; `false` if no such user.
async fn change_user(
    pool: &Pool,
    name: &str,
    sql: &'static str,
    value: Option<&str>,
) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let mut query = sqlx::query(sql).bind(name);
    if let Some(value) = value {
        query = query.bind(value);
    }
    if query.execute(&mut *tx).await?.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE tokens SET revoked = TRUE WHERE user_uid = (SELECT uid FROM users WHERE name = $1)",
    )
    .bind(name)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn set_password(pool: &Pool, name: &str, hash: &str) -> Result<bool, StoreError> {
    change_user(
        pool,
        name,
        "UPDATE users SET password_hash = $2 WHERE name = $1",
        Some(hash),
    )
    .await
}

pub(super) async fn set_disabled(
    pool: &Pool,
    name: &str,
    disabled: bool,
) -> Result<bool, StoreError> {
    if disabled {
        change_user(
            pool,
            name,
            "UPDATE users SET disabled = TRUE WHERE name = $1",
            None,
        )
        .await
    } else {
        let updated = sqlx::query("UPDATE users SET disabled = FALSE WHERE name = $1")
            .bind(name)
            .execute(pool)
            .await?;
        Ok(updated.rows_affected() == 1)
    }
}

pub(super) async fn remove_user(pool: &Pool, name: &str) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    for sql in [
        "DELETE FROM tokens WHERE user_uid = (SELECT uid FROM users WHERE name = $1)",
        "DELETE FROM api_keys WHERE user_uid = (SELECT uid FROM users WHERE name = $1)",
    ] {
        sqlx::query(sql).bind(name).execute(&mut *tx).await?;
    }
    let removed = sqlx::query("DELETE FROM users WHERE name = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(removed.rows_affected() == 1)
}

pub(super) async fn insert_api_key(
    pool: &Pool,
    key: &crate::ApiKeyRecord,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO api_keys (hash, user_uid, description, read_only, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&key.hash)
        .bind(uid_text(key.user_uid))
        .bind(&key.description)
        .bind(key.read_only)
        .bind(key.created_at.ticks())
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn find_credential(
    pool: &Pool,
    hash: &str,
    now: Timestamp,
) -> Result<Option<crate::Credential>, StoreError> {
    // A hash is either an access token's or an API key's (both are 256 random bits). The hash
    // finds the row; `+expires_at` keeps the expiry index out of it, because SQLite re-plans a
    // statement whose bound value meets an index (STAT4) each time that value changes, and
    // `now` changes on every request.
    let provider = "EXISTS (SELECT 1 FROM organizations o WHERE o.uid = u.organization_uid AND o.kind = 'provider')";
    let sql = format!(
        "SELECT t.read_only, {provider}, t.expires_at, {USER_COLUMNS} FROM tokens t JOIN users u ON u.uid = t.user_uid \
         WHERE t.hash = $1 AND t.kind = 'access' AND t.revoked = FALSE AND +t.expires_at > $2 AND u.disabled = FALSE \
         UNION ALL \
         SELECT k.read_only, {provider}, NULL, {USER_COLUMNS} FROM api_keys k JOIN users u ON u.uid = k.user_uid \
         WHERE k.hash = $1 AND k.revoked = FALSE AND u.disabled = FALSE \
         LIMIT 1"
    );
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(hash)
        .bind(now.ticks())
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(crate::Credential {
        read_only: row.try_get(0)?,
        provider_organization: row.try_get(1)?,
        expires_at: row.try_get::<Option<i64>, _>(2)?.map(Timestamp::from_ticks),
        user: user_from_row(&row, 3)?,
    }))
}

pub(super) async fn record_audit(
    conn: &mut super::commit::Conn,
    entry: &crate::AuditEntry,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit (uid, at, actor_uid, actor_name, address, action, target, outcome, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(uid_text(entry.uid))
    .bind(entry.at.ticks())
    .bind(entry.actor_uid.map(uid_text))
    .bind(&entry.actor_name)
    .bind(&entry.address)
    .bind(entry.action.as_str())
    .bind(&entry.target)
    .bind(entry.outcome.as_str())
    .bind(&entry.detail)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Audit records, newest first.
pub(super) async fn list_audit(
    pool: &Pool,
    limit: u32,
    offset: u32,
) -> Result<crate::Page<crate::AuditEntry>, StoreError> {
    let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit")
        .fetch_one(pool)
        .await?;
    let rows = sqlx::query(
        "SELECT uid, at, actor_uid, actor_name, address, action, target, outcome, detail FROM audit \
         ORDER BY at DESC, uid DESC LIMIT $1 OFFSET $2",
    )
    .bind(i64::from(limit))
    .bind(i64::from(offset))
    .fetch_all(pool)
    .await?;
    let items = rows
        .iter()
        .map(|row| {
            let actor: Option<String> = row.try_get(2)?;
            Ok(crate::AuditEntry {
                uid: parse_uid("audit", "uid", &row.try_get::<String, _>(0)?)?,
                at: Timestamp::from_ticks(row.try_get(1)?),
                actor_uid: parse_optional_uid("audit", "actor_uid", actor.as_deref())?,
                actor_name: row.try_get(3)?,
                address: row.try_get(4)?,
                action: crate::AuditAction::parse(&row.try_get::<String, _>(5)?),
                target: row.try_get(6)?,
                outcome: {
                    let outcome: String = row.try_get(7)?;
                    crate::AuditOutcome::parse(&outcome).ok_or(StoreError::Corrupt {
                        table: "audit",
                        column: "outcome",
                        value: outcome,
                    })?
                },
                detail: row.try_get(8)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(crate::Page {
        items,
        total: total.max(0) as u64,
    })
}

/// Counts one login attempt for `key`, unless `limit` are already counted in its window: the test
/// and the count are one statement, so of many concurrent attempts at most `limit` get through.
pub(super) async fn reserve_login_attempt(
    pool: &Pool,
    key: &str,
    limit: u32,
    window_seconds: i64,
    now: Timestamp,
) -> Result<LoginAttempt, StoreError> {
    let admitted = sqlx::query(
        "INSERT INTO login_attempts (key, attempts, expires_at) VALUES ($1, 1, $2) \
         ON CONFLICT (key) DO UPDATE SET \
           attempts = CASE WHEN login_attempts.expires_at <= $3 THEN 1 ELSE login_attempts.attempts + 1 END, \
           expires_at = CASE WHEN login_attempts.expires_at <= $3 THEN $2 ELSE login_attempts.expires_at END \
         WHERE login_attempts.expires_at <= $3 OR login_attempts.attempts < $4 \
         RETURNING expires_at",
    )
    .bind(key)
    .bind(now.plus_seconds(window_seconds).ticks())
    .bind(now.ticks())
    .bind(i64::from(limit))
    .fetch_optional(pool)
    .await?;
    if let Some(row) = admitted {
        return Ok(LoginAttempt::Admitted {
            window_ends: Timestamp::from_ticks(row.try_get(0)?),
        });
    }
    let expires_at: Option<i64> =
        sqlx::query_scalar("SELECT expires_at FROM login_attempts WHERE key = $1")
            .bind(key)
            .fetch_optional(pool)
            .await?;
    let remaining = expires_at.map_or(0, |ticks| {
        (Timestamp::from_ticks(ticks).unix_seconds() - now.unix_seconds()).max(0)
    });
    Ok(LoginAttempt::Blocked {
        retry_after_seconds: u64::try_from(remaining).unwrap_or(0).max(1),
    })
}

/// Gives back an attempt (the login succeeded: failures count), in the window it was counted in
/// only: once that window has ended, a new one must not start with a credit.
pub(super) async fn refund_login_attempt(
    pool: &Pool,
    key: &str,
    window_ends: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE login_attempts SET attempts = attempts - 1 WHERE key = $1 AND attempts > 0 AND expires_at = $2",
    )
    .bind(key)
    .bind(window_ends.ticks())
    .execute(pool)
    .await?;
    Ok(())
}

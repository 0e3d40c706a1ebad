//! The sim connector's ledger, replicas and faults on either backend (see `sim_ledger.rs`).

use async_trait::async_trait;
use sqlx::{Connection, Row};
use standby_fleet::SimFault;
use standby_model::Timestamp;
use uuid::Uuid;

use super::{DbRow, Pool};
use crate::rows::{parse_optional_uid, ts, uid_text};
use crate::sim_ledger::*;
use crate::{Page, StoreError};

/// The ledger's handle: the store's pools (reads on `pool`, faults written on `writer`) and its
/// group commit (the per-operation writes, as frequent as the engine's).
pub(super) struct SqlSimLedger {
    pub(super) pool: Pool,
    pub(super) writer: Pool,
    pub(super) committer: super::commit::Committer,
}

const COLUMNS: &str =
    "operation_id, object_uid, kind, executions, plan, outcome, message, started_at, finished_at";

fn record(row: &DbRow) -> Result<SimOperationRecord, StoreError> {
    let object: Option<String> = row.try_get(1)?;
    let outcome: Option<String> = row.try_get(5)?;
    let outcome = match outcome {
        None => None,
        Some(text) => Some(SimOutcome::parse(&text).ok_or(StoreError::Corrupt {
            table: "sim_operations",
            column: "outcome",
            value: text,
        })?),
    };
    Ok(SimOperationRecord {
        operation_id: row.try_get(0)?,
        object_uid: parse_optional_uid("sim_operations", "object_uid", object.as_deref())?,
        kind: row.try_get(2)?,
        executions: row.try_get(3)?,
        plan: row.try_get(4)?,
        outcome,
        message: row.try_get(6)?,
        started_at: Timestamp::from_ticks(row.try_get(7)?),
        finished_at: ts(row.try_get(8)?),
    })
}

#[async_trait]
impl SimLedger for SqlSimLedger {
    async fn submit(
        &self,
        operation: &str,
        object: Option<Uuid>,
        kind: &str,
        plan: &str,
        now: Timestamp,
    ) -> Result<SimOperationRecord, StoreError> {
        // A second submission is counted, never hidden: that is what makes the ledger proof.
        let (operation, kind, plan) = (operation.to_owned(), kind.to_owned(), plan.to_owned());
        self.committer
            .run(move |conn| {
                Box::pin(async move {
                    let sql = format!(
                        "INSERT INTO sim_operations (operation_id, object_uid, kind, executions, started_at, plan) VALUES ($1, $2, $3, 1, $4, $5) \
                         ON CONFLICT (operation_id) DO UPDATE SET executions = sim_operations.executions + 1 RETURNING {COLUMNS}"
                    );
                    let mut tx = conn.begin().await?;
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(&operation)
                        .bind(object.map(uid_text))
                        .bind(&kind)
                        .bind(now.ticks())
                        .bind(&plan)
                        .fetch_one(&mut *tx)
                        .await?;
                    let submitted = record(&row)?;
                    tx.commit().await?;
                    Ok(submitted)
                })
            })
            .await
    }

    async fn operation(&self, operation: &str) -> Result<Option<SimOperationRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM sim_operations WHERE operation_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(operation)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(record).transpose()
    }

    async fn complete(
        &self,
        operation: &str,
        outcome: SimOutcome,
        message: &str,
        change: Option<ReplicaChange>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (operation, message) = (operation.to_owned(), message.to_owned());
        self.committer
            .run(move |conn| {
                Box::pin(
                    async move { complete(conn, &operation, outcome, &message, change, now).await },
                )
            })
            .await
    }

    async fn replica_state(&self, object: Uuid) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT state FROM sim_replicas WHERE object_uid = $1")
                .bind(uid_text(object))
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(state,)| state))
    }

    async fn faults(&self, target: Uuid) -> Result<Vec<SimFault>, StoreError> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT fault FROM sim_faults WHERE target_uid = $1 ORDER BY fault")
                .bind(uid_text(target))
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(fault,)| {
                SimFault::parse(&fault).ok_or(StoreError::Corrupt {
                    table: "sim_faults",
                    column: "fault",
                    value: fault,
                })
            })
            .collect()
    }

    async fn set_fault(&self, target: Uuid, fault: SimFault, on: bool) -> Result<(), StoreError> {
        let sql = if on {
            "INSERT INTO sim_faults (target_uid, fault) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM sim_faults WHERE target_uid = $1 AND fault = $2"
        };
        sqlx::query(sql)
            .bind(uid_text(target))
            .bind(fault.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn operations(
        &self,
        limit: u32,
        offset: u32,
    ) -> Result<Page<SimOperationRecord>, StoreError> {
        let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sim_operations")
            .fetch_one(&self.pool)
            .await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM sim_operations ORDER BY started_at, operation_id LIMIT $1 OFFSET $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await?;
        Ok(Page {
            items: rows.iter().map(record).collect::<Result<_, _>>()?,
            total: total.max(0) as u64,
        })
    }
}

/// The write of [`SimLedger::complete`].
async fn complete(
    conn: &mut super::commit::Conn,
    operation: &str,
    outcome: SimOutcome,
    message: &str,
    change: Option<ReplicaChange>,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let mut tx = conn.begin().await?;
    let ended = sqlx::query(
        "UPDATE sim_operations SET outcome = $1, message = $2, finished_at = $3 WHERE operation_id = $4 AND outcome IS NULL",
    )
    .bind(outcome.as_str())
    .bind(message)
    .bind(now.ticks())
    .bind(operation)
    .execute(&mut *tx)
    .await?;
    if ended.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    match change {
        Some(ReplicaChange::Running { vm, test, point }) => {
            sqlx::query(
                "INSERT INTO sim_replicas (object_uid, state, restore_point_uid, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (object_uid) DO UPDATE SET state = excluded.state, restore_point_uid = excluded.restore_point_uid, \
                 updated_at = excluded.updated_at",
            )
            .bind(uid_text(vm))
            .bind(if test { "test" } else { "failover" })
            .bind(uid_text(point))
            .bind(now.ticks())
            .execute(&mut *tx)
            .await?;
        }
        Some(ReplicaChange::Reverted { vm }) => {
            sqlx::query("DELETE FROM sim_replicas WHERE object_uid = $1")
                .bind(uid_text(vm))
                .execute(&mut *tx)
                .await?;
        }
        None => {}
    }
    tx.commit().await?;
    Ok(true)
}

//! The SQLite store: one file in the data directory, WAL, foreign keys, migrations applied at
//! open. SQL here is kept portable (`$n` placeholders, ON CONFLICT, RETURNING) for PostgreSQL.

mod auth;
mod engine;
mod idempotency;
mod import;
mod plans;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Arguments;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use standby_fleet::Fleet;
use standby_model::{FailoverPlan, PlanObject, Timestamp};
use standby_query::Scalar;
use uuid::Uuid;

use crate::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The file name of the database inside the data directory.
pub const DATABASE_FILE: &str = "standby.db";

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) `<data_dir>/standby.db` and applies pending migrations.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        Self::open_file(&data_dir.join(DATABASE_FILE)).await
    }

    pub async fn open_file(path: &Path) -> Result<Self, StoreError> {
        Self::connect(SqliteConnectOptions::new().filename(path)).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed session transition survives a power cut, not only a process kill.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Binds the query language's values in order.
fn arguments(binds: &[Scalar]) -> Result<SqliteArguments, StoreError> {
    let mut arguments = SqliteArguments::default();
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

fn uid_text(uid: Uuid) -> String {
    uid.hyphenated().to_string()
}

fn parse_uid(table: &'static str, column: &'static str, text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|_| StoreError::Corrupt {
        table,
        column,
        value: text.to_owned(),
    })
}

/// A nullable UID column.
fn parse_optional_uid(
    table: &'static str,
    column: &'static str,
    text: Option<&str>,
) -> Result<Option<Uuid>, StoreError> {
    text.map(|text| parse_uid(table, column, text)).transpose()
}

fn parse_enum<E: standby_model::WireEnum>(
    table: &'static str,
    column: &'static str,
    text: &str,
) -> Result<E, StoreError> {
    E::parse(text).ok_or_else(|| StoreError::Corrupt {
        table,
        column,
        value: text.to_owned(),
    })
}

fn ts(ticks: Option<i64>) -> Option<Timestamp> {
    ticks.map(Timestamp::from_ticks)
}

#[async_trait]
impl Store for SqliteStore {
    async fn check_ready(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1 FROM plans LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(())
    }

    async fn is_empty(&self) -> Result<bool, StoreError> {
        let row: Option<(String,)> = sqlx::query_as("SELECT uid FROM plans LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_none())
    }

    async fn import_fleet(&self, fleet: &Fleet) -> Result<ImportSummary, StoreError> {
        import::import_fleet(&self.pool, fleet).await
    }

    async fn list_plans(&self, query: &ListQuery) -> Result<Page<FailoverPlan>, StoreError> {
        plans::list_plans(&self.pool, query).await
    }

    async fn get_plan(&self, scope: Scope, uid: Uuid) -> Result<Option<FailoverPlan>, StoreError> {
        plans::get_plan(&self.pool, scope, uid).await
    }

    async fn list_objects(&self, query: &ListQuery) -> Result<Page<PlanObject>, StoreError> {
        plans::list_objects(&self.pool, query).await
    }

    async fn server_visible(&self, scope: Scope, uid: Uuid) -> Result<bool, StoreError> {
        plans::server_visible(&self.pool, scope, uid).await
    }

    async fn update_plan_commands(
        &self,
        scope: Scope,
        uid: Uuid,
        change: &CommandChange,
    ) -> Result<Option<FailoverPlan>, StoreError> {
        plans::update_plan_commands(&self.pool, scope, uid, change).await
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        auth::count_users(&self.pool).await
    }

    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        auth::create_user(&self.pool, user).await
    }

    async fn find_user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        auth::find_user_by_name(&self.pool, name).await
    }

    async fn provider_organization(&self) -> Result<Option<Uuid>, StoreError> {
        auth::provider_organization(&self.pool).await
    }

    async fn ensure_provider_organization(&self, name: &str) -> Result<Uuid, StoreError> {
        auth::ensure_provider_organization(&self.pool, name).await
    }

    async fn list_organizations(
        &self,
    ) -> Result<Vec<standby_fleet::OrganizationRecord>, StoreError> {
        auth::list_organizations(&self.pool).await
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        auth::list_users(&self.pool).await
    }

    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, StoreError> {
        auth::set_password(&self.pool, name, password_hash).await
    }

    async fn set_disabled(&self, name: &str, disabled: bool) -> Result<bool, StoreError> {
        auth::set_disabled(&self.pool, name, disabled).await
    }

    async fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        auth::remove_user(&self.pool, name).await
    }

    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        auth::record_audit(&self.pool, entry).await
    }

    async fn list_audit(&self, limit: u32, offset: u32) -> Result<Page<AuditEntry>, StoreError> {
        auth::list_audit(&self.pool, limit, offset).await
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError> {
        auth::insert_api_key(&self.pool, key).await
    }

    async fn find_api_key(
        &self,
        hash: &str,
    ) -> Result<Option<(ApiKeyRecord, UserRecord)>, StoreError> {
        auth::find_api_key(&self.pool, hash).await
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        auth::insert_token(&self.pool, token).await
    }

    async fn find_token(
        &self,
        hash: &str,
        kind: TokenKind,
        now: Timestamp,
    ) -> Result<Option<(TokenRecord, UserRecord)>, StoreError> {
        auth::find_token(&self.pool, hash, kind, now).await
    }

    async fn consume_refresh_token(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<(TokenRecord, UserRecord)>, StoreError> {
        auth::consume_refresh_token(&self.pool, hash, now).await
    }

    async fn reserve_request(
        &self,
        key: &IdempotencyKey,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Reservation, StoreError> {
        idempotency::reserve(&self.pool, key, now, expires_at).await
    }

    async fn complete_request(
        &self,
        request_id: Uuid,
        response: &StoredResponse,
    ) -> Result<(), StoreError> {
        idempotency::complete(&self.pool, request_id, response).await
    }

    async fn release_request(&self, request_id: Uuid) -> Result<(), StoreError> {
        idempotency::release(&self.pool, request_id).await
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        let requests = sqlx::query("DELETE FROM idempotency WHERE expires_at <= $1")
            .bind(now.ticks())
            .execute(&self.pool)
            .await?;
        let tokens = sqlx::query("DELETE FROM tokens WHERE expires_at <= $1")
            .bind(now.ticks())
            .execute(&self.pool)
            .await?;
        let actions = sqlx::query("DELETE FROM async_actions WHERE expires_at <= $1")
            .bind(now.ticks())
            .execute(&self.pool)
            .await?;
        Ok(requests.rows_affected() + tokens.rows_affected() + actions.rows_affected())
    }

    async fn begin_session(
        &self,
        scope: Scope,
        session: &NewSession,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        engine::begin_session(&self.pool, scope, session, now).await
    }

    async fn claim_job(
        &self,
        worker: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Job>, StoreError> {
        engine::claim_job(&self.pool, worker, now, lease_until).await
    }

    async fn extend_lease(
        &self,
        job: Uuid,
        worker: &str,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError> {
        engine::extend_lease(&self.pool, job, worker, lease_until).await
    }

    async fn requeue_jobs(
        &self,
        expired_before: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        engine::requeue_jobs(&self.pool, expired_before, now).await
    }

    async fn session_work(&self, session: Uuid) -> Result<Option<SessionWork>, StoreError> {
        engine::session_work(&self.pool, session).await
    }

    async fn newest_restore_point(
        &self,
        object: Uuid,
        at_or_before: Option<Timestamp>,
    ) -> Result<Option<(Uuid, Timestamp)>, StoreError> {
        engine::newest_restore_point(&self.pool, object, at_or_before).await
    }

    async fn record_vm_start(
        &self,
        session: Uuid,
        object: Uuid,
        step: &VmStep,
    ) -> Result<(), StoreError> {
        engine::record_vm_start(&self.pool, session, object, step).await
    }

    async fn record_vm_end(
        &self,
        session: Uuid,
        step: Uuid,
        status: standby_model::BackupStatus,
        end: Timestamp,
        message: &standby_model::SessionMessage,
    ) -> Result<(), StoreError> {
        engine::record_vm_end(&self.pool, session, step, status, end, message).await
    }

    async fn append_session_message(
        &self,
        session: Uuid,
        message: &standby_model::SessionMessage,
    ) -> Result<(), StoreError> {
        engine::append_message(&self.pool, session, message).await
    }

    async fn finish_session(
        &self,
        session: Uuid,
        end: &SessionEnd,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        engine::finish_session(&self.pool, session, end, now).await
    }

    async fn request_cancel(&self, session: Uuid) -> Result<bool, StoreError> {
        engine::request_cancel(&self.pool, session).await
    }

    async fn cancel_requested(&self, session: Uuid) -> Result<bool, StoreError> {
        engine::cancel_requested(&self.pool, session).await
    }

    async fn object_plan(&self, object: Uuid) -> Result<Option<Uuid>, StoreError> {
        engine::object_plan(&self.pool, object).await
    }

    async fn restore_points(
        &self,
        object: Uuid,
        limit: u32,
        offset: u32,
    ) -> Result<Page<RestorePointView>, StoreError> {
        engine::restore_points(&self.pool, object, limit, offset).await
    }

    async fn session_history(
        &self,
        plan: Uuid,
        limit: u32,
        offset: u32,
    ) -> Result<Page<SessionHistory>, StoreError> {
        engine::session_history(&self.pool, plan, limit, offset).await
    }

    async fn list_actions(
        &self,
        initiator: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Vec<AsyncActionRecord>, StoreError> {
        engine::list_actions(&self.pool, initiator, now).await
    }

    async fn get_action(
        &self,
        uid: Uuid,
        now: Timestamp,
    ) -> Result<Option<AsyncActionRecord>, StoreError> {
        engine::get_action(&self.pool, uid, now).await
    }

    async fn forget_action(&self, uid: Uuid, now: Timestamp) -> Result<bool, StoreError> {
        engine::forget_action(&self.pool, uid, now).await
    }

    async fn sim_begin(
        &self,
        operation: &str,
        object: Option<Uuid>,
        kind: &str,
        now: Timestamp,
    ) -> Result<SimOperation, StoreError> {
        engine::sim_begin(&self.pool, operation, object, kind, now).await
    }

    async fn sim_finish(
        &self,
        operation: &str,
        ok: bool,
        message: &str,
        change: Option<ReplicaChange>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        engine::sim_finish(&self.pool, operation, ok, message, change, now).await
    }

    async fn sim_replica_state(&self, object: Uuid) -> Result<Option<String>, StoreError> {
        engine::sim_replica_state(&self.pool, object).await
    }

    async fn sim_faults(&self, target: Uuid) -> Result<Vec<String>, StoreError> {
        engine::sim_faults(&self.pool, target).await
    }

    async fn set_sim_fault(&self, target: Uuid, fault: &str, on: bool) -> Result<(), StoreError> {
        engine::set_sim_fault(&self.pool, target, fault, on).await
    }

    async fn sim_executions(&self) -> Result<std::collections::BTreeMap<String, i64>, StoreError> {
        engine::sim_executions(&self.pool).await
    }
}

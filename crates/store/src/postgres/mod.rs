//! The PostgreSQL store, for several `standby serve` nodes on one database. It runs the same SQL
//! modules as SQLite (`../sql/`); what differs is here: row locks where several nodes race
//! (claiming a job, numbering a session's log lines, seeding an empty database) and migrations
//! under sqlx's advisory lock, so nodes that start together migrate once.

#[path = "../sql/agents.rs"]
mod agents;
#[path = "../sql/auth.rs"]
mod auth;
#[path = "../sql/commit.rs"]
mod commit;
#[path = "../sql/drills.rs"]
mod drills;
#[path = "../sql/engine.rs"]
mod engine;
#[path = "../sql/idempotency.rs"]
mod idempotency;
#[path = "../sql/import.rs"]
mod import;
#[path = "../sql/notifications.rs"]
mod notifications;
#[path = "../sql/plans.rs"]
mod plans;
#[path = "../sql/reports.rs"]
mod reports;
#[path = "../sql/sim.rs"]
mod sim;
#[path = "../sql/store.rs"]
mod store;
#[path = "../sql/tables.rs"]
mod tables;

use std::sync::Arc;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use standby_query::sql::{Dialect, PostgresDialect};

use crate::StoreError;
use crate::freshness::{ChangeSource, Freshness, Observed, WATCH_INTERVAL, parse_notification};

/// The channel the change triggers notify on.
const CHANGES_CHANNEL: &str = "standby_changes";

type Db = sqlx::Postgres;
type Pool = sqlx::Pool<Db>;
type DbRow = sqlx::postgres::PgRow;
type DbArguments = sqlx::postgres::PgArguments;
type BackendStore = PgStore;

const DIALECT: &dyn Dialect = &PostgresDialect;
/// Each node's workers take a different ready job; none waits on another's claim.
const CLAIM_LOCK: &str = " FOR UPDATE SKIP LOCKED";
/// Serializes the VM steps of one session while they number its log lines.
const LOCK_SESSION: Option<&str> = Some("SELECT 1 FROM sessions WHERE uid = $1 FOR UPDATE");
/// One seeding transaction at a time (an arbitrary, fixed advisory-lock key: "standby" + 1).
const SEED_LOCK: Option<&str> = Some("SELECT pg_advisory_xact_lock(7310585173620491521)");
/// `store copy` reads the source as one consistent snapshot while other nodes may write.
const SNAPSHOT: Option<&str> = Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
/// Other nodes may hold leases: a job is taken over only when its lease runs out.
/// The server groups concurrent commits itself; writes commit on their own connections.
const GROUP_COMMIT: bool = false;
/// A row as one JSON array, as text (see `plans::fetch_plans`).
const JSON_ARRAY: (&str, &str) = ("json_build_array(", ")::text");
/// Statistics for the planner after a bulk import.
const ANALYZE: Option<&str> = Some("ANALYZE");
const SINGLE_NODE: bool = false;

static MIGRATOR: &std::sync::LazyLock<sqlx::migrate::Migrator> =
    &crate::migrations::POSTGRES_MIGRATOR;

/// Connections per node unless the URL says otherwise (`?max_connections=N` is not a libpq
/// option, so it is read and removed here).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The same pool: PostgreSQL runs concurrent writers itself.
    writer: PgPool,
    /// The engine's writes (on PostgreSQL each commits on its own connection).
    committer: commit::Committer,
    freshness: Arc<Freshness>,
    /// Wakes the agent connector's waits and the agents' long polls in this process.
    agent_changes: Arc<tokio::sync::Notify>,
}

/// Other nodes' writes, as the tables' triggers announce them at commit (`NOTIFY
/// standby_changes`, payload `<table> <node>[ <session>]`, migration 0010). This node's own are
/// skipped: they advanced their topics when they committed.
struct TableNotifications {
    listener: Option<PgListener>,
    pool: PgPool,
    node: String,
}

impl TableNotifications {
    async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANGES_CHANNEL).await?;
        Ok(listener)
    }
}

impl ChangeSource for TableNotifications {
    async fn next(&mut self) -> Observed {
        let Some(listener) = self.listener.as_mut() else {
            // Reconnect after a pause; what was sent meanwhile is lost, so anything may have
            // changed.
            tokio::time::sleep(WATCH_INTERVAL).await;
            self.listener = Self::listen(&self.pool).await.ok();
            return Observed::Everything;
        };
        match listener.try_recv().await {
            Ok(Some(notification)) => parse_notification(notification.payload(), &self.node),
            // The connection was lost (the listener reconnects on the next call).
            Ok(None) => Observed::Everything,
            Err(error) => {
                tracing::warn!(%error, "the change notifications' connection failed");
                self.listener = None;
                Observed::Everything
            }
        }
    }

    async fn close(self) {
        if let Some(mut listener) = self.listener {
            let _ = listener.unlisten_all().await;
        }
    }
}

impl PgStore {
    /// Connects to `postgres://...` and applies pending migrations (under an advisory lock).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let (url, max_connections) = split_pool_size(url)?;
        // Nodes starting together wait on each other's migration and seeding locks for a
        // moment; only a statement slower than this is worth a warning.
        // Names this node's connections, so that the change triggers' notifications say whose
        // write they announce.
        let node = format!("standby-{}", uuid::Uuid::new_v4().simple());
        let options: PgConnectOptions = url
            .parse::<PgConnectOptions>()?
            .application_name(&node)
            .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(5));
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        let freshness = Arc::new(Freshness::default());
        freshness.watch(TableNotifications {
            listener: Some(TableNotifications::listen(&pool).await?),
            pool: pool.clone(),
            node,
        });
        Ok(PgStore {
            writer: pool.clone(),
            committer: commit::Committer::new(pool.clone(), GROUP_COMMIT),
            pool,
            freshness,
            agent_changes: Arc::default(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Takes Standby's own `max_connections=N` query parameter out of a PostgreSQL URL.
fn split_pool_size(url: &str) -> Result<(String, u32), StoreError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), DEFAULT_MAX_CONNECTIONS));
    };
    let mut size = DEFAULT_MAX_CONNECTIONS;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.strip_prefix("max_connections=") {
            Some(value) => {
                size = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        StoreError::Config(format!(
                            "max_connections must be a number from 1 to 1000, not '{value}'"
                        ))
                    })?;
            }
            None => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_size_is_taken_out_of_the_url() {
        assert_eq!(
            split_pool_size("postgres://u@h/db").unwrap(),
            ("postgres://u@h/db".into(), DEFAULT_MAX_CONNECTIONS)
        );
        assert_eq!(
            split_pool_size("postgres://u@h/db?max_connections=4&sslmode=disable").unwrap(),
            ("postgres://u@h/db?sslmode=disable".into(), 4)
        );
        assert!(split_pool_size("postgres://u@h/db?max_connections=0").is_err());
        assert!(split_pool_size("postgres://u@h/db?max_connections=x").is_err());
    }
}

/// A throwaway database named `{prefix}_{random}` on the server of an admin URL (whose role needs
/// CREATEDB): one per test or benchmark run, dropped again when the value is dropped, so that a
/// suite of hundreds of tests does not fill the server's disk.
pub struct ScratchDatabase {
    /// The URL of the new database (the admin URL's server, role and options).
    pub url: String,
    admin_url: String,
    name: String,
}

impl ScratchDatabase {
    pub async fn create(admin_url: &str, prefix: &str) -> Result<ScratchDatabase, StoreError> {
        use sqlx::Connection;
        let (base, _) = split_pool_size(admin_url)?;
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(StoreError::Config(format!(
                "database name prefix '{prefix}' must be letters, digits and '_'"
            )));
        }
        let mut connection = sqlx::PgConnection::connect(&base).await?;
        // A name cannot be bound; it is checked above to be a plain identifier.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut connection)
            .await?;
        connection.close().await?;
        Ok(ScratchDatabase {
            url: with_database(admin_url, &name),
            admin_url: base,
            name,
        })
    }

    async fn drop_now(admin_url: &str, name: &str) -> Result<(), StoreError> {
        use sqlx::Connection;
        let mut connection = sqlx::PgConnection::connect(admin_url).await?;
        // FORCE: a pool or a killed server's sessions may still be connected.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut connection)
        .await?;
        connection.close().await?;
        Ok(())
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), std::mem::take(&mut self.name));
        // Drop may run inside a runtime, which cannot block on another future: a thread of its
        // own with a small runtime does the one statement.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime
                .block_on(Self::drop_now(&admin_url, &name))
                .map_err(|error| error.to_string())
        })
        .join();
        if let Ok(Err(error)) = dropped {
            tracing::warn!(%error, "could not drop a scratch database");
        }
    }
}

/// The same URL naming another database.
fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (before_query, query) = match rest.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (rest, None),
    };
    let authority = before_query.split('/').next().unwrap_or_default();
    let mut out = format!("{scheme}://{authority}/{database}");
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod url_tests {
    #[test]
    fn another_database_on_the_same_server() {
        assert_eq!(
            super::with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(
            super::with_database("postgres://u@h", "t2"),
            "postgres://u@h/t2"
        );
    }
}

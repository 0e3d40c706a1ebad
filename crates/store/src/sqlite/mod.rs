//! The SQLite store: one file in the data directory, WAL, foreign keys, migrations applied at
//! open. The SQL itself lives in `../sql/`, shared with PostgreSQL: each backend compiles those
//! modules against its own `Db` type, so there is one copy of every query and no generic bounds.

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

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use standby_query::sql::{Dialect, SqliteDialect};

use crate::StoreError;
use crate::freshness::{ChangeSource, Freshness, Observed, WATCH_INTERVAL};

type Db = sqlx::Sqlite;
type Pool = sqlx::Pool<Db>;
type DbRow = sqlx::sqlite::SqliteRow;
type DbArguments = sqlx::sqlite::SqliteArguments;
type BackendStore = SqliteStore;

const DIALECT: &dyn Dialect = &SqliteDialect;
/// SQLite runs one writer at a time, so claiming a job needs no row lock (and has no syntax for one).
const CLAIM_LOCK: &str = "";
/// Nothing to lock either before numbering a session's log lines: writers are serialized.
const LOCK_SESSION: Option<&str> = None;
/// Nothing to lock while seeding an empty store.
const SEED_LOCK: Option<&str> = None;
/// A read transaction is already a snapshot on SQLite (WAL).
const SNAPSHOT: Option<&str> = None;
/// Only this process uses the file: jobs still leased at start-up were held by a dead process.
/// One writer, one fsync per commit: the engine's writes are committed in groups.
const GROUP_COMMIT: bool = true;
/// Reading connections (each a thread of sqlx's driver). 4 was slower than 8 on the large fleet's
/// uncached plan list (3,200 to 3,500 against 4,000 to 4,400 req/s): a query that waits for a
/// page from disk holds its thread.
const READERS: u32 = 8;
/// A row as one JSON array (see `plans::fetch_plans`).
const JSON_ARRAY: (&str, &str) = ("json_array(", ")");
/// The queries were tuned on SQLite's planner without `sqlite_stat1`; `ANALYZE` would change
/// their plans, unmeasured.
const ANALYZE: Option<&str> = None;
const SINGLE_NODE: bool = true;

static MIGRATOR: &std::sync::LazyLock<sqlx::migrate::Migrator> =
    &crate::migrations::SQLITE_MIGRATOR;

/// The file name of the database inside the data directory.
pub const DATABASE_FILE: &str = "standby.db";

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The one connection that writes.
    writer: SqlitePool,
    /// The engine's writes, committed in groups on `writer`.
    committer: commit::Committer,
    freshness: Arc<Freshness>,
    /// Wakes the agent connector's waits and the agents' long polls in this process.
    agent_changes: Arc<tokio::sync::Notify>,
}

/// Commits by other processes (an admin command on the file): `PRAGMA data_version` moves when a
/// connection other than the one asking commits, so asked on the writer's own connection (this
/// process's only writer) it moves for exactly those, and this process's writes, which advance
/// their topics as they commit, do not drop every cached read a second time.
struct ForeignCommits {
    writer: SqlitePool,
    last: Option<i64>,
}

impl ChangeSource for ForeignCommits {
    async fn next(&mut self) -> Observed {
        tokio::time::sleep(WATCH_INTERVAL).await;
        let seen = sqlx::query_scalar::<_, i64>("PRAGMA data_version")
            .fetch_one(&self.writer)
            .await
            .ok();
        // The first read, a failed one, or a new writer connection (its own numbering): anything
        // may have changed.
        let observed = if seen.is_some() && seen == self.last {
            Observed::Nothing
        } else {
            Observed::Everything
        };
        self.last = seen;
        observed
    }

    /// The pool is the store's: it closes with the store.
    async fn close(self) {}
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
            .max_connections(READERS)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&pool).await?;
        // Every write goes through one connection: SQLite has one writer at a time anyway, and
        // writers queued on the pool wait for exactly as long as needed, where writers racing
        // on several connections would back off in SQLite's busy handler (sleeps of up to
        // 100 ms) and could fail a read-then-write transaction with SQLITE_BUSY_SNAPSHOT.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            // Kept for the store's life: `data_version` is numbered per connection.
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await?;
        let freshness = Arc::new(Freshness::default());
        freshness.watch(ForeignCommits {
            writer: writer.clone(),
            last: None,
        });
        Ok(SqliteStore {
            pool,
            committer: commit::Committer::new(writer.clone(), GROUP_COMMIT),
            writer,
            freshness,
            agent_changes: Arc::default(),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Group commit's two promises, on a real SQLite file: a write that fails rolls back only its own
/// savepoint, and every caller is answered with the batch's commit, so nothing is acknowledged
/// that is not on disk.
#[cfg(test)]
mod group_commit_tests {
    use sqlx::Connection;

    use super::commit::Committer;
    use super::*;

    async fn file_pools(dir: &Path) -> (Pool, Pool) {
        let options = SqliteConnectOptions::new()
            .filename(dir.join("commit.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .unwrap();
        sqlx::raw_sql(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY);
             CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent (id));
             CREATE TABLE log (id INTEGER PRIMARY KEY);",
        )
        .execute(&writer)
        .await
        .unwrap();
        // Reads on connections of their own see only what was committed.
        let reader = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        (writer, reader)
    }

    /// A write as the store's write functions are: its own transaction (a savepoint in a batch).
    async fn insert_log(committer: &Committer, id: i64, then_fail: bool) -> Result<(), StoreError> {
        committer
            .run(move |connection| {
                Box::pin(async move {
                    let mut tx = connection.begin().await?;
                    sqlx::query("INSERT INTO log (id) VALUES ($1)")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    if then_fail {
                        sqlx::query("INSERT INTO no_such_table VALUES (1)")
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(())
                })
            })
            .await
    }

    /// A child row whose parent does not exist, its foreign key checked only at COMMIT.
    async fn insert_dangling_child(committer: &Committer) -> Result<(), StoreError> {
        committer
            .run(move |connection| {
                Box::pin(async move {
                    let mut tx = connection.begin().await?;
                    sqlx::query("PRAGMA defer_foreign_keys = ON")
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("INSERT INTO child (id, parent) VALUES (1, 99)")
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                })
            })
            .await
    }

    async fn logged(reader: &Pool) -> Vec<i64> {
        sqlx::query_scalar("SELECT id FROM log ORDER BY id")
            .fetch_all(reader)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_write_rolls_back_alone_in_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, reader) = file_pools(dir.path()).await;
        let committer = Committer::new(writer, true);
        // Joined on one thread: all three are queued before the writer task runs, one batch.
        let (first, failing, last) = tokio::join!(
            insert_log(&committer, 1, false),
            insert_log(&committer, 2, true),
            insert_log(&committer, 3, false),
        );
        assert!(first.is_ok() && last.is_ok(), "{first:?} {last:?}");
        assert!(
            matches!(failing, Err(StoreError::Database(_))),
            "{failing:?}"
        );
        assert_eq!(
            logged(&reader).await,
            [1, 3],
            "the failed write's row is gone"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_commit_fails_every_write_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, reader) = file_pools(dir.path()).await;
        let committer = Committer::new(writer, true);
        // The second write breaks a foreign key checked only at COMMIT: the whole batch fails.
        let (logged_write, dangling_write) = tokio::join!(
            insert_log(&committer, 10, false),
            insert_dangling_child(&committer)
        );
        assert!(
            matches!(logged_write, Err(StoreError::Commit(_))),
            "a write whose batch did not commit is not acknowledged: {logged_write:?}"
        );
        assert!(
            matches!(dangling_write, Err(StoreError::Commit(_))),
            "{dangling_write:?}"
        );
        assert_eq!(logged(&reader).await, Vec::<i64>::new());
        // The writer goes on with the next batch.
        insert_log(&committer, 11, false).await.unwrap();
        assert_eq!(logged(&reader).await, [11]);
    }
}

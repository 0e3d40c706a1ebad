//! The ledger: every operation this host was given, and every replica it changed, in SQLite
//! (`ledger.db`, WAL, `synchronous=FULL`). An operation's row is committed before its work
//! starts, so after a crash the agent knows what it began and never begins it twice.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use standby_fleet::agent::{Command, CommandAction, OperationResult, Outcome, ReplicaReport};
use standby_model::Timestamp;
use uuid::Uuid;

use crate::AgentError;
use crate::driver::{Finished, ReplicaEffect};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS operations (
    operation_id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    command TEXT,
    plan_name TEXT NOT NULL,
    plan_uid TEXT NOT NULL,
    session_uid TEXT NOT NULL,
    vm_name TEXT,
    state TEXT NOT NULL,
    executions INTEGER NOT NULL DEFAULT 0,
    detail TEXT NOT NULL DEFAULT '',
    replica TEXT,
    received_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    reported INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS operations_unreported ON operations (reported, finished_at);
CREATE TABLE IF NOT EXISTS replicas (
    vm_uid TEXT PRIMARY KEY,
    running INTEGER NOT NULL,
    test INTEGER NOT NULL,
    version INTEGER NOT NULL,
    operation_id TEXT
);
";

/// An operation's state in the ledger: `queued` (written, work not begun), `running` (work
/// begun), or its final outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Running => "running",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
            State::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Option<State> {
        [
            State::Queued,
            State::Running,
            State::Succeeded,
            State::Failed,
            State::Cancelled,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }

    pub fn is_final(self) -> bool {
        !matches!(self, State::Queued | State::Running)
    }

    fn of(outcome: Outcome) -> State {
        match outcome {
            Outcome::Running => State::Running,
            Outcome::Succeeded => State::Succeeded,
            Outcome::Failed => State::Failed,
            Outcome::Cancelled => State::Cancelled,
        }
    }

    fn outcome(self) -> Outcome {
        match self {
            State::Queued | State::Running => Outcome::Running,
            State::Succeeded => Outcome::Succeeded,
            State::Failed => Outcome::Failed,
            State::Cancelled => Outcome::Cancelled,
        }
    }
}

/// One operation as `standby agent operations` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    pub operation_id: String,
    /// `failover`, `undo`, `script`, `cancel`, or `unknown` (cancelled before it arrived).
    pub action: String,
    pub vm: Option<String>,
    pub plan: String,
    pub session_uid: String,
    /// How many times the work was started: 1 for every operation that ran.
    pub executions: u32,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub outcome: String,
    pub detail: String,
    pub received_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// The control plane acknowledged the final result.
    pub reported: bool,
}

/// What the agent needs of a stored operation to carry on with it.
#[derive(Debug, Clone)]
pub struct StoredOperation {
    pub operation_id: String,
    pub state: State,
    pub executions: u32,
    pub started_at: Option<Timestamp>,
    /// `None` for a placeholder of an operation cancelled before it arrived.
    pub command: Option<Command>,
}

#[derive(Clone)]
pub struct Ledger {
    pool: SqlitePool,
}

fn failed(context: &str) -> impl FnOnce(sqlx::Error) -> AgentError + '_ {
    move |error| AgentError::Ledger(format!("{context}: {error}"))
}

pub fn action_name(action: &CommandAction) -> &'static str {
    match action {
        CommandAction::FailOver { .. } => "failover",
        CommandAction::Undo { .. } => "undo",
        CommandAction::Script { .. } => "script",
        CommandAction::Cancel { .. } => "cancel",
    }
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `path`.
    pub async fn open(path: &Path) -> Result<Ledger, AgentError> {
        Ledger::connect(path, true).await
    }

    /// Opens a ledger that must exist already.
    pub async fn open_existing(path: &Path) -> Result<Ledger, AgentError> {
        Ledger::connect(path, false).await
    }

    async fn connect(path: &Path, create: bool) -> Result<Ledger, AgentError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an operation marked running survives a power cut, not only a kill.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        // One connection: the agent's writes are few, and one writer never meets SQLITE_BUSY.
        // No idle timeout or lifetime: the connection lives as long as the ledger, and sqlx's
        // pool maintenance task (which they start) can spin without yielding when the pool is
        // closed under it, which hung `standby agent operations` at exit.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|error| AgentError::Ledger(format!("{}: {error}", path.display())))?;
        sqlx::raw_sql(SCHEMA)
            .execute(&pool)
            .await
            .map_err(|error| {
                AgentError::Ledger(format!("{}: creating tables: {error}", path.display()))
            })?;
        Ok(Ledger { pool })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn lookup(&self, operation_id: &str) -> Result<Option<StoredOperation>, AgentError> {
        let row = sqlx::query(
            "SELECT operation_id, state, executions, started_at, command FROM operations
             WHERE operation_id = ?",
        )
        .bind(operation_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("reading an operation"))?;
        row.map(|row| stored(&row)).transpose()
    }

    /// Every operation not finished: queued or running when the agent last stopped.
    pub async fn unfinished(&self) -> Result<Vec<StoredOperation>, AgentError> {
        let rows = sqlx::query(
            "SELECT operation_id, state, executions, started_at, command FROM operations
             WHERE state IN ('queued', 'running') ORDER BY received_at, operation_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(failed("reading unfinished operations"))?;
        rows.iter().map(stored).collect()
    }

    /// Writes a command as received, `queued`. `false`: the operation is in the ledger already.
    pub async fn insert_queued(
        &self,
        command: &Command,
        now: Timestamp,
    ) -> Result<bool, AgentError> {
        let text = serde_json::to_string(command)
            .map_err(|error| AgentError::Ledger(format!("writing a command as JSON: {error}")))?;
        let done = sqlx::query(
            "INSERT INTO operations
                 (operation_id, action, command, plan_name, plan_uid, session_uid, vm_name,
                  state, received_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?)
             ON CONFLICT (operation_id) DO NOTHING",
        )
        .bind(&command.operation_id)
        .bind(action_name(&command.action))
        .bind(text)
        .bind(&command.plan_name)
        .bind(command.plan_uid.to_string())
        .bind(command.session_uid.to_string())
        .bind(&command.vm_name)
        .bind(now.ticks())
        .execute(&self.pool)
        .await
        .map_err(failed("writing an operation"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks a queued operation running: the one write before its work starts, counting the
    /// start. `None` when it is not queued (cancelled, or started already): do not start it.
    pub async fn start(
        &self,
        operation_id: &str,
        now: Timestamp,
    ) -> Result<Option<u32>, AgentError> {
        let row = sqlx::query(
            "UPDATE operations SET state = 'running', executions = executions + 1, started_at = ?
             WHERE operation_id = ? AND state = 'queued'
             RETURNING executions",
        )
        .bind(now.ticks())
        .bind(operation_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("marking an operation running"))?;
        row.map(|row| row.try_get::<i64, _>(0).map(clamp_u32))
            .transpose()
            .map_err(failed("marking an operation running"))
    }

    /// Ends an operation: its outcome, and the replica change it made, in one transaction (a
    /// crash leaves both or neither). Returns the replica after, for the result; `Ok(None)`
    /// as the second part when the operation had finished already.
    pub async fn finish(
        &self,
        operation_id: &str,
        vm_uid: Option<Uuid>,
        finished: &Finished,
        now: Timestamp,
    ) -> Result<(bool, Option<ReplicaReport>), AgentError> {
        self.finish_from(operation_id, vm_uid, finished, now, false)
            .await
    }

    /// Ends an operation only if its work has not started: `false` when it has (or ended).
    pub async fn finish_queued(
        &self,
        operation_id: &str,
        vm_uid: Option<Uuid>,
        finished: &Finished,
        now: Timestamp,
    ) -> Result<bool, AgentError> {
        Ok(self
            .finish_from(operation_id, vm_uid, finished, now, true)
            .await?
            .0)
    }

    async fn finish_from(
        &self,
        operation_id: &str,
        vm_uid: Option<Uuid>,
        finished: &Finished,
        now: Timestamp,
        only_queued: bool,
    ) -> Result<(bool, Option<ReplicaReport>), AgentError> {
        let context = "finishing an operation";
        let mut tx = self.pool.begin().await.map_err(failed(context))?;
        let replica = match (vm_uid, finished.replica) {
            (Some(vm_uid), ReplicaEffect::Set { running, test }) => {
                let current = replica_in(&mut tx, vm_uid).await?;
                if current.running != running || current.test != test || current.version == 0 {
                    sqlx::query(
                        "INSERT INTO replicas (vm_uid, running, test, version, operation_id)
                         VALUES (?, ?, ?, ?, ?)
                         ON CONFLICT (vm_uid) DO UPDATE SET running = excluded.running,
                             test = excluded.test, version = excluded.version,
                             operation_id = excluded.operation_id",
                    )
                    .bind(vm_uid.to_string())
                    .bind(running)
                    .bind(test)
                    .bind(current.version + 1)
                    .bind(operation_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed(context))?;
                }
                Some(replica_in(&mut tx, vm_uid).await?)
            }
            (Some(vm_uid), ReplicaEffect::Unchanged) => Some(replica_in(&mut tx, vm_uid).await?),
            _ => None,
        };
        let replica_json = match &replica {
            Some(report) => Some(
                serde_json::to_string(report)
                    .map_err(|error| AgentError::Ledger(format!("{context}: {error}")))?,
            ),
            None => None,
        };
        let done = sqlx::query(
            "UPDATE operations SET state = ?, detail = ?, replica = ?, finished_at = ?, reported = 0
             WHERE operation_id = ? AND (state = 'queued' OR (state = 'running' AND NOT ?))",
        )
        .bind(State::of(finished.outcome).as_str())
        .bind(&finished.detail)
        .bind(replica_json)
        .bind(now.ticks())
        .bind(operation_id)
        .bind(only_queued)
        .execute(&mut *tx)
        .await
        .map_err(failed(context))?;
        if done.rows_affected() != 1 {
            // Finished already: the replica must not change either.
            tx.rollback().await.map_err(failed(context))?;
            return Ok((false, None));
        }
        tx.commit().await.map_err(failed(context))?;
        Ok((true, replica))
    }

    /// Records an operation that was cancelled before it arrived, so that its later delivery
    /// is not executed. `false`: it is in the ledger already.
    pub async fn cancel_unseen(
        &self,
        operation_id: &str,
        cancel: &Command,
        detail: &str,
        now: Timestamp,
    ) -> Result<bool, AgentError> {
        let done = sqlx::query(
            "INSERT INTO operations
                 (operation_id, action, command, plan_name, plan_uid, session_uid, vm_name,
                  state, detail, received_at, finished_at)
             VALUES (?, 'unknown', NULL, ?, ?, ?, NULL, 'cancelled', ?, ?, ?)
             ON CONFLICT (operation_id) DO NOTHING",
        )
        .bind(operation_id)
        .bind(&cancel.plan_name)
        .bind(cancel.plan_uid.to_string())
        .bind(cancel.session_uid.to_string())
        .bind(detail)
        .bind(now.ticks())
        .bind(now.ticks())
        .execute(&self.pool)
        .await
        .map_err(failed("recording a cancelled operation"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a command this agent cannot read as failed, so that its failure is reported.
    pub async fn record_unreadable(
        &self,
        operation_id: &str,
        command: &serde_json::Value,
        detail: &str,
        now: Timestamp,
    ) -> Result<(), AgentError> {
        let field = |name: &str| {
            command
                .get(name)
                .and_then(|value| value.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        sqlx::query(
            "INSERT INTO operations
                 (operation_id, action, command, plan_name, plan_uid, session_uid, vm_name,
                  state, detail, received_at, finished_at)
             VALUES (?, 'unreadable', NULL, ?, ?, ?, ?, 'failed', ?, ?, ?)
             ON CONFLICT (operation_id) DO NOTHING",
        )
        .bind(operation_id)
        .bind(field("planName"))
        .bind(field("planUid"))
        .bind(field("sessionUid"))
        .bind(command.get("vmName").and_then(|value| value.as_str()))
        .bind(detail)
        .bind(now.ticks())
        .bind(now.ticks())
        .execute(&self.pool)
        .await
        .map_err(failed("recording an unreadable command"))?;
        Ok(())
    }

    /// Has a finished operation's result sent again (it may have been lost).
    pub async fn rereport(&self, operation_id: &str) -> Result<(), AgentError> {
        sqlx::query(
            "UPDATE operations SET reported = 0 WHERE operation_id = ? AND finished_at IS NOT NULL",
        )
        .bind(operation_id)
        .execute(&self.pool)
        .await
        .map_err(failed("queueing a result again"))?;
        Ok(())
    }

    /// Final results the control plane has not acknowledged, oldest first.
    pub async fn unreported(&self, limit: u32) -> Result<Vec<OperationResult>, AgentError> {
        let context = "reading unreported results";
        let rows = sqlx::query(
            "SELECT operation_id, state, detail, replica FROM operations
             WHERE reported = 0 AND finished_at IS NOT NULL
             ORDER BY finished_at, operation_id LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(failed(context))?;
        let mut results = Vec::with_capacity(rows.len());
        for row in rows {
            let operation_id: String = row.try_get(0).map_err(failed(context))?;
            let state = parse_state(&row.try_get::<String, _>(1).map_err(failed(context))?)?;
            let replica = match row
                .try_get::<Option<String>, _>(3)
                .map_err(failed(context))?
            {
                Some(text) => Some(serde_json::from_str(&text).map_err(|error| {
                    AgentError::Ledger(format!("{context}: {operation_id}'s replica: {error}"))
                })?),
                None => None,
            };
            results.push(OperationResult {
                outcome: state.outcome(),
                detail: row.try_get(2).map_err(failed(context))?,
                replica,
                operation_id,
            });
        }
        Ok(results)
    }

    pub async fn mark_reported(&self, operation_ids: &[String]) -> Result<(), AgentError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(failed("marking results reported"))?;
        for operation_id in operation_ids {
            sqlx::query("UPDATE operations SET reported = 1 WHERE operation_id = ?")
                .bind(operation_id)
                .execute(&mut *tx)
                .await
                .map_err(failed("marking results reported"))?;
        }
        tx.commit()
            .await
            .map_err(failed("marking results reported"))?;
        Ok(())
    }

    /// A VM's replica; off at version 0 when the agent never touched it.
    pub async fn replica(&self, vm_uid: Uuid) -> Result<ReplicaReport, AgentError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(failed("reading a replica"))?;
        replica_in(&mut conn, vm_uid).await
    }

    pub async fn replicas(&self) -> Result<Vec<ReplicaReport>, AgentError> {
        let rows =
            sqlx::query("SELECT vm_uid, running, test, version FROM replicas ORDER BY vm_uid")
                .fetch_all(&self.pool)
                .await
                .map_err(failed("reading replicas"))?;
        rows.iter().map(replica_of).collect()
    }

    /// The operations that left a replica running (the last failover of each running VM).
    pub async fn running_replica_operations(&self) -> Result<Vec<String>, AgentError> {
        let rows = sqlx::query(
            "SELECT operation_id FROM replicas WHERE running = 1 AND operation_id IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(failed("reading replicas"))?;
        rows.iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<_, _>>()
            .map_err(failed("reading replicas"))
    }

    pub async fn entries(&self) -> Result<Vec<LedgerEntry>, AgentError> {
        let context = "reading operations";
        let rows = sqlx::query(
            "SELECT operation_id, action, vm_name, plan_name, session_uid, executions, state,
                    detail, received_at, started_at, finished_at, reported
             FROM operations ORDER BY received_at DESC, operation_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(failed(context))?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            let get_time = |index: usize| -> Result<Option<Timestamp>, AgentError> {
                Ok(row
                    .try_get::<Option<i64>, _>(index)
                    .map_err(failed(context))?
                    .map(Timestamp::from_ticks))
            };
            entries.push(LedgerEntry {
                operation_id: row.try_get(0).map_err(failed(context))?,
                action: row.try_get(1).map_err(failed(context))?,
                vm: row.try_get(2).map_err(failed(context))?,
                plan: row.try_get(3).map_err(failed(context))?,
                session_uid: row.try_get(4).map_err(failed(context))?,
                executions: clamp_u32(row.try_get(5).map_err(failed(context))?),
                outcome: row.try_get(6).map_err(failed(context))?,
                detail: row.try_get(7).map_err(failed(context))?,
                received_at: Timestamp::from_ticks(row.try_get(8).map_err(failed(context))?),
                started_at: get_time(9)?,
                finished_at: get_time(10)?,
                reported: row.try_get(11).map_err(failed(context))?,
            });
        }
        Ok(entries)
    }
}

fn clamp_u32(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

fn parse_state(text: &str) -> Result<State, AgentError> {
    State::parse(text)
        .ok_or_else(|| AgentError::Ledger(format!("unknown operation state '{text}'")))
}

fn stored(row: &SqliteRow) -> Result<StoredOperation, AgentError> {
    let context = "reading an operation";
    let operation_id: String = row.try_get(0).map_err(failed(context))?;
    let command = match row
        .try_get::<Option<String>, _>(4)
        .map_err(failed(context))?
    {
        Some(text) => Some(serde_json::from_str::<Command>(&text).map_err(|error| {
            AgentError::Ledger(format!("{context}: {operation_id}'s command: {error}"))
        })?),
        None => None,
    };
    Ok(StoredOperation {
        state: parse_state(&row.try_get::<String, _>(1).map_err(failed(context))?)?,
        executions: clamp_u32(row.try_get(2).map_err(failed(context))?),
        started_at: row
            .try_get::<Option<i64>, _>(3)
            .map_err(failed(context))?
            .map(Timestamp::from_ticks),
        command,
        operation_id,
    })
}

fn replica_of(row: &SqliteRow) -> Result<ReplicaReport, AgentError> {
    let context = "reading a replica";
    let uid: String = row.try_get(0).map_err(failed(context))?;
    Ok(ReplicaReport {
        vm_uid: Uuid::parse_str(&uid)
            .map_err(|error| AgentError::Ledger(format!("{context}: '{uid}': {error}")))?,
        running: row.try_get(1).map_err(failed(context))?,
        test: row.try_get(2).map_err(failed(context))?,
        version: row.try_get(3).map_err(failed(context))?,
    })
}

async fn replica_in(
    conn: &mut sqlx::SqliteConnection,
    vm_uid: Uuid,
) -> Result<ReplicaReport, AgentError> {
    let row = sqlx::query("SELECT vm_uid, running, test, version FROM replicas WHERE vm_uid = ?")
        .bind(vm_uid.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(failed("reading a replica"))?;
    match row {
        Some(row) => replica_of(&row),
        None => Ok(ReplicaReport {
            vm_uid,
            running: false,
            test: false,
            version: 0,
        }),
    }
}

/// The table `standby agent operations` prints.
pub fn render(entries: &[LedgerEntry]) -> String {
    if entries.is_empty() {
        return "No operations in the ledger.\n".to_owned();
    }
    let headers = [
        "OPERATION",
        "ACTION",
        "VM",
        "EXECUTIONS",
        "OUTCOME",
        "FINISHED AT",
    ];
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|entry| {
            [
                entry.operation_id.clone(),
                entry.action.clone(),
                entry.vm.clone().unwrap_or_else(|| "-".to_owned()),
                entry.executions.to_string(),
                if entry.outcome != "running" && entry.outcome != "queued" && !entry.reported {
                    format!("{} (unreported)", entry.outcome)
                } else {
                    entry.outcome.clone()
                },
                entry
                    .finished_at
                    .map(|at| at.to_wire())
                    .unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&headers);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

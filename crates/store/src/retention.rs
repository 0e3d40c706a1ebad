//! How long records that only grow are kept: what a busy installation writes on every run
//! (finished jobs, the connectors' ledgers, consumed idempotency keys, expired tokens and actions,
//! login attempts, delivered notifications) and the audit trail. A background pass on every node
//! deletes what is past its retention, a bounded batch per table and pass, so one pass never
//! holds SQLite's writer for long; the run history (sessions and their logs) is kept.

use std::time::Duration;

/// Retentions, each settable (`standby serve --*-retention-seconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// A finished job (its session and action keep the outcome).
    pub done_jobs: Duration,
    /// A finished operation in the sim connector's ledger, and an answered agent command. Long
    /// past the session that submitted it: an operation is resubmitted only while its session
    /// runs.
    pub ledger: Duration,
    /// An audit row.
    pub audit: Duration,
    /// A fanned-out notification event and a finished delivery, for their log.
    pub notifications: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        Retention {
            done_jobs: Duration::from_secs(DAY),
            ledger: Duration::from_secs(7 * DAY),
            audit: Duration::from_secs(400 * DAY),
            notifications: Duration::from_secs(30 * DAY),
        }
    }
}

/// Rows deleted per table and pass: a pass that finds more leaves the rest to the next one.
pub const PURGE_BATCH: u32 = 5_000;

/// What one pass deleted, by table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    pub by_table: Vec<(&'static str, u64)>,
}

impl Purged {
    pub fn total(&self) -> u64 {
        self.by_table.iter().map(|(_, rows)| rows).sum()
    }

    /// Whether some table had more past its retention than one batch (the next pass goes on).
    pub fn more_left(&self) -> bool {
        self.by_table
            .iter()
            .any(|(_, rows)| *rows >= u64::from(PURGE_BATCH))
    }
}

/// Tables whose size the purge keeps bounded, and the run history beside them, counted for the
/// `standby_store_rows` gauge.
pub const WATCHED_TABLES: &[&str] = &[
    "jobs",
    "idempotency",
    "sim_operations",
    "agent_commands",
    "audit",
    "tokens",
    "async_actions",
    "login_attempts",
    "notification_events",
    "notification_deliveries",
    "sessions",
];

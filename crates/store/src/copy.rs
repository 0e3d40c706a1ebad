//! `standby store copy`: moves a whole installation between stores (SQLite to PostgreSQL and
//! back). The source is read in one snapshot, the destination written in one transaction, and
//! every table is verified afterwards by its row count and a SHA-256 over its rows in key order.

use sha2::{Digest, Sha256};

use crate::{Location, PgStore, SqliteStore, StoreError};

/// How a column's values are read and written on both backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Int,
    /// INTEGER 0/1 on SQLite, BOOLEAN on PostgreSQL.
    Bool,
    Bytes,
}

/// One table of the schema: its columns in order and its primary key (the copy order).
#[derive(Debug)]
pub struct TableSpec {
    pub name: &'static str,
    pub key: &'static [&'static str],
    pub columns: &'static [(&'static str, ColumnType)],
}

impl TableSpec {
    pub(crate) fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn key_positions(&self) -> Vec<usize> {
        self.key
            .iter()
            .filter_map(|key| self.columns.iter().position(|(name, _)| name == key))
            .collect()
    }
}

/// A stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
    Bool(bool),
    Bytes(Vec<u8>),
}

use ColumnType::{Bool, Bytes, Int, Text};

/// Every table, parents before children (foreign keys hold at every step). A test checks
/// this list against the migrated schema, so a new column cannot be forgotten here.
pub static TABLES: &[TableSpec] = &[
    TableSpec {
        name: "organizations",
        key: &["uid"],
        columns: &[("uid", Text), ("name", Text), ("kind", Text)],
    },
    TableSpec {
        name: "tenants",
        key: &["uid"],
        columns: &[("uid", Text), ("name", Text), ("organization_uid", Text)],
    },
    TableSpec {
        name: "backup_servers",
        key: &["uid"],
        columns: &[
            ("uid", Text),
            ("name", Text),
            ("organization_uid", Text),
            ("connector", Text),
            ("connector_settings", Text),
        ],
    },
    TableSpec {
        name: "agents",
        key: &["server_uid"],
        columns: &[
            ("server_uid", Text),
            ("enrollment_hash", Text),
            ("enrollment_expires_at", Int),
            ("credential_hash", Text),
            ("enrolled_at", Int),
            ("host_name", Text),
            ("agent_version", Text),
            ("last_seen", Int),
            ("created_at", Int),
            ("offline_notified_at", Int),
        ],
    },
    TableSpec {
        name: "agent_commands",
        key: &["server_uid", "operation_id"],
        columns: &[
            ("server_uid", Text),
            ("operation_id", Text),
            ("body", Text),
            ("queued_at", Int),
            ("delivered_at", Int),
            ("deliveries", Int),
            ("outcome", Text),
            ("detail", Text),
            ("reported_at", Int),
        ],
    },
    TableSpec {
        name: "agent_replicas",
        key: &["server_uid", "vm_uid"],
        columns: &[
            ("server_uid", Text),
            ("vm_uid", Text),
            ("state", Text),
            ("version", Int),
        ],
    },
    TableSpec {
        name: "plans",
        key: &["uid"],
        columns: &[
            ("uid", Text),
            ("original_uid", Text),
            ("backup_server_uid", Text),
            ("name", Text),
            ("name_ci", Text),
            ("name_nat", Text),
            ("type", Text),
            ("status", Text),
            ("tenant_uid", Text),
            ("objects_count", Int),
            ("pre_failover_command", Text),
            ("pre_failover_command_ci", Text),
            ("pre_failover_command_nat", Text),
            ("post_failover_command", Text),
            ("post_failover_command_ci", Text),
            ("post_failover_command_nat", Text),
            ("last_session_uid", Text),
            ("updated_at", Int),
        ],
    },
    TableSpec {
        name: "plan_targets",
        key: &["plan_uid"],
        columns: &[
            ("plan_uid", Text),
            ("rto_seconds", Int),
            ("rpo_seconds", Int),
            ("updated_at", Int),
        ],
    },
    TableSpec {
        name: "plan_objects",
        key: &["uid"],
        columns: &[
            ("uid", Text),
            ("plan_uid", Text),
            ("backup_server_uid", Text),
            ("name", Text),
            ("name_ci", Text),
            ("name_nat", Text),
            ("host_name", Text),
            ("host_name_ci", Text),
            ("host_name_nat", Text),
            ("folder_name", Text),
            ("folder_name_ci", Text),
            ("folder_name_nat", Text),
            ("path", Text),
            ("path_ci", Text),
            ("path_nat", Text),
            ("boot_order", Int),
            ("boot_delay_seconds", Int),
            ("restore_session_uid", Text),
        ],
    },
    TableSpec {
        name: "restore_points",
        key: &["uid"],
        columns: &[("uid", Text), ("object_uid", Text), ("created_at", Int)],
    },
    TableSpec {
        name: "sessions",
        key: &["uid"],
        columns: &[
            ("uid", Text),
            ("plan_uid", Text),
            ("kind", Text),
            ("status", Text),
            ("message", Text),
            ("message_ci", Text),
            ("message_nat", Text),
            ("started_by", Text),
            ("requested_point", Int),
            ("start_time", Int),
            ("end_time", Int),
            ("phase", Text),
            ("cancel_requested", Bool),
            ("action_uid", Text),
            ("rto_target_seconds", Int),
            ("rpo_target_seconds", Int),
        ],
    },
    TableSpec {
        name: "session_notes",
        key: &["session_uid", "seq"],
        columns: &[
            ("session_uid", Text),
            ("seq", Int),
            ("author", Text),
            ("written_at", Int),
            ("text", Text),
        ],
    },
    TableSpec {
        name: "session_messages",
        key: &["session_uid", "seq"],
        columns: &[
            ("session_uid", Text),
            ("seq", Int),
            ("title", Text),
            ("description", Text),
            ("severity", Text),
            ("start_time", Int),
            ("end_time", Int),
        ],
    },
    TableSpec {
        name: "vm_sessions",
        key: &["uid"],
        columns: &[
            ("uid", Text),
            ("session_uid", Text),
            ("object_uid", Text),
            ("backup_status", Text),
            ("restore_point_uid", Text),
            ("restore_point_time", Int),
            ("start_time", Int),
            ("end_time", Int),
        ],
    },
    TableSpec {
        name: "drills",
        key: &["uid"],
        columns: &[
            ("uid", Text),
            ("name", Text),
            ("owner_all", Bool),
            ("owner_organization_uid", Text),
            ("created_by_uid", Text),
            ("created_by", Text),
            ("plan_uids", Text),
            ("plan_filter", Text),
            ("schedule", Text),
            ("time_zone", Text),
            ("ttl_seconds", Int),
            ("max_parallel_vms", Int),
            ("stop_after_failures", Int),
            ("paused", Bool),
            ("deleted", Bool),
            ("next_run_at", Int),
            ("created_at", Int),
        ],
    },
    TableSpec {
        name: "drill_runs",
        key: &["uid"],
        columns: &[
            ("uid", Text),
            ("drill_uid", Text),
            ("due_at", Int),
            ("state", Text),
            ("started_at", Int),
            ("ended_at", Int),
        ],
    },
    TableSpec {
        name: "drill_run_plans",
        key: &["run_uid", "plan_uid"],
        columns: &[
            ("run_uid", Text),
            ("plan_uid", Text),
            ("position", Int),
            ("vms", Int),
            ("state", Text),
            ("reason", Text),
            ("test_session_uid", Text),
            ("undo_session_uid", Text),
            ("undo_at", Int),
            ("undo_attempts", Int),
            ("test_verdict", Text),
            ("updated_at", Int),
        ],
    },
    TableSpec {
        name: "notification_channels",
        key: &["uid"],
        columns: &[
            ("uid", Text),
            ("owner_all", Bool),
            ("owner_organization_uid", Text),
            ("kind", Text),
            ("target", Text),
            ("secret", Text),
            ("events", Text),
            ("created_by", Text),
            ("created_at", Int),
        ],
    },
    TableSpec {
        name: "notification_events",
        key: &["uid"],
        columns: &[
            ("uid", Text),
            ("name", Text),
            ("plan_uid", Text),
            ("server_uid", Text),
            ("body", Text),
            ("created_at", Int),
            ("dispatched", Bool),
        ],
    },
    TableSpec {
        name: "notification_deliveries",
        key: &["uid"],
        columns: &[
            ("uid", Text),
            ("channel_uid", Text),
            ("event_uid", Text),
            ("event_name", Text),
            ("body", Text),
            ("state", Text),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("last_status", Int),
            ("last_error", Text),
            ("created_at", Int),
            ("delivered_at", Int),
        ],
    },
    TableSpec {
        name: "users",
        key: &["uid"],
        columns: &[
            ("uid", Text),
            ("name", Text),
            ("organization_uid", Text),
            ("role", Text),
            ("password_hash", Text),
            ("disabled", Bool),
            ("created_at", Int),
        ],
    },
    TableSpec {
        name: "tokens",
        key: &["hash"],
        columns: &[
            ("hash", Text),
            ("user_uid", Text),
            ("kind", Text),
            ("read_only", Bool),
            ("family", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("revoked", Bool),
        ],
    },
    TableSpec {
        name: "api_keys",
        key: &["hash"],
        columns: &[
            ("hash", Text),
            ("user_uid", Text),
            ("description", Text),
            ("read_only", Bool),
            ("created_at", Int),
            ("revoked", Bool),
        ],
    },
    TableSpec {
        name: "idempotency",
        key: &["request_id"],
        columns: &[
            ("request_id", Text),
            ("principal_uid", Text),
            ("fingerprint", Text),
            ("status", Int),
            ("headers", Text),
            ("body", Bytes),
            ("created_at", Int),
            ("expires_at", Int),
        ],
    },
    TableSpec {
        name: "login_attempts",
        key: &["key"],
        columns: &[("key", Text), ("attempts", Int), ("expires_at", Int)],
    },
    TableSpec {
        name: "jobs",
        key: &["uid"],
        columns: &[
            ("uid", Text),
            ("kind", Text),
            ("session_uid", Text),
            ("state", Text),
            ("attempts", Int),
            ("run_at", Int),
            ("locked_by", Text),
            ("lease_until", Int),
            ("last_error", Text),
            ("created_at", Int),
            ("updated_at", Int),
            ("epoch", Int),
        ],
    },
    TableSpec {
        name: "async_actions",
        key: &["uid"],
        columns: &[
            ("uid", Text),
            ("initiator_uid", Text),
            ("action_name", Text),
            ("status", Text),
            ("request_body", Text),
            ("query_parameters", Text),
            ("session_uid", Text),
            ("result", Text),
            ("created_at", Int),
            ("finished_at", Int),
            ("expires_at", Int),
        ],
    },
    TableSpec {
        name: "sim_replicas",
        key: &["object_uid"],
        columns: &[
            ("object_uid", Text),
            ("state", Text),
            ("restore_point_uid", Text),
            ("updated_at", Int),
        ],
    },
    TableSpec {
        name: "sim_operations",
        key: &["operation_id"],
        columns: &[
            ("operation_id", Text),
            ("object_uid", Text),
            ("kind", Text),
            ("executions", Int),
            ("outcome", Text),
            ("message", Text),
            ("started_at", Int),
            ("finished_at", Int),
            ("plan", Text),
        ],
    },
    TableSpec {
        name: "sim_faults",
        key: &["target_uid", "fault"],
        columns: &[("target_uid", Text), ("fault", Text)],
    },
    TableSpec {
        name: "audit",
        key: &["uid"],
        columns: &[
            ("uid", Text),
            ("at", Int),
            ("actor_uid", Text),
            ("actor_name", Text),
            ("address", Text),
            ("action", Text),
            ("target", Text),
            ("outcome", Text),
            ("detail", Text),
        ],
    },
];

/// Rows read per page of the source.
const PAGE_ROWS: u32 = 5000;

/// Reads and writes whole tables inside one transaction of one backend.
#[async_trait::async_trait]
pub(crate) trait TableSession: Send {
    /// Up to `limit` rows in key order, after the row whose key is `after`.
    async fn read_page(
        &mut self,
        table: &TableSpec,
        after: Option<&[Cell]>,
        limit: u32,
    ) -> Result<Vec<Vec<Cell>>, StoreError>;
    async fn write_rows(&mut self, table: &TableSpec, rows: &[Vec<Cell>])
    -> Result<(), StoreError>;
    async fn count(&mut self, table: &TableSpec) -> Result<u64, StoreError>;
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Backend {
    async fn open(location: &Location) -> Result<Self, StoreError> {
        Ok(match location {
            Location::Sqlite(path) => Backend::Sqlite(SqliteStore::open_file(path).await?),
            Location::Postgres(url) => Backend::Postgres(PgStore::connect(url).await?),
        })
    }

    /// A read-only snapshot (PostgreSQL: REPEATABLE READ; SQLite: one read transaction).
    async fn reader(&self) -> Result<Box<dyn TableSession>, StoreError> {
        match self {
            Backend::Sqlite(store) => store.table_session(true).await,
            Backend::Postgres(store) => store.table_session(true).await,
        }
    }

    async fn writer(&self) -> Result<Box<dyn TableSession>, StoreError> {
        match self {
            Backend::Sqlite(store) => store.table_session(false).await,
            Backend::Postgres(store) => store.table_session(false).await,
        }
    }
}

/// What was copied, per table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    pub table: &'static str,
    pub rows: u64,
    /// SHA-256 (hex) over the table's rows in key order, equal on both sides.
    pub checksum: String,
}

/// Copies every table from `from` into the empty store `to`, then verifies each table's count
/// and checksum by reading the destination back. Refuses a destination that holds any data.
pub async fn copy_store(from: &Location, to: &Location) -> Result<Vec<TableCopy>, StoreError> {
    if from == to {
        return Err(StoreError::Config(
            "the source and the destination are the same store".into(),
        ));
    }
    let source = Backend::open(from).await?;
    let destination = Backend::open(to).await?;
    let mut writer = destination.writer().await?;
    for table in TABLES {
        if writer.count(table).await? > 0 {
            return Err(StoreError::Config(format!(
                "the destination {} is not empty (table {} has rows); copy into a new, empty database",
                to.describe(),
                table.name
            )));
        }
    }
    let mut reader = source.reader().await?;
    let mut copied = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let mut digest = Sha256::new();
        let mut rows = 0u64;
        let mut after: Option<Vec<Cell>> = None;
        loop {
            let page = reader.read_page(table, after.as_deref(), PAGE_ROWS).await?;
            let Some(last) = page.last() else { break };
            after = Some(
                table
                    .key_positions()
                    .iter()
                    .map(|i| last[*i].clone())
                    .collect(),
            );
            for row in &page {
                hash_row(&mut digest, row);
            }
            rows += page.len() as u64;
            writer.write_rows(table, &page).await?;
        }
        copied.push(TableCopy {
            table: table.name,
            rows,
            checksum: hex(&digest.finalize()),
        });
    }
    reader.commit().await?;
    writer.commit().await?;
    verify(&destination, &copied).await?;
    Ok(copied)
}

/// Reads the destination back and compares every table with what was read from the source.
async fn verify(destination: &Backend, expected: &[TableCopy]) -> Result<(), StoreError> {
    let mut found = checksums(destination).await?;
    for (want, got) in expected.iter().zip(found.drain(..)) {
        if *want != got {
            return Err(StoreError::Conflict(format!(
                "verification failed for table {}: copied {} rows ({}), found {} rows ({})",
                want.table, want.rows, want.checksum, got.rows, got.checksum
            )));
        }
    }
    Ok(())
}

async fn checksums(backend: &Backend) -> Result<Vec<TableCopy>, StoreError> {
    let mut reader = backend.reader().await?;
    let mut out = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let mut digest = Sha256::new();
        let mut rows = 0u64;
        let mut after: Option<Vec<Cell>> = None;
        loop {
            let page = reader.read_page(table, after.as_deref(), PAGE_ROWS).await?;
            let Some(last) = page.last() else { break };
            after = Some(
                table
                    .key_positions()
                    .iter()
                    .map(|i| last[*i].clone())
                    .collect(),
            );
            page.iter().for_each(|row| hash_row(&mut digest, row));
            rows += page.len() as u64;
        }
        out.push(TableCopy {
            table: table.name,
            rows,
            checksum: hex(&digest.finalize()),
        });
    }
    reader.commit().await?;
    Ok(out)
}

/// The per-table counts and checksums of a store, as `copy_store` computes them.
pub async fn store_checksums(location: &Location) -> Result<Vec<TableCopy>, StoreError> {
    checksums(&Backend::open(location).await?).await
}

/// A canonical, unambiguous encoding: a tag per cell, lengths before bytes.
fn hash_row(digest: &mut Sha256, row: &[Cell]) {
    for cell in row {
        match cell {
            Cell::Null => digest.update([0u8]),
            Cell::Text(text) => {
                digest.update([1u8]);
                digest.update((text.len() as u64).to_be_bytes());
                digest.update(text.as_bytes());
            }
            Cell::Int(number) => {
                digest.update([2u8]);
                digest.update(number.to_be_bytes());
            }
            Cell::Bool(flag) => digest.update([3u8, u8::from(*flag)]),
            Cell::Bytes(bytes) => {
                digest.update([4u8]);
                digest.update((bytes.len() as u64).to_be_bytes());
                digest.update(bytes);
            }
        }
    }
    digest.update([0xffu8]);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

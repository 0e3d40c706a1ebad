//! The migrations of each backend, compiled into the binary. This is what `sqlx::migrate!`
//! would embed (same versions, descriptions and checksums, so databases migrated by either are
//! the same to sqlx), written out so that the build does not need sqlx's macros: those compile
//! both database drivers, SQLite's C source included, a second time for the compiler's host.
//! The test below keeps these lists equal to the `migrations/` folders.

use std::borrow::Cow;
use std::sync::LazyLock;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// (version, description, SQL), as the file `{version:04}_{description with _}.sql`.
type Embedded = (i64, &'static str, &'static str);

const SQLITE: &[Embedded] = &[
    (
        1,
        "initial",
        include_str!("../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "engine",
        include_str!("../migrations/sqlite/0002_engine.sql"),
    ),
    (
        3,
        "api keys",
        include_str!("../migrations/sqlite/0003_api_keys.sql"),
    ),
    (
        4,
        "audit",
        include_str!("../migrations/sqlite/0004_audit.sql"),
    ),
    (
        5,
        "substring index",
        include_str!("../migrations/sqlite/0005_substring_index.sql"),
    ),
    (
        6,
        "login attempts",
        include_str!("../migrations/sqlite/0006_login_attempts.sql"),
    ),
    (
        7,
        "fencing",
        include_str!("../migrations/sqlite/0007_fencing.sql"),
    ),
    (
        8,
        "connector settings",
        include_str!("../migrations/sqlite/0008_connector_settings.sql"),
    ),
    (
        9,
        "agents",
        include_str!("../migrations/sqlite/0009_agents.sql"),
    ),
    (
        10,
        "targets and reports",
        include_str!("../migrations/sqlite/0010_targets_and_reports.sql"),
    ),
    (
        11,
        "drills",
        include_str!("../migrations/sqlite/0011_drills.sql"),
    ),
    (
        12,
        "notifications",
        include_str!("../migrations/sqlite/0012_notifications.sql"),
    ),
    (
        13,
        "retention",
        include_str!("../migrations/sqlite/0013_retention.sql"),
    ),
];

const POSTGRES: &[Embedded] = &[
    (
        1,
        "initial",
        include_str!("../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "substring index",
        include_str!("../migrations/postgres/0002_substring_index.sql"),
    ),
    (
        3,
        "login attempts",
        include_str!("../migrations/postgres/0003_login_attempts.sql"),
    ),
    (
        4,
        "fencing",
        include_str!("../migrations/postgres/0004_fencing.sql"),
    ),
    (
        5,
        "connector settings",
        include_str!("../migrations/postgres/0005_connector_settings.sql"),
    ),
    (
        6,
        "agents",
        include_str!("../migrations/postgres/0006_agents.sql"),
    ),
    (
        7,
        "targets and reports",
        include_str!("../migrations/postgres/0007_targets_and_reports.sql"),
    ),
    (
        8,
        "drills",
        include_str!("../migrations/postgres/0008_drills.sql"),
    ),
    (
        9,
        "notifications",
        include_str!("../migrations/postgres/0009_notifications.sql"),
    ),
    (
        10,
        "change notifications",
        include_str!("../migrations/postgres/0010_change_notifications.sql"),
    ),
    (
        11,
        "retention",
        include_str!("../migrations/postgres/0011_retention.sql"),
    ),
    (
        12,
        "sort indexes",
        include_str!("../migrations/postgres/0012_sort_indexes.sql"),
    ),
];

fn migrator(embedded: &[Embedded]) -> Migrator {
    Migrator::with_migrations(
        embedded
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    // As sqlx reads a migration file: this first line opts out of a transaction.
                    sql.starts_with("-- no-transaction"),
                )
            })
            .collect(),
    )
}

pub(crate) static SQLITE_MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| migrator(SQLITE));
pub(crate) static POSTGRES_MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| migrator(POSTGRES));

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// What sqlx reads from a folder at run time, as (version, description, checksum).
    async fn from_folder(backend: &str) -> Vec<(i64, String, Vec<u8>)> {
        let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let migrator = Migrator::new(folder).await.expect("the migrations folder");
        summary(&migrator)
    }

    fn summary(migrator: &Migrator) -> Vec<(i64, String, Vec<u8>)> {
        migrator
            .iter()
            .map(|m| (m.version, m.description.to_string(), m.checksum.to_vec()))
            .collect()
    }

    #[tokio::test]
    async fn the_embedded_migrations_are_the_folders() {
        assert_eq!(summary(&SQLITE_MIGRATOR), from_folder("sqlite").await);
        assert_eq!(summary(&POSTGRES_MIGRATOR), from_folder("postgres").await);
    }
}

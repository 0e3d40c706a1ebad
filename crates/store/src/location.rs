//! Where an installation's data lives: `--database URL`, or the SQLite file in `--data-dir`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{PgStore, SqliteStore, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl Location {
    /// `postgres://...`, `postgresql://...` or `sqlite://PATH` (PATH is the database file).
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Location::Postgres(url.to_owned()));
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(StoreError::Config(
                    "a sqlite:// URL needs a file path, such as sqlite://./standby-data/standby.db"
                        .into(),
                ));
            }
            return Ok(Location::Sqlite(PathBuf::from(path)));
        }
        Err(StoreError::Config(format!(
            "unsupported database URL '{}': use postgres://USER@HOST/DATABASE or sqlite://PATH",
            redact(url)
        )))
    }

    /// The SQLite file in a data directory (the embedded default).
    pub fn data_dir(dir: &Path) -> Self {
        Location::Sqlite(dir.join(crate::sqlite::DATABASE_FILE))
    }

    /// For logs and messages: never the password.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(path) => format!("sqlite://{}", path.display()),
            Location::Postgres(url) => redact(url),
        }
    }
}

/// A URL with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Opens (creating and migrating if needed) the store at a location.
pub async fn open(location: &Location) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match location {
        Location::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            Arc::new(SqliteStore::open_file(path).await?)
        }
        Location::Postgres(url) => Arc::new(PgStore::connect(url).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_backend() {
        assert_eq!(
            Location::parse("postgres://standby@db/standby").unwrap(),
            Location::Postgres("postgres://standby@db/standby".into())
        );
        assert_eq!(
            Location::parse("sqlite:///var/lib/standby/standby.db").unwrap(),
            Location::Sqlite("/var/lib/standby/standby.db".into())
        );
        assert!(Location::parse("sqlite://").is_err());
        assert!(Location::parse("mysql://x").is_err());
    }

    #[test]
    fn passwords_never_leave_in_descriptions() {
        let url = "postgres://standby:s3cret@db:5432/standby";
        let described = Location::parse(url).unwrap().describe();
        assert_eq!(described, "postgres://standby:***@db:5432/standby");
        let error = Location::parse("mysql://root:pw@h/db")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("pw@"), "{error}");
    }
}

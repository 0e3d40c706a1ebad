//! A fresh store on the backend under test: SQLite in a temporary directory, or, when
//! `STANDBY_TEST_POSTGRES_URL` names a PostgreSQL server (CI's second run), a fresh database.

use std::sync::Arc;

use standby_store::{Location, Store};

pub struct TestStore {
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    _database: Option<standby_store::ScratchDatabase>,
}

impl std::ops::Deref for TestStore {
    type Target = dyn Store;
    fn deref(&self) -> &Self::Target {
        self.store.as_ref()
    }
}

pub async fn fresh_store() -> TestStore {
    match std::env::var("STANDBY_TEST_POSTGRES_URL") {
        Ok(admin) if !admin.is_empty() => {
            let database = standby_store::ScratchDatabase::create(&admin, "standby_test")
                .await
                .expect("create a test database");
            TestStore {
                store: standby_store::open(&Location::Postgres(database.url.clone()))
                    .await
                    .expect("open"),
                _dir: None,
                _database: Some(database),
            }
        }
        _ => {
            let dir = tempfile::tempdir().expect("temp dir");
            TestStore {
                store: standby_store::open(&Location::data_dir(dir.path()))
                    .await
                    .expect("open"),
                _dir: Some(dir),
                _database: None,
            }
        }
    }
}

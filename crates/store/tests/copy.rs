//! `store copy`: a whole installation moves between backends, verified by counts and
//! checksums, and the schema list it copies by matches the migrated schema.

use std::collections::BTreeMap;

use standby_fleet::demo::demo_fleet;
use standby_model::{Role, Timestamp};
use standby_store::copy::{ColumnType, TABLES, copy_store, store_checksums};
use standby_store::{
    AuditEntry, IdempotencyKey, ListQuery, Location, Scope, StoredResponse, TokenKind, TokenRecord,
    UserRecord,
};
use uuid::Uuid;

fn postgres() -> Option<String> {
    std::env::var("STANDBY_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// The demo fleet plus a row in every kind of table (users, tokens, keys, audit, X-Request-id,
/// the sim ledger), so that every column type crosses the copy.
async fn populated(location: &Location) {
    let store = standby_store::open(location).await.unwrap();
    store
        .import_fleet(&demo_fleet(Timestamp::now()))
        .await
        .unwrap();
    let organization = store.provider_organization().await.unwrap().unwrap();
    let user = UserRecord {
        uid: Uuid::now_v7(),
        name: "Zoë operator".into(),
        organization_uid: organization,
        role: Role::PortalAdministrator,
        password_hash: "$argon2id$v=19$not-a-real-hash".into(),
        disabled: true,
    };
    store.create_user(&user).await.unwrap();
    store
        .insert_token(&TokenRecord {
            hash: "ab".repeat(32),
            user_uid: user.uid,
            kind: TokenKind::Refresh,
            read_only: true,
            family: Uuid::now_v7(),
            created_at: Timestamp::now(),
            expires_at: Timestamp::now().plus_seconds(3600),
        })
        .await
        .unwrap();
    store
        .record_audit(&AuditEntry {
            uid: Uuid::now_v7(),
            at: Timestamp::now(),
            actor_uid: None,
            actor_name: "cli".into(),
            address: "local".into(),
            action: standby_store::AuditAction::UserAdd,
            target: Some("Zoë operator".into()),
            outcome: standby_store::AuditOutcome::Success,
            detail: "ünïcode ✓".into(),
        })
        .await
        .unwrap();
    store
        .reserve_login_attempt("user:zoë", 5, 300, Timestamp::now())
        .await
        .unwrap();
    let request = IdempotencyKey {
        request_id: Uuid::now_v7(),
        principal_uid: user.uid,
        fingerprint: "f".into(),
    };
    store
        .reserve_request(
            &request,
            Timestamp::now(),
            Timestamp::now().plus_seconds(300),
        )
        .await
        .unwrap();
    store
        .complete_request(
            request.request_id,
            &StoredResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: vec![0, 159, 146, 150, 255],
            },
        )
        .await
        .unwrap();
    store
        .insert_api_key(&standby_store::ApiKeyRecord {
            hash: "cd".repeat(32),
            user_uid: user.uid,
            description: "monitoring".into(),
            read_only: false,
            created_at: Timestamp::now(),
        })
        .await
        .unwrap();
    // A session accepted (with its async action and job) and a VM the sim has failed over.
    let plan = plans_in(store.as_ref())
        .await
        .into_iter()
        .find(|p| p.status == standby_model::PlanStatus::Ready)
        .unwrap();
    let accepted = standby_store::NewSession {
        uid: Uuid::now_v7(),
        plan_uid: plan.instance_uid,
        kind: standby_model::SessionKind::Failover,
        requested_point: Some(Timestamp::now()),
        started_by: "admin".into(),
        action: standby_store::NewAsyncAction {
            uid: Uuid::now_v7(),
            initiator_uid: user.uid,
            action_name: "StartBackupFailoverPlan".into(),
            query_parameters: BTreeMap::from([("datetime".into(), vec!["2026-11-01".into()])]),
            result: "{}".into(),
        },
        idempotent_answer: None,
    };
    assert!(
        store
            .begin_session(Scope::All, &accepted, Timestamp::now())
            .await
            .unwrap()
    );
    store
        .add_session_note(
            accepted.uid,
            "Zoë operator",
            "ünïcode note ✓",
            Timestamp::now(),
        )
        .await
        .unwrap();
    // A drill with a run, and a webhook with a delivery of the start's event.
    let drill = standby_store::drills::DrillRecord {
        uid: Uuid::now_v7(),
        name: "Nächtlich".into(),
        owner: Scope::All,
        owner_organization_uid: organization,
        created_by_uid: user.uid,
        created_by: "Zoë operator".into(),
        plans: standby_store::drills::DrillPlans::Listed(vec![plan.instance_uid]),
        schedule: "0 2 * * *".into(),
        time_zone: "Europe/Berlin".into(),
        ttl_seconds: 600,
        max_parallel_vms: 10,
        stop_after_failures: 1,
        paused: false,
        next_run_at: Some(Timestamp::now()),
        created_at: Timestamp::now(),
    };
    store.create_drill(&drill).await.unwrap();
    assert!(
        store
            .claim_drill_occurrence(
                drill.uid,
                drill.next_run_at.unwrap(),
                None,
                Some((
                    Uuid::now_v7(),
                    vec![standby_store::drills::NewDrillRunPlan {
                        plan_uid: plan.instance_uid,
                        vms: 3,
                        skipped: Some("the plan was Completed, not Ready".into()),
                    }],
                )),
                Timestamp::now(),
            )
            .await
            .unwrap()
    );
    let channel = standby_store::notifications::ChannelRecord {
        uid: Uuid::now_v7(),
        owner: Scope::All,
        owner_organization_uid: organization,
        kind: standby_store::notifications::ChannelKind::Webhook,
        target: "https://hooks.example.net/standby".into(),
        secret: "a secret of sixteen+".into(),
        events: vec!["run.started".into()],
        created_by: "Zoë operator".into(),
        created_at: Timestamp::now(),
    };
    store.create_channel(&channel).await.unwrap();
    store
        .record_event(
            "server.offline",
            None,
            None,
            "{\"why\": \"ünïcode\"}",
            Timestamp::now(),
        )
        .await
        .unwrap();
    let started = store.pending_events(10).await.unwrap()[0].uid;
    assert!(
        store
            .dispatch_events(
                &[(
                    started,
                    vec![standby_store::notifications::NewDelivery {
                        uid: Uuid::now_v7(),
                        channel_uid: channel.uid,
                        event_name: "run.started".into(),
                        body: "{}".into(),
                    }]
                )],
                Timestamp::now(),
            )
            .await
            .unwrap()
            == 1
    );
    let fleet_vm = store
        .list_objects(&ListQuery {
            plan: Some(plan.instance_uid),
            ..everything(&standby_store::catalog::OBJECT_CATALOG)
        })
        .await
        .unwrap()
        .items[0]
        .instance_uid;
    let sim = store.sim_ledger();
    sim.submit("op/1", Some(fleet_vm), "failover", "{}", Timestamp::now())
        .await
        .unwrap();
    sim.complete(
        "op/1",
        standby_store::SimOutcome::Succeeded,
        "booted",
        Some(standby_store::ReplicaChange::Running {
            vm: fleet_vm,
            test: false,
            point: Uuid::now_v7(),
        }),
        Timestamp::now(),
    )
    .await
    .unwrap();
    sim.set_fault(fleet_vm, standby_fleet::SimFault::Slow, true)
        .await
        .unwrap();
    // An agent server with its credential, a command and its result, and a replica.
    let agents = store.agents();
    let now = Timestamp::now();
    let server = agents
        .add_agent_server(
            "dr-host",
            organization,
            "token-hash",
            now.plus_millis(60_000),
            now,
        )
        .await
        .unwrap()
        .unwrap();
    agents
        .enroll("token-hash", "credential-hash", "host", "0.1.0", now)
        .await
        .unwrap()
        .unwrap();
    agents
        .queue_command(server, "session/vm", "{}", now)
        .await
        .unwrap();
    agents
        .record_results(
            server,
            &[standby_fleet::agent::OperationResult {
                operation_id: "session/vm".into(),
                outcome: standby_fleet::agent::Outcome::Succeeded,
                detail: "booted".into(),
                replica: Some(standby_fleet::agent::ReplicaReport {
                    vm_uid: fleet_vm,
                    running: true,
                    test: false,
                    version: 1,
                }),
            }],
            now,
        )
        .await
        .unwrap();
}

fn everything(catalog: &'static standby_query::Catalog) -> ListQuery {
    ListQuery {
        scope: Scope::All,
        server: None,
        plan: None,
        filter: standby_query::Filter::And(vec![]),
        order: standby_query::SortOrder::default_for(catalog),
        paging: standby_query::Paging {
            limit: 500,
            offset: 0,
        },
    }
}

async fn plans_in(store: &dyn standby_store::Store) -> Vec<standby_model::FailoverPlan> {
    store
        .list_plans(&everything(&standby_store::catalog::PLAN_CATALOG))
        .await
        .unwrap()
        .items
}

async fn plans_of(location: &Location) -> Vec<standby_model::FailoverPlan> {
    plans_in(standby_store::open(location).await.unwrap().as_ref()).await
}

#[tokio::test]
async fn an_installation_round_trips_between_backends() {
    let dir = tempfile::tempdir().unwrap();
    let original = Location::Sqlite(dir.path().join("original.db"));
    populated(&original).await;
    // Through PostgreSQL when the suite has one, else through a second SQLite file.
    let scratch = match postgres() {
        Some(admin) => Some(
            standby_store::ScratchDatabase::create(&admin, "standby_test")
                .await
                .unwrap(),
        ),
        None => None,
    };
    let middle = match &scratch {
        Some(database) => Location::Postgres(database.url.clone()),
        None => Location::Sqlite(dir.path().join("middle.db")),
    };
    let back = Location::Sqlite(dir.path().join("back.db"));

    let there = copy_store(&original, &middle).await.unwrap();
    let again = copy_store(&middle, &back).await.unwrap();
    assert_eq!(there, again, "counts and checksums survive both ways");
    assert!(
        there.iter().all(|t| t.rows > 0),
        "every table had rows: {there:?}"
    );
    assert_eq!(store_checksums(&original).await.unwrap(), there);
    assert_eq!(plans_of(&original).await, plans_of(&middle).await);
    assert_eq!(plans_of(&original).await, plans_of(&back).await);

    // A destination with data is refused, and nothing is written to it.
    let refused = copy_store(&original, &back).await.unwrap_err().to_string();
    assert!(refused.contains("is not empty"), "{refused}");
    assert_eq!(store_checksums(&back).await.unwrap(), there);
    let same = copy_store(&original, &original)
        .await
        .unwrap_err()
        .to_string();
    assert!(same.contains("same store"), "{same}");
}

/// The copy's table list is the migrated schema, column for column (SQLite and PostgreSQL).
#[tokio::test]
async fn the_copy_covers_every_table_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let store = standby_store::SqliteStore::open(dir.path()).await.unwrap();
    let tables: Vec<(String,)> = sqlx::query_as(
        // Only real tables: the trigram indexes (FTS5 virtual tables and their shadow tables)
        // are derived, filled by triggers as the copy inserts rows.
        "SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' AND name NOT LIKE '\\_sqlx%' ESCAPE '\\' AND name NOT LIKE 'sqlite%' ORDER BY name",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let mut listed: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
    listed.sort();
    assert_eq!(
        tables.iter().map(|(t,)| t.as_str()).collect::<Vec<_>>(),
        listed
    );
    for table in TABLES {
        let columns: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT name, type FROM pragma_table_info('{}') ORDER BY cid",
            table.name
        )))
        .fetch_all(store.pool())
        .await
        .unwrap();
        let expected: Vec<(String, String)> = table
            .columns
            .iter()
            .map(|(name, kind)| {
                let sql = match kind {
                    ColumnType::Text => "TEXT",
                    ColumnType::Int | ColumnType::Bool => "INTEGER",
                    ColumnType::Bytes => "BLOB",
                };
                ((*name).to_owned(), sql.to_owned())
            })
            .collect();
        assert_eq!(columns, expected, "table {}", table.name);
    }
    if let Some(admin) = postgres() {
        let database = standby_store::ScratchDatabase::create(&admin, "standby_test")
            .await
            .unwrap();
        let store = standby_store::PgStore::connect(&database.url)
            .await
            .unwrap();
        let mut by_table: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx%' ORDER BY table_name, ordinal_position",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        for (table, column, kind) in rows {
            by_table.entry(table).or_default().push((column, kind));
        }
        assert_eq!(by_table.len(), TABLES.len());
        for table in TABLES {
            let expected: Vec<(String, String)> = table
                .columns
                .iter()
                .map(|(name, kind)| {
                    let sql = match kind {
                        ColumnType::Text => "text",
                        ColumnType::Int => "bigint",
                        ColumnType::Bool => "boolean",
                        ColumnType::Bytes => "bytea",
                    };
                    ((*name).to_owned(), sql.to_owned())
                })
                .collect();
            assert_eq!(by_table[table.name], expected, "table {}", table.name);
        }
    }
}

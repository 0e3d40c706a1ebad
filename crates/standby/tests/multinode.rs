//! Several nodes on one PostgreSQL behave as one Standby: three real server processes share a
//! database; plans are started through different nodes; one node is SIGKILLed mid-run and its
//! sessions are taken over when their leases run out; every plan ends, and the sim connector's
//! ledger shows each VM operation executed once. Runs when `STANDBY_TEST_POSTGRES_URL` is set
//! (CI's PostgreSQL run); SQLite has no second node.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const PLANS_COUNT: usize = 20;
const VMS_PER_PLAN: usize = 3;

#[tokio::test]
async fn three_nodes_share_one_database_and_survive_losing_one() {
    let Some(admin_url) = postgres_under_test() else {
        eprintln!("skipped: set STANDBY_TEST_POSTGRES_URL to run the multi-node test");
        return;
    };
    let store = TestStore::postgres(&admin_url).await;
    let args = [
        "--sim-boot-ms",
        "300-900",
        "--workers",
        "2",
        "--lease-seconds",
        "3",
    ];
    // All three start at once on an empty database: one migrates, one creates the administrator.
    let (a, b, c) = tokio::join!(
        TestApp::start(&store, &args),
        TestApp::start(&store, &args),
        TestApp::start(&store, &args)
    );
    let mut nodes = [a, b, c];

    store.import_fleet(&plans_fleet(
        (0..PLANS_COUNT).map(|plan| format!("plan-{plan:02}")),
        VMS_PER_PLAN,
    ));
    let plans: Vec<String> = nodes[0]
        .all_plans()
        .await
        .iter()
        .map(|p| p["instanceUid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(plans.len(), PLANS_COUNT);
    for node in &nodes[1..] {
        assert_eq!(
            node.all_plans().await.len(),
            PLANS_COUNT,
            "every node sees the fleet"
        );
    }

    // A token from one node works on another; an X-Request-id answered by one is replayed by another.
    let (status, _) = send(
        nodes[1]
            .http
            .get(nodes[1].url(PLANS))
            .bearer_auth(&nodes[0].token),
    )
    .await;
    assert_eq!(status, 200);
    let patch = json!([{"op": "replace", "path": "/preFailoverCommand", "value": "C:\\pre.ps1"}]);
    let request_id = "5a0c3a4e-8d2b-4f61-9e0d-0c1b2a394857";
    let path = format!("{PLANS}/{}", plans[PLANS_COUNT - 1]);
    let first = nodes[0]
        .patch(&path, &patch)
        .header("X-Request-id", request_id)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let replayed = nodes[2]
        .patch(&path, &patch)
        .header("X-Request-id", request_id)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.headers()["x-idempotent-replay"], "true");

    // The same plan started through two nodes at once: exactly one start is accepted.
    let start = |node: &TestApp, plan: &str| node.post(&format!("{PLANS}/{plan}/start"));
    let (first, second) = tokio::join!(
        send(start(&nodes[0], &plans[0])),
        send(start(&nodes[1], &plans[0]))
    );
    let accepted = [first.0, second.0].iter().filter(|s| **s == 200).count();
    assert_eq!(accepted, 1, "{first:?} {second:?}");
    assert!([first.0, second.0].contains(&409), "{first:?} {second:?}");

    // The rest through the three nodes in turn; whichever node's worker claims a job runs it.
    for (index, plan) in plans.iter().enumerate().skip(1) {
        let (status, body) = send(start(&nodes[index % 3], plan)).await;
        assert_eq!(status, 200, "{body}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nodes[2].kill(); // SIGKILL, mid-run: its leased jobs wait for another node

    for (index, plan) in plans.iter().enumerate() {
        let node = &nodes[index % 2];
        let done = node.wait_for(plan, &["Completed", "Failed"]).await;
        assert_eq!(done["status"], "Completed", "{done}");
        assert_eq!(done["lastSession"]["status"], "Success");
        for object in node.objects_of(plan).await {
            assert_eq!(
                object["restoreSession"]["backupStatus"], "Success",
                "{object}"
            );
        }
    }
    // Async actions are shared: node A lists those accepted by the dead node too.
    let (_, actions) = nodes[0].get_json("/api/v3/asyncActions", &[]).await;
    let actions = actions["data"].as_array().unwrap();
    assert_eq!(actions.len(), PLANS_COUNT, "{actions:?}");
    assert!(
        actions.iter().all(|a| a["status"] == "succeed"),
        "{actions:?}"
    );

    // Exactly once: one ledger entry per VM (and the one patched-in script), none run twice.
    let executions = nodes[0].sim_executions().await;
    assert_eq!(executions.len(), PLANS_COUNT * VMS_PER_PLAN + 1);
    let repeated: Vec<_> = executions.iter().filter(|(_, n)| **n != 1).collect();
    assert!(repeated.is_empty(), "executed more than once: {repeated:?}");
    // And the node loss really cost a lease: some session was resumed by another node.
    let standby_store::Location::Postgres(url) = &store.location else {
        unreachable!("a PostgreSQL store")
    };
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let (resumed,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM jobs WHERE attempts > 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(resumed >= 1, "no job was taken over from the killed node");
}

/// Issue 15: a node that is paused, not dead. Node A runs a plan; it is SIGSTOPped for longer
/// than its lease; node B takes the session over and finishes it. When A is resumed (SIGCONT)
/// its late writes are refused by the epoch, it stops that session and writes nothing, and the
/// sim ledger shows every operation submitted exactly once.
#[tokio::test]
async fn a_paused_node_wakes_up_fenced_off() {
    let Some(admin_url) = postgres_under_test() else {
        eprintln!("skipped: set STANDBY_TEST_POSTGRES_URL to run the pause test");
        return;
    };
    const VMS: usize = 6;
    let store = TestStore::postgres(&admin_url).await;
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("fleet.toml");
    std::fs::write(&file, one_plan_fleet("paused", VMS)).unwrap();
    // Boots long enough that the pause lands in the middle of them; two at a time, so VMs are
    // left to start when A is paused.
    let args = [
        "--sim-boot-ms",
        "1500-2500",
        "--workers",
        "1",
        "--max-parallel-boots",
        "2",
        "--lease-seconds",
        "3",
    ];
    let mut node_args = vec!["--fleet", file.to_str().unwrap()];
    node_args.extend_from_slice(&args);
    let a = TestApp::start(&store, &node_args).await;
    let plan = a.plan_named("paused").await["instanceUid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = send(a.post(&format!("{PLANS}/{plan}/start"))).await;
    assert_eq!(status, 200, "{body}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !a
        .objects_of(&plan)
        .await
        .iter()
        .any(|o| o["restoreSession"]["backupStatus"] == "Running")
    {
        assert!(std::time::Instant::now() < deadline, "no VM started on A");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Only now does B exist, so A holds the session. Pause A past its lease.
    let b = TestApp::start(&store, &args).await;
    a.signal("STOP");
    let done = b.wait_for(&plan, &["Completed", "Failed"]).await;
    assert_eq!(done["status"], "Completed", "{done}");
    a.signal("CONT");
    // A wakes: its timers fire, its steps' waits end, its writes are refused. Give it time.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, _) = send(a.get("/readyz")).await;
    assert_eq!(status, 200, "A is still serving after it was fenced off");

    let after = b.plan(&plan).await;
    assert_eq!(after["status"], "Completed", "A changed nothing: {after}");
    let lines = after["lastSession"]["detailedMessages"].as_array().unwrap();
    let mut titles: Vec<&str> = lines.iter().map(|l| l["title"].as_str().unwrap()).collect();
    titles.sort_unstable();
    let mut expected: Vec<String> = (0..VMS).map(|i| format!("vm-{i}")).collect();
    expected.sort_unstable();
    assert_eq!(
        titles, expected,
        "one line per VM, none from A after its pause"
    );
    let executions = b.sim_executions().await;
    assert_eq!(executions.len(), VMS, "{executions:?}");
    let repeated: Vec<_> = executions.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        repeated.is_empty(),
        "submitted more than once: {repeated:?}"
    );
    // And the pause really cost A its lease: the job was claimed twice.
    let standby_store::Location::Postgres(url) = &store.location else {
        unreachable!("a PostgreSQL store")
    };
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let (epoch,): (i64,) = sqlx::query_as("SELECT MAX(epoch) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(epoch >= 2, "B never took the job over (epoch {epoch})");
}

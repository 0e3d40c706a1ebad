//! The agent's handling of commands, on a real ledger file, without a control plane (nothing
//! here calls it: results stay unreported in the ledger, where the tests read them).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use standby_fleet::agent::{Command, CommandAction, Outcome, agent_vm_uid};
use standby_model::Timestamp;
use uuid::Uuid;

use super::*;
use crate::manifest::Manifest;
use crate::sim::{SimDriver, restore_points_at};
use crate::{LedgerEntry, RestorePoints};

const SERVER: Uuid = Uuid::from_u128(0x5e);
const PLAN_UID: Uuid = Uuid::from_u128(0x91);
const SESSION: Uuid = Uuid::from_u128(0x5e55);

fn manifest_text(boot_ms: (u64, u64), pre_command: &str) -> String {
    format!(
        r#"
driver = "sim"
[sim]
boot_ms = [{}, {}]
undo_ms = 1

[[plans]]
name = "P"
type = "Local"
pre_failover_command = {}
script_timeout_seconds = 5

[[plans.vms]]
name = "db"
restore_points = ["2026-12-01T00:00:00Z"]

[[plans.vms]]
name = "app"
restore_point_count = 2
restore_point_interval_minutes = 60

[[plans.vms]]
name = "broken"
restore_points = ["2026-12-01T00:00:00Z"]
sim_faults = ["boot-fails"]
"#,
        boot_ms.0,
        boot_ms.1,
        toml::Value::String(pre_command.to_owned())
    )
}

struct Host {
    dir: tempfile::TempDir,
    boot_ms: (u64, u64),
    /// The plan's pre-failover command in the manifest: the only script text the agent runs.
    pre_command: String,
}

impl Host {
    fn new(boot_ms: (u64, u64)) -> Host {
        Host {
            dir: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
            boot_ms,
            pre_command: "unused".to_owned(),
        }
    }

    fn ledger_path(&self) -> PathBuf {
        self.dir.path().join("ledger.db")
    }

    /// An agent on this host's ledger file: each call is a start of the agent process.
    async fn start(&self) -> Arc<Agent<SimDriver>> {
        let manifest = Manifest::parse(
            Path::new("HOST.toml"),
            &manifest_text(self.boot_ms, &self.pre_command),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let ledger = Ledger::open(&self.ledger_path())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let control =
            ControlPlane::new("http://127.0.0.1:9", None).unwrap_or_else(|e| panic!("{e}"));
        let driver = SimDriver::new(ledger.clone(), manifest.sim);
        Arc::new(Agent::new(
            Arc::new(manifest),
            SERVER,
            "dr-host".to_owned(),
            ledger,
            driver,
            control,
            Link::new("http://127.0.0.1:9"),
        ))
    }
}

/// The agent process ends (as if killed: its tasks are dropped, its ledger closed).
async fn stop(agent: Arc<Agent<SimDriver>>) {
    lock(&agent.tasks).abort_all();
    agent.idle().await;
    agent.ledger.close().await;
}

fn command(id: &str, vm: Option<&str>, action: CommandAction) -> Command {
    Command {
        operation_id: id.to_owned(),
        plan_uid: PLAN_UID,
        plan_name: "P".to_owned(),
        session_uid: SESSION,
        vm_name: vm.map(str::to_owned),
        restore_point_time: Some(at("2026-12-01T00:00:00Z")),
        action,
    }
}

fn failover(id: &str, vm: &str, test: bool) -> Command {
    command(
        id,
        Some(vm),
        CommandAction::FailOver {
            vm_uid: agent_vm_uid(SERVER, "P", vm),
            restore_point_uid: Uuid::from_u128(1),
            test,
        },
    )
}

fn undo(id: &str, vm: &str) -> Command {
    command(
        id,
        Some(vm),
        CommandAction::Undo {
            vm_uid: agent_vm_uid(SERVER, "P", vm),
        },
    )
}

fn script(id: &str, text: &str) -> Command {
    command(
        id,
        None,
        CommandAction::Script {
            command: text.to_owned(),
            when: "pre".to_owned(),
            test: true,
        },
    )
}

fn cancel(target: &str) -> Command {
    command(
        &format!("{target}#cancel"),
        None,
        CommandAction::Cancel {
            target: target.to_owned(),
        },
    )
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap_or_else(|e| panic!("{e}"))
}

async fn entry(agent: &Agent<SimDriver>, id: &str) -> LedgerEntry {
    let entries = agent
        .ledger
        .entries()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    entries
        .into_iter()
        .find(|entry| entry.operation_id == id)
        .unwrap_or_else(|| panic!("{id} is not in the ledger"))
}

async fn handle(agent: &Arc<Agent<SimDriver>>, command: Command) {
    agent
        .handle_command(command)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

async fn result(agent: &Agent<SimDriver>, id: &str) -> standby_fleet::agent::OperationResult {
    let results = agent
        .ledger
        .unreported(1000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    results
        .into_iter()
        .find(|result| result.operation_id == id)
        .unwrap_or_else(|| panic!("no unreported result for {id}"))
}

#[tokio::test]
async fn an_operation_runs_once_however_often_it_is_delivered() {
    let host = Host::new((1, 5));
    let agent = host.start().await;
    let op = failover("s1/db", "db", false);
    handle(&agent, op.clone()).await;
    // A duplicate while it runs (the same poll answer twice, say).
    handle(&agent, op.clone()).await;
    agent.idle().await;
    let done = entry(&agent, "s1/db").await;
    assert_eq!(
        (done.executions, done.outcome.as_str()),
        (1, "succeeded"),
        "{done:?}"
    );
    let reported = result(&agent, "s1/db").await;
    let replica = reported
        .replica
        .unwrap_or_else(|| panic!("no replica in the result"));
    assert!(replica.running && !replica.test);
    assert_eq!(replica.version, 1);
    agent
        .ledger
        .mark_reported(&["s1/db".to_owned()])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    stop(agent).await;

    // The process restarts and the control plane, which never saw the result, sends it again.
    let agent = host.start().await;
    agent.recover().await.unwrap_or_else(|e| panic!("{e}"));
    handle(&agent, op).await;
    agent.idle().await;
    let again = entry(&agent, "s1/db").await;
    assert_eq!(
        again.executions, 1,
        "executed again after a restart: {again:?}"
    );
    assert_eq!(again.finished_at, done.finished_at);
    // ... and its result is posted again.
    assert_eq!(result(&agent, "s1/db").await.outcome, Outcome::Succeeded);
    let replicas = agent
        .ledger
        .replicas()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replicas.len(), 1);
    assert_eq!(
        replicas[0].version, 1,
        "the replica changed again: {replicas:?}"
    );
    stop(agent).await;
}

#[tokio::test]
async fn a_failover_running_at_a_crash_is_resumed_without_a_second_execution() {
    let host = Host::new((400, 400));
    let agent = host.start().await;
    let now = Timestamp::now();
    for (id, vm, started) in [
        ("s1/db", "db", now),
        ("s1/app", "app", now.plus_millis(-60_000)),
    ] {
        let op = failover(id, vm, true);
        let inserted = agent.ledger.insert_queued(&op, started).await;
        assert!(inserted.unwrap_or_else(|e| panic!("{e}")));
        let execution = agent.ledger.start(id, started).await;
        assert_eq!(execution.unwrap_or_else(|e| panic!("{e}")), Some(1));
    }
    // Killed here: both rows say `running`, neither replica is up.
    stop(agent).await;

    let started = Instant::now();
    let agent = host.start().await;
    agent.recover().await.unwrap_or_else(|e| panic!("{e}"));
    agent.idle().await;
    // The boot that began a minute ago is over; the one that just began is waited out.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    // ... and the one from a minute ago finished at once, not after a boot of its own.
    let (db, app) = (entry(&agent, "s1/db").await, entry(&agent, "s1/app").await);
    let finished = |entry: &LedgerEntry| entry.finished_at.map_or(0, Timestamp::ticks);
    assert!(
        finished(&db) - finished(&app) >= 2_000_000,
        "the earlier boot was waited out again: {app:?} {db:?}"
    );
    for id in ["s1/db", "s1/app"] {
        let done = entry(&agent, id).await;
        assert_eq!(
            (done.executions, done.outcome.as_str()),
            (1, "succeeded"),
            "{done:?}"
        );
        let replica = result(&agent, id).await.replica;
        assert!(
            replica.is_some_and(|replica| replica.running && replica.test && replica.version == 1)
        );
    }
    stop(agent).await;
}

#[tokio::test]
async fn a_script_running_at_a_crash_fails_and_is_not_run_again() {
    let host = Host::new((1, 1));
    let marker = host.dir.path().join("ran");
    let agent = host.start().await;
    let op = script("s1/pre", &format!("touch '{}'", marker.display()));
    let now = Timestamp::now();
    assert!(
        agent
            .ledger
            .insert_queued(&op, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    );
    assert!(
        agent
            .ledger
            .start("s1/pre", now)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_some()
    );
    stop(agent).await;

    let agent = host.start().await;
    agent.recover().await.unwrap_or_else(|e| panic!("{e}"));
    handle(&agent, op).await;
    agent.idle().await;
    let done = entry(&agent, "s1/pre").await;
    assert_eq!(
        (done.executions, done.outcome.as_str()),
        (1, "failed"),
        "{done:?}"
    );
    assert_eq!(done.detail, INTERRUPTED_SCRIPT);
    assert!(!marker.exists(), "the script ran again");
    assert_eq!(result(&agent, "s1/pre").await.outcome, Outcome::Failed);
    stop(agent).await;
}

#[tokio::test]
async fn a_queued_operation_left_by_a_crash_starts_once() {
    let host = Host::new((1, 1));
    let agent = host.start().await;
    let op = failover("s1/db", "db", false);
    assert!(
        agent
            .ledger
            .insert_queued(&op, Timestamp::now())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    );
    stop(agent).await;
    let agent = host.start().await;
    agent.recover().await.unwrap_or_else(|e| panic!("{e}"));
    handle(&agent, op).await;
    agent.idle().await;
    let done = entry(&agent, "s1/db").await;
    assert_eq!(
        (done.executions, done.outcome.as_str()),
        (1, "succeeded"),
        "{done:?}"
    );
    stop(agent).await;
}

#[tokio::test]
async fn a_script_gets_its_environment_and_its_output_reaches_the_result() {
    let text = "echo \"$STANDBY_PLAN_NAME|$STANDBY_PLAN_UID|$STANDBY_SESSION_UID|$STANDBY_SCRIPT_WHEN|$STANDBY_TEST|$STANDBY_OPERATION_ID\"; exit 4";
    let mut host = Host::new((1, 1));
    host.pre_command = text.to_owned();
    let agent = host.start().await;
    handle(&agent, script("s1/pre", text)).await;
    agent.idle().await;
    let done = result(&agent, "s1/pre").await;
    assert_eq!(done.outcome, Outcome::Failed);
    assert_eq!(
        done.detail,
        format!("exit code 4\nP|{PLAN_UID}|{SESSION}|pre|1|s1/pre")
    );
    assert_eq!(entry(&agent, "s1/pre").await.executions, 1);
    stop(agent).await;
}

#[tokio::test]
async fn the_sim_driver_says_what_it_did() {
    let host = Host::new((1, 3));
    let agent = host.start().await;
    handle(&agent, failover("s1/db", "db", false)).await;
    handle(&agent, undo("u0/app", "app")).await;
    handle(&agent, failover("s1/broken", "broken", false)).await;
    handle(&agent, failover("s1/ghost", "ghost", false)).await;
    let mut late = failover("s1/app", "app", false);
    late.restore_point_time = Some(at("2026-12-01T00:30:00Z"));
    handle(&agent, late).await;
    let mut wrong_uid = failover("s1/uid", "db", false);
    wrong_uid.action = CommandAction::FailOver {
        vm_uid: Uuid::from_u128(77),
        restore_point_uid: Uuid::from_u128(1),
        test: false,
    };
    handle(&agent, wrong_uid).await;
    agent.idle().await;
    handle(&agent, failover("s2/db", "db", false)).await;
    agent.idle().await;

    let check = async |id: &str, outcome: Outcome, words: &str| {
        let done = result(&agent, id).await;
        assert_eq!(done.outcome, outcome, "{id}: {}", done.detail);
        assert!(done.detail.contains(words), "{id}: {}", done.detail);
        done
    };
    check("s1/db", Outcome::Succeeded, "booted").await;
    let off = check("u0/app", Outcome::Succeeded, "already off").await;
    assert!(
        off.replica
            .is_some_and(|replica| !replica.running && replica.version == 0)
    );
    check("s1/broken", Outcome::Failed, "boot-fails").await;
    check(
        "s1/ghost",
        Outcome::Failed,
        "plan P has no VM ghost on this host",
    )
    .await;
    let late = check("s1/app", Outcome::Failed, "VM app has no restore point").await;
    assert!(
        late.detail.contains("2026-12-01T00:30:00"),
        "{}",
        late.detail
    );
    check("s1/uid", Outcome::Failed, "is not plan P's VM db").await;
    let again = check("s2/db", Outcome::Succeeded, "already running").await;
    assert!(
        again
            .replica
            .is_some_and(|replica| replica.running && replica.version == 1)
    );

    handle(&agent, undo("u1/db", "db")).await;
    agent.idle().await;
    let undone = check("u1/db", Outcome::Succeeded, "powered off").await;
    assert!(
        undone
            .replica
            .is_some_and(|replica| !replica.running && replica.version == 2)
    );
    stop(agent).await;
}

#[tokio::test]
async fn a_cancel_stops_a_running_boot() {
    let host = Host::new((20_000, 20_000));
    let agent = host.start().await;
    let started = Instant::now();
    handle(&agent, failover("s1/db", "db", false)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    handle(&agent, cancel("s1/db")).await;
    agent.idle().await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let target = result(&agent, "s1/db").await;
    assert_eq!(target.outcome, Outcome::Cancelled, "{}", target.detail);
    assert!(target.replica.is_some_and(|replica| !replica.running));
    let own = result(&agent, "s1/db#cancel").await;
    assert_eq!(own.outcome, Outcome::Succeeded);
    assert_eq!(entry(&agent, "s1/db").await.executions, 1);
    stop(agent).await;
}

#[tokio::test]
async fn an_operation_cancelled_before_it_arrives_never_runs() {
    let host = Host::new((1, 1));
    let agent = host.start().await;
    handle(&agent, cancel("s1/db")).await;
    stop(agent).await;
    let agent = host.start().await;
    agent.recover().await.unwrap_or_else(|e| panic!("{e}"));
    handle(&agent, failover("s1/db", "db", false)).await;
    agent.idle().await;
    let target = entry(&agent, "s1/db").await;
    assert_eq!(
        (target.executions, target.outcome.as_str()),
        (0, "cancelled"),
        "{target:?}"
    );
    assert_eq!(result(&agent, "s1/db").await.outcome, Outcome::Cancelled);
    assert_eq!(
        result(&agent, "s1/db#cancel").await.outcome,
        Outcome::Succeeded
    );
    let replicas = agent
        .ledger
        .replicas()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(replicas.is_empty(), "{replicas:?}");
    stop(agent).await;
}

#[tokio::test]
async fn the_inventory_lists_the_manifest_with_its_restore_points() {
    let host = Host::new((1, 1));
    let agent = host.start().await;
    let inventory = agent.build_inventory().await;
    assert_eq!(inventory.driver, "sim");
    let plan = &inventory.plans[0];
    assert_eq!(
        (plan.name.as_str(), plan.plan_type.as_str()),
        ("P", "Local")
    );
    let names: Vec<&str> = plan.vms.iter().map(|vm| vm.name.as_str()).collect();
    assert_eq!(names, ["db", "app", "broken"]);
    assert_eq!(plan.vms[0].host_name, "dr-host");
    assert_eq!(plan.vms[0].restore_points, vec![at("2026-12-01T00:00:00Z")]);
    let hourly = RestorePoints::Every {
        count: 2,
        interval_minutes: 60,
    };
    let app = &plan.vms[1].restore_points;
    assert_eq!(app.len(), 2);
    assert!(restore_points_at(&hourly, Timestamp::now()).contains(&app[1]));
    stop(agent).await;
}

#[test]
fn operations_render_as_a_table() {
    let entries = [LedgerEntry {
        operation_id: "s1/db".into(),
        action: "failover".into(),
        vm: Some("db".into()),
        plan: "P".into(),
        session_uid: SESSION.to_string(),
        executions: 1,
        outcome: "succeeded".into(),
        detail: String::new(),
        received_at: at("2026-12-01T00:00:00Z"),
        started_at: None,
        finished_at: Some(at("2026-12-01T00:00:01Z")),
        reported: true,
    }];
    let table = crate::render_operations(&entries);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("OPERATION  ACTION"), "{table}");
    assert!(
        lines[1].contains("s1/db") && lines[1].contains("succeeded"),
        "{table}"
    );
    assert!(crate::render_operations(&[]).contains("No operations"));
}

#[tokio::test]
async fn only_the_manifests_command_runs() {
    let host = Host::new((1, 1));
    let marker = host.dir.path().join("ran");
    let agent = host.start().await;
    handle(
        &agent,
        script("s1/pre", &format!("touch '{}'", marker.display())),
    )
    .await;
    agent.idle().await;
    let done = result(&agent, "s1/pre").await;
    assert_eq!(done.outcome, Outcome::Failed);
    assert!(
        done.detail.contains("only the manifest's command runs"),
        "{}",
        done.detail
    );
    assert!(!marker.exists(), "a command the manifest does not have ran");
    stop(agent).await;
}

//! Black-box, with real guests: the agent's qemu driver boots replicas built by
//! `tests/guest/build.sh` in real QEMU (TCG), started by a VSPC client's start. Each guest serves
//! the marker of the restore point it booted from, so the tests see which point the engine chose.
//!
//! Skipped when QEMU is not installed, unless `STANDBY_REQUIRE_QEMU=1` (CI sets it); skipped on
//! purpose with `STANDBY_SKIP_QEMU=1` (CI's second, PostgreSQL run: the driver does not depend on
//! the control plane's store, and the guests are the slow part).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::agent::*;
use common::*;
use serde_json::Value;

const SERVER: &str = "qemu-host-1";
/// TCG guests on a loaded 2-core machine: generous.
const BOOT_LIMIT: Duration = Duration::from_secs(240);

fn qemu_available() -> bool {
    if std::env::var("STANDBY_SKIP_QEMU").is_ok_and(|value| value == "1") {
        eprintln!("STANDBY_SKIP_QEMU=1: skipped");
        return false;
    }
    let found = ["qemu-system-x86_64", "qemu-img", "busybox"]
        .iter()
        .all(|tool| {
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|output| output.status.success())
        });
    if !found && std::env::var("STANDBY_REQUIRE_QEMU").is_ok_and(|value| value == "1") {
        panic!("STANDBY_REQUIRE_QEMU=1 but qemu-system-x86_64, qemu-img or busybox is missing");
    }
    if !found {
        eprintln!("QEMU is not installed: skipped (set STANDBY_REQUIRE_QEMU=1 to fail instead)");
    }
    found
}

/// A host: guests built by `tests/guest/build.sh`, the agent's state dir, and on drop every
/// QEMU process whose command line names this host's directory is killed (a failed test must
/// not leave guests running).
struct Host {
    dir: tempfile::TempDir,
    config: PathBuf,
    state_dir: PathBuf,
}

impl Host {
    fn build(vms: usize, points: usize, plan: &str) -> Host {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let output = Command::new(root.join("tests/guest/build.sh"))
            .arg(dir.path().join("guests"))
            .args(["--vms", &vms.to_string(), "--points", &points.to_string()])
            .args(["--plan", plan])
            .env("STANDBY_GUEST_CACHE", root.join("target/guest-cache"))
            .output()
            .expect("run tests/guest/build.sh");
        assert!(
            output.status.success(),
            "build.sh: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Host {
            config: dir.path().join("guests/host.toml"),
            state_dir: dir.path().join("state"),
            dir,
        }
    }

    fn replica(&self, vm: &str) -> PathBuf {
        self.dir.path().join("guests").join(vm)
    }

    fn runtime_dir(&self) -> PathBuf {
        self.state_dir.join("qemu")
    }

    /// The runtime dir's guest directories.
    fn guest_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.runtime_dir())
            .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
            .unwrap_or_default();
        dirs.sort();
        dirs
    }

    /// Each guest's `launch.json`, by VM name.
    fn records(&self) -> BTreeMap<String, (PathBuf, Value)> {
        let mut records = BTreeMap::new();
        for dir in self.guest_dirs() {
            let Ok(text) = std::fs::read(dir.join("launch.json")) else {
                continue;
            };
            let record: Value = serde_json::from_slice(&text).expect("launch.json");
            let vm = record["vm"].as_str().expect("vm").to_owned();
            assert!(
                records.insert(vm.clone(), (dir, record)).is_none(),
                "two guest directories for {vm}"
            );
        }
        records
    }

    /// The QEMU processes of this host, by pid (the pidfile's path on their command line names
    /// this host's directory).
    fn qemu_processes(&self) -> Vec<i32> {
        let needle = self.dir.path().display().to_string();
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains("qemu-system") && cmdline.contains(&needle) {
                pids.push(pid);
            }
        }
        pids.sort_unstable();
        pids
    }

    /// Until every VM's guest has a pidfile: they are booting.
    async fn wait_for_pidfiles(&self, count: usize) -> BTreeMap<String, i32> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let pids = self.pids();
            if pids.len() == count {
                return pids;
            }
            assert!(
                Instant::now() < deadline,
                "the guests never launched: {pids:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Each VM's QEMU pid, from its pidfile.
    fn pids(&self) -> BTreeMap<String, i32> {
        self.records()
            .into_iter()
            .filter_map(|(vm, (dir, _))| {
                let text = std::fs::read_to_string(dir.join("qemu.pid")).ok()?;
                Some((vm, text.trim().parse().ok()?))
            })
            .collect()
    }

    /// Every restore point file's bytes, by path.
    fn point_files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut files = BTreeMap::new();
        for vm in std::fs::read_dir(self.dir.path().join("guests"))
            .expect("guests")
            .flatten()
        {
            let points = vm.path().join("points");
            for point in std::fs::read_dir(&points).into_iter().flatten().flatten() {
                files.insert(point.path(), std::fs::read(point.path()).expect("a point"));
            }
        }
        assert!(!files.is_empty(), "no restore points");
        files
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for pid in self.qemu_processes() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// The restore points' creation times of `vm`, oldest first, from its `points.toml`.
fn points_of(host: &Host, vm: &str) -> Vec<String> {
    let text = std::fs::read_to_string(host.replica(vm).join("points.toml")).expect("points.toml");
    text.lines()
        .filter_map(|line| line.strip_prefix("created = \""))
        .map(|rest| rest.trim_end_matches('"').to_owned())
        .collect()
}

/// What the guest behind `port` says: its marker, and the answer to `then` if given.
fn ask_guest(port: u64, then: Option<&str>) -> Vec<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port as u16)).expect("connect to the guest");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    if let Some(line) = then {
        stream
            .write_all(format!("{line}\n").as_bytes())
            .expect("send");
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.lines().map(str::to_owned).collect()
}

async fn wait_for_status(app: &TestApp, uid: &str, statuses: &[&str]) -> Value {
    let deadline = Instant::now() + BOOT_LIMIT;
    loop {
        let plan = app.plan(uid).await;
        if statuses.iter().any(|status| plan["status"] == *status) {
            return plan;
        }
        assert!(
            Instant::now() < deadline,
            "plan {uid} stuck in {}: {}",
            plan["status"],
            plan["lastSession"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn start(app: &TestApp, uid: &str, query: &[(&str, &str)]) {
    let (status, body) = send(app.post(&format!("{PLANS}/{uid}/start")).query(query)).await;
    assert!(status == 200 || status == 202, "start: {status} {body}");
}

async fn undo(app: &TestApp, uid: &str) {
    let (status, body) = send(app.post(&format!("{PLANS}/{uid}/undo"))).await;
    assert!(status == 200 || status == 202, "undo: {status} {body}");
    let plan = wait_for_status(app, uid, &["Ready", "UndoFailed", "Failed"]).await;
    assert_eq!(plan["status"], "Ready", "{}", plan["lastSession"]);
}

async fn plan_uid(app: &TestApp, name: &str) -> String {
    wait_for_plan(app, name).await["instanceUid"]
        .as_str()
        .expect("uid")
        .to_owned()
}

/// A control plane, the host's agent enrolled, the plan listed.
async fn enrolled(host: &Host) -> (TestApp, Agent) {
    let app = TestApp::with_fleet(&one_plan_fleet("Sim plan", 1), &[]).await;
    let token = add_server(&app, SERVER);
    let agent = Agent::start(&app.base, &host.config, &host.state_dir, Some(&token));
    (app, agent)
}

/// Undo left nothing: no QEMU process, no guest directory, the points as they were.
fn assert_nothing_left(host: &Host, points: &BTreeMap<PathBuf, Vec<u8>>) {
    assert_eq!(
        host.qemu_processes(),
        Vec::<i32>::new(),
        "QEMU processes left"
    );
    assert_eq!(
        host.guest_dirs(),
        Vec::<PathBuf>::new(),
        "guest directories left"
    );
    assert!(
        host.point_files() == *points,
        "a restore point file changed"
    );
}

#[tokio::test]
async fn a_plan_failed_over_to_a_point_in_time_boots_each_guest_from_that_point_and_undo_leaves_nothing()
 {
    if !qemu_available() {
        return;
    }
    let host = Host::build(3, 3, "Guests");
    let before = host.point_files();
    let (app, agent) = enrolled(&host).await;
    let uid = plan_uid(&app, "Guests").await;
    let names: Vec<String> = app
        .objects_of(&uid)
        .await
        .iter()
        .map(|vm| vm["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["vm-1", "vm-2", "vm-3"]);

    // Half an hour after the middle point: the engine must choose the middle point, the newest
    // before that time, for every VM.
    let points = points_of(&host, "vm-1");
    let middle = &points[1];
    let at = time::OffsetDateTime::parse(middle, &time::format_description::well_known::Rfc3339)
        .expect("a point time")
        + time::Duration::minutes(30);
    let at = at
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    start(&app, &uid, &[("dateTime", &at)]).await;
    let plan = wait_for_status(&app, &uid, &["Completed", "Failed", "Success"]).await;
    assert_eq!(plan["status"], "Completed", "{}", plan["lastSession"]);

    let records = host.records();
    assert_eq!(records.len(), 3, "{records:?}");
    for (vm, (_, record)) in &records {
        assert_eq!(record["launches"], 1, "{vm} launched more than once");
        assert_eq!(record["test"], false);
        let marker = ask_guest(record["forwardPort"].as_u64().expect("port"), None);
        assert_eq!(
            marker.first().map(String::as_str),
            Some(format!("STANDBY-MARKER {vm} point-2 {middle}").as_str()),
            "{vm} booted from another point: {marker:?}"
        );
    }
    assert_eq!(host.qemu_processes().len(), 3);
    let session = plan["lastSession"].to_string();
    assert!(session.contains("ready in"), "{session}");
    for entry in agent.ledger() {
        assert_eq!(entry["executions"], 1, "{entry}");
    }

    undo(&app, &uid).await;
    assert_nothing_left(&host, &before);
    let undos: Vec<Value> = agent
        .ledger()
        .into_iter()
        .filter(|entry| entry["action"] == "undo")
        .collect();
    assert_eq!(undos.len(), 3, "{undos:?}");
    for entry in &undos {
        assert_eq!(entry["outcome"], "succeeded", "{entry}");
        assert!(
            entry["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("powered off"),
            "{entry}"
        );
    }
}

#[tokio::test]
async fn a_test_failover_cannot_reach_a_host_port_that_a_production_guest_can() {
    if !qemu_available() {
        return;
    }
    let host = Host::build(2, 1, "unused");
    // Two plans of one VM each, so that one runs as a test and one in production at once.
    let manifest = format!(
        "driver = \"qemu\"\n[qemu]\naccel = \"tcg\"\n\n\
         [[plans]]\nname = \"Isolated\"\ntype = \"Local\"\n[[plans.vms]]\nname = \"vm-1\"\nreplica = \"{}\"\n\n\
         [[plans]]\nname = \"Production\"\ntype = \"Local\"\n[[plans.vms]]\nname = \"vm-2\"\nreplica = \"{}\"\n",
        host.replica("vm-1").display(),
        host.replica("vm-2").display()
    );
    std::fs::write(&host.config, manifest).expect("manifest");
    let before = host.point_files();
    // A service on the host that a guest reaches at 10.0.2.2 when it has a route out.
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"host-service\n");
        }
    });

    let (app, _agent) = enrolled(&host).await;
    let isolated = plan_uid(&app, "Isolated").await;
    let production = plan_uid(&app, "Production").await;
    start(&app, &isolated, &[("test", "true")]).await;
    start(&app, &production, &[]).await;
    let plan = wait_for_status(&app, &isolated, &["Success", "Failed"]).await;
    assert_eq!(plan["status"], "Success", "{}", plan["lastSession"]);
    let plan = wait_for_status(&app, &production, &["Completed", "Failed"]).await;
    assert_eq!(plan["status"], "Completed", "{}", plan["lastSession"]);

    let records = host.records();
    let reach = format!("reach 10.0.2.2 {port}");
    let guest_port = |vm: &str| records[vm].1["forwardPort"].as_u64().expect("port");
    assert_eq!(records["vm-1"].1["test"], true);
    let answer = ask_guest(guest_port("vm-2"), Some(&reach));
    assert_eq!(
        answer.get(1).map(String::as_str),
        Some("reach: ok host-service"),
        "{answer:?}"
    );
    let answer = ask_guest(guest_port("vm-1"), Some(&reach));
    assert_eq!(
        answer.get(1).map(String::as_str),
        Some("reach: failed"),
        "{answer:?}"
    );

    undo(&app, &isolated).await;
    undo(&app, &production).await;
    assert_nothing_left(&host, &before);
}

#[tokio::test]
async fn a_guest_that_never_becomes_ready_fails_its_vm_after_the_probe_timeout() {
    if !qemu_available() {
        return;
    }
    let host = Host::build(1, 1, "Silent");
    // Nothing in the guest listens on 7999.
    let spec_file = host.replica("vm-1").join("vm.toml");
    let spec = std::fs::read_to_string(&spec_file).expect("vm.toml");
    let spec = spec
        .replace("port = 7000", "port = 7999")
        .replace("timeout_seconds = 180", "timeout_seconds = 30");
    std::fs::write(&spec_file, spec).expect("vm.toml");
    let before = host.point_files();
    let (app, agent) = enrolled(&host).await;
    let uid = plan_uid(&app, "Silent").await;
    let started = Instant::now();
    start(&app, &uid, &[("test", "true")]).await;
    let plan = wait_for_status(&app, &uid, &["Failed", "Success"]).await;
    assert_eq!(plan["status"], "Failed", "{}", plan["lastSession"]);
    assert!(
        started.elapsed() >= Duration::from_secs(30),
        "failed before the timeout"
    );
    let failover = agent
        .ledger()
        .into_iter()
        .find(|entry| entry["action"] == "failover")
        .expect("the failover");
    let detail = failover["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("not ready 30 s after its launch"),
        "{detail}"
    );
    // The guest did boot: its console is quoted.
    assert!(detail.contains("STANDBY-READY"), "{detail}");
    assert_nothing_left(&host, &before);
}

#[tokio::test]
async fn a_guest_agent_probe_is_ready_when_the_guest_answers_guest_ping_and_not_before() {
    if !qemu_available() {
        return;
    }
    let host = Host::build(2, 1, "Agents");
    for (vm, append) in [
        ("vm-1", "console=ttyS0 quiet"),
        ("vm-2", "console=ttyS0 quiet standby.no-guest-agent"),
    ] {
        let spec_file = host.replica(vm).join("vm.toml");
        let spec = std::fs::read_to_string(&spec_file).expect("vm.toml");
        let spec = spec
            .replace("append = \"console=ttyS0 quiet\"", &format!("append = \"{append}\""))
            .replace("kind = \"tcp\"           # ready once the guest's port 7000 answers with a byte\nport = 7000", "kind = \"guest-agent\"")
            .replace("timeout_seconds = 180", "timeout_seconds = 40");
        assert!(
            spec.contains("guest-agent") && spec.contains(append),
            "{spec}"
        );
        std::fs::write(&spec_file, spec).expect("vm.toml");
    }
    let before = host.point_files();
    let (app, agent) = enrolled(&host).await;
    let uid = plan_uid(&app, "Agents").await;
    start(&app, &uid, &[("test", "true")]).await;
    let plan = wait_for_status(&app, &uid, &["Failed", "Success"]).await;
    assert_eq!(plan["status"], "Failed", "{}", plan["lastSession"]);
    let details: BTreeMap<String, String> = agent
        .ledger()
        .into_iter()
        .filter(|entry| entry["action"] == "failover")
        .map(|entry| {
            (
                entry["vm"].as_str().unwrap_or_default().to_owned(),
                format!("{} {}", entry["outcome"], entry["detail"]),
            )
        })
        .collect();
    assert!(
        details["vm-1"].starts_with("\"succeeded\"")
            && details["vm-1"].contains("guest agent ping answered"),
        "{details:?}"
    );
    assert!(
        details["vm-2"].starts_with("\"failed\"") && details["vm-2"].contains("not ready 40 s"),
        "{details:?}"
    );
    undo(&app, &uid).await;
    assert_nothing_left(&host, &before);
}

#[tokio::test]
async fn the_agent_killed_mid_boot_adopts_live_guests_relaunches_a_dead_one_and_reports_an_orphan()
{
    if !qemu_available() {
        return;
    }
    let host = Host::build(3, 2, "Crash");
    let before = host.point_files();
    let (app, mut agent) = enrolled(&host).await;
    let uid = plan_uid(&app, "Crash").await;
    start(&app, &uid, &[("test", "true")]).await;
    let launched = host.wait_for_pidfiles(3).await;
    agent.signal("KILL");
    agent.kill();
    // While the agent is down: one guest dies, and a directory nobody owns appears.
    let victim = launched["vm-1"];
    let killed = Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let orphan = host.runtime_dir().join("op-00000000000000ff");
    std::fs::create_dir_all(&orphan).expect("orphan dir");
    std::fs::write(
        orphan.join("launch.json"),
        serde_json::json!({
            "operationId": "no-such-operation", "vmUid": uuid::Uuid::nil(), "plan": "Crash",
            "vm": "vm-9", "pointFile": "/nowhere", "pointCreated": "2026-01-01T00:00:00Z",
            "test": true, "forwardPort": 0, "launches": 1, "launchedAt": "2026-01-01T00:00:00Z"
        })
        .to_string(),
    )
    .expect("orphan record");
    let overlay = |vm: &str| {
        let records = host.records();
        let dir = &records[vm].0;
        std::os::unix::fs::MetadataExt::ino(
            &std::fs::metadata(dir.join("disk.qcow2")).expect("overlay"),
        )
    };
    let overlay_before = overlay("vm-1");

    let agent = Agent::start(&app.base, &host.config, &host.state_dir, None);
    let plan = wait_for_status(&app, &uid, &["Success", "Failed"]).await;
    assert_eq!(plan["status"], "Success", "{}", plan["lastSession"]);
    let records = host.records();
    let after = host.pids();
    for vm in ["vm-2", "vm-3"] {
        assert_eq!(
            after[vm], launched[vm],
            "{vm}: not the same QEMU process (not adopted)"
        );
        assert_eq!(records[vm].1["launches"], 1, "{vm}");
    }
    assert_ne!(after["vm-1"], victim);
    assert_eq!(
        records["vm-1"].1["launches"], 2,
        "the dead guest was not relaunched"
    );
    assert_eq!(
        overlay("vm-1"),
        overlay_before,
        "relaunched on another overlay"
    );
    // One QEMU process per VM, no more.
    assert_eq!(host.qemu_processes().len(), 3);
    for entry in agent.ledger() {
        assert_eq!(entry["executions"], 1, "{entry}");
    }
    let log = agent.stderr();
    assert!(
        log.contains("orphaned guest") && log.contains("op-00000000000000ff"),
        "the sweep did not report the orphan:\n{log}"
    );
    std::fs::remove_dir_all(&orphan).expect("remove the orphan");

    undo(&app, &uid).await;
    assert_nothing_left(&host, &before);
}

#[tokio::test]
async fn the_control_plane_killed_mid_boot_neither_doubles_nor_orphans_a_guest() {
    if !qemu_available() {
        return;
    }
    let host = Host::build(2, 1, "Outage");
    let before = host.point_files();
    let (app, agent) = enrolled(&host).await;
    let uid = plan_uid(&app, "Outage").await;
    start(&app, &uid, &[]).await;
    let launched = host.wait_for_pidfiles(2).await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let store = app.stop().expect("the app's store");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let app = TestApp::start(&store, &["--listen", &address]).await;
    let plan = wait_for_status(&app, &uid, &["Completed", "Failed"]).await;
    assert_eq!(plan["status"], "Completed", "{}", plan["lastSession"]);
    assert_eq!(host.pids(), launched, "a guest was launched again");
    assert_eq!(host.qemu_processes().len(), 2);
    for entry in agent.ledger() {
        assert_eq!(entry["executions"], 1, "{entry}");
    }
    undo(&app, &uid).await;
    assert_nothing_left(&host, &before);
}

#[test]
fn build_sh_refuses_bad_arguments() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for args in [
        &["--vms", "0"][..],
        &["--points", "x"],
        &["--accel", "hvf"],
        &["--colour"],
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let output = Command::new(root.join("tests/guest/build.sh"))
            .arg(dir.path())
            .args(args)
            .output()
            .expect("build.sh");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.is_empty(), "{args:?}: no message");
    }
}

#[test]
fn an_agent_with_a_bad_replica_spec_stops_at_start_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let replica = dir.path().join("vm-a");
    std::fs::create_dir_all(&replica).expect("replica dir");
    std::fs::write(
        replica.join("vm.toml"),
        "memory_mib = 128\n[boot]\nkernel = \"missing-kernel\"\n[networks.production]\nkind = \"user\"\n[probe]\nkind = \"tcp\"\nport = 22\n",
    )
    .expect("vm.toml");
    let config = dir.path().join("host.toml");
    std::fs::write(
        &config,
        "driver = \"qemu\"\n[[plans]]\nname = \"P\"\ntype = \"Local\"\n[[plans.vms]]\nname = \"a\"\nreplica = \"vm-a\"\n",
    )
    .expect("host.toml");
    let output = Command::new(binary())
        .args([
            "agent",
            "run",
            "--control-url",
            "http://127.0.0.1:9",
            "--config",
        ])
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .expect("agent run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("vm-a/vm.toml")
            && stderr.contains("[boot] kernel")
            && stderr.contains("missing-kernel"),
        "{stderr}"
    );
}

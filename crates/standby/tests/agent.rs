//! Black-box: a backup server whose host runs `standby agent`, all real processes. The server is
//! registered with `standby servers add`, the agent enrolls with the token, pushes its manifest's
//! plans, and runs what a VSPC client starts; either side is killed with SIGKILL mid-run; an agent
//! that is gone past the step deadline fails its VMs with the reason; tokens and credentials are
//! refused when they should be.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::agent::*;
use common::*;
use serde_json::Value;
use uuid::Uuid;

const SERVER: &str = "dr-host-1";
const PLAN: &str = "Payroll DR";

/// A manifest: one plan of three VMs (and a second plan of one), sim boots of `boot_ms`, a
/// pre-failover command that leaves a file named after the session in `marks` and prints a line.
fn manifest(boot_ms: (u64, u64), marks: &Path) -> String {
    format!(
        r#"driver = "sim"

[sim]
boot_ms = [{low}, {high}]
undo_ms = 100

[[plans]]
name = "{PLAN}"
type = "Local"
pre_failover_command = "touch {marks}/pre-$STANDBY_SESSION_UID-test$STANDBY_TEST && echo pre-failover ran for $STANDBY_PLAN_NAME"
post_failover_command = ""
script_timeout_seconds = 30

[[plans.vms]]
name = "payroll-db"
restore_point_count = 3
restore_point_interval_minutes = 60

[[plans.vms]]
name = "payroll-app"
restore_point_count = 3
restore_point_interval_minutes = 60

[[plans.vms]]
name = "payroll-web"
restore_points = ["2026-12-01T00:00:00Z", "2026-12-01T06:00:00Z"]

[[plans]]
name = "Second plan"
type = "Local"

[[plans.vms]]
name = "second-vm"
restore_point_count = 1
"#,
        low = boot_ms.0,
        high = boot_ms.1,
        marks = marks.display()
    )
}

/// Each operation in the ledger executed exactly once, and ended as `outcome`.
fn assert_each_ran_once(ledger: &[Value], outcome: &str) {
    assert!(!ledger.is_empty(), "an empty ledger");
    for entry in ledger {
        assert_eq!(entry["executions"], 1, "executed other than once: {entry}");
        assert_eq!(entry["outcome"], outcome, "{entry}");
    }
}

struct Host {
    _dir: tempfile::TempDir,
    config: PathBuf,
    state_dir: PathBuf,
    marks: PathBuf,
}

fn host(boot_ms: (u64, u64)) -> Host {
    let dir = tempfile::tempdir().expect("temp dir");
    let marks = dir.path().join("marks");
    std::fs::create_dir_all(&marks).expect("marks dir");
    let config = dir.path().join("host.toml");
    std::fs::write(&config, manifest(boot_ms, &marks)).expect("write the manifest");
    Host {
        state_dir: dir.path().join("state"),
        config,
        marks,
        _dir: dir,
    }
}

async fn server_app(extra: &[&str]) -> TestApp {
    TestApp::with_fleet(&one_plan_fleet("Sim plan", 1), extra).await
}

/// A server, a host with simulated boots of `boot_ms`, its agent enrolled, its plan listed.
struct Running {
    app: TestApp,
    host: Host,
    agent: Agent,
    uid: String,
}

async fn running(boot_ms: (u64, u64), extra: &[&str]) -> Running {
    let app = server_app(extra).await;
    let host = host(boot_ms);
    let token = add_server(&app, SERVER);
    let agent = Agent::start(&app.base, &host.config, &host.state_dir, Some(&token));
    let uid = plan_uid(&app).await;
    Running {
        app,
        host,
        agent,
        uid,
    }
}

/// The UID of the agent's plan, once it is listed.
async fn plan_uid(app: &TestApp) -> String {
    wait_for_plan(app, PLAN).await["instanceUid"]
        .as_str()
        .expect("uid")
        .to_owned()
}

async fn backup_server(app: &TestApp, name: &str) -> Value {
    let (status, body) = app
        .get_json("/api/v3/extensions/backupServers", &[("limit", "100")])
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]
        .as_array()
        .expect("servers")
        .iter()
        .find(|server| server["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no server {name}: {body}"))
}

async fn start_plan(app: &TestApp, uid: &str, test: bool) {
    let mut request = app.post(&format!("{PLANS}/{uid}/start"));
    if test {
        request = request.query(&[("test", "true")]);
    }
    let (status, body) = send(request).await;
    assert!(status == 200 || status == 202, "start: {status} {body}");
}

/// The plan's last session with its log lines (`lastSession.detailedMessages`).
async fn session_log(app: &TestApp, plan: &str) -> String {
    app.plan(plan).await["lastSession"].to_string()
}

#[tokio::test]
async fn a_plan_on_an_agents_host_runs_from_a_vspc_start_through_the_agent_and_back() {
    let app = server_app(&[]).await;
    let host = host((150, 300));
    let token = add_server(&app, SERVER);
    let (ok, listed, _) = standby_cli(&app, &["servers", "list"]);
    assert!(
        ok && listed.contains(SERVER) && listed.contains("enrolling"),
        "{listed}"
    );
    let agent = Agent::start(&app.base, &host.config, &host.state_dir, Some(&token));

    let plan = wait_for_plan(&app, PLAN).await;
    let uid = plan["instanceUid"].as_str().expect("uid").to_owned();
    let vms: Vec<String> = app
        .objects_of(&uid)
        .await
        .iter()
        .map(|vm| vm["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(vms, ["payroll-app", "payroll-db", "payroll-web"], "by name");
    let server = backup_server(&app, SERVER).await;
    assert_eq!(server["connector"], "agent");
    assert_eq!(server["online"], true, "{server}");
    assert_eq!(server["enrolled"], true, "{server}");
    assert_eq!(server["agentVersion"], env!("CARGO_PKG_VERSION"));
    // The credential file is the agent's alone.
    let mode = std::fs::metadata(host.state_dir.join("credential"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .expect("a credential file");
    assert_eq!(mode, 0o600);

    start_plan(&app, &uid, true).await;
    let plan = app.wait_for(&uid, &["Success", "Failed"]).await;
    assert_eq!(
        plan["status"],
        "Success",
        "{}",
        session_log(&app, &uid).await
    );
    let log = session_log(&app, &uid).await;
    assert!(log.contains("pre-failover ran for Payroll DR"), "{log}");
    // The pre-failover command ran on the host, told it was a test.
    let marks: Vec<String> = std::fs::read_dir(&host.marks)
        .expect("marks")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert_eq!(marks.len(), 1, "{marks:?}");
    assert!(marks[0].ends_with("-test1"), "{marks:?}");

    let (status, body) = send(app.post(&format!("{PLANS}/{uid}/undo"))).await;
    assert!(status == 200 || status == 202, "undo: {status} {body}");
    let plan = app.wait_for(&uid, &["Ready", "UndoFailed", "Failed"]).await;
    assert_eq!(plan["status"], "Ready", "{}", session_log(&app, &uid).await);

    // Three failovers, the script, three undos: each executed once on the host.
    let ledger = agent.ledger();
    assert_each_ran_once(&ledger, "succeeded");
    let actions: Vec<&str> = ledger.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "failover").count(),
        3,
        "{ledger:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| **a == "undo").count(),
        3,
        "{ledger:?}"
    );
    assert_eq!(
        actions.iter().filter(|a| **a == "script").count(),
        1,
        "{ledger:?}"
    );
}

#[tokio::test]
async fn the_agent_killed_mid_run_resumes_and_runs_nothing_twice() {
    let Running {
        app,
        host,
        mut agent,
        uid,
    } = running((2_500, 3_500), &[]).await;
    start_plan(&app, &uid, false).await;
    // Mid-run: a VM is booting on the host.
    agent.wait_for_a_failover().await;
    agent.signal("KILL");
    agent.kill();
    let agent = Agent::start(&app.base, &host.config, &host.state_dir, None);
    let plan = app.wait_for(&uid, &["Completed", "Failed"]).await;
    assert_eq!(
        plan["status"],
        "Completed",
        "{}",
        session_log(&app, &uid).await
    );
    let ledger = agent.ledger();
    assert_each_ran_once(&ledger, "succeeded");
    assert_eq!(
        ledger.iter().filter(|e| e["action"] == "failover").count(),
        3,
        "{ledger:?}"
    );
}

#[tokio::test]
async fn the_control_plane_killed_mid_run_finds_the_agent_again_and_the_run_completes() {
    let Running {
        app,
        host: _host,
        agent,
        uid,
    } = running((2_500, 3_500), &[]).await;
    start_plan(&app, &uid, false).await;
    agent.wait_for_a_failover().await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let store = app.stop().expect("the app's store");
    // Down for a while: the agent keeps booting, and cannot report.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let app = TestApp::start(&store, &["--listen", &address]).await;
    let plan = app.wait_for(&uid, &["Completed", "Failed"]).await;
    assert_eq!(
        plan["status"],
        "Completed",
        "{}",
        session_log(&app, &uid).await
    );
    let ledger = agent.ledger();
    assert_each_ran_once(&ledger, "succeeded");
}

#[tokio::test]
async fn an_agent_gone_past_the_step_deadline_fails_its_vms_with_the_reason() {
    let Running {
        app,
        host: _host,
        agent,
        uid,
    } = running(
        (100, 200),
        &[
            "--vm-step-timeout-seconds",
            "6",
            "--agent-offline-seconds",
            "3",
        ],
    )
    .await;
    // Stopped, not dead: it holds its connections and says nothing.
    agent.signal("STOP");
    tokio::time::sleep(Duration::from_secs(7)).await;
    let server = backup_server(&app, SERVER).await;
    assert_eq!(server["online"], false, "{server}");
    start_plan(&app, &uid, false).await;
    let started = Instant::now();
    let plan = app.wait_for(&uid, &["Completed", "Failed"]).await;
    assert_eq!(plan["status"], "Failed");
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "{:?}",
        started.elapsed()
    );
    let log = session_log(&app, &uid).await;
    assert!(
        log.contains(&format!("backup server {SERVER} offline since")),
        "{log}"
    );
    agent.signal("CONT");
}

#[tokio::test]
async fn enrollment_tokens_work_once_and_only_until_they_expire() {
    let app = server_app(&[]).await;
    let first = host((100, 200));
    let token = add_server(&app, SERVER);

    // A wrong token: refused, and the agent says so.
    let mut wrong = Agent::start(
        &app.base,
        &first.config,
        &first.state_dir,
        Some("sbe_wrong"),
    );
    let (status, said) = wrong.exit(Duration::from_secs(30));
    assert!(!status.success());
    assert!(said.contains("enrollment refused"), "{said}");
    assert!(!first.state_dir.join("credential").exists());

    // The right one, once.
    let agent = Agent::start(&app.base, &first.config, &first.state_dir, Some(&token));
    wait_for_plan(&app, PLAN).await;
    let second = host((100, 200));
    let mut reuse = Agent::start(&app.base, &second.config, &second.state_dir, Some(&token));
    let (status, said) = reuse.exit(Duration::from_secs(30));
    assert!(!status.success());
    assert!(said.contains("enrollment refused"), "{said}");
    drop(agent);

    // An expired token: issued, then made to expire in the store.
    let other = add_server(&app, "dr-host-2");
    let store = app.store().open().await;
    let agents = store.agents();
    let server = agents
        .server_by_name("dr-host-2")
        .await
        .expect("read")
        .expect("the server");
    let expired = standby_model::Timestamp::now().plus_millis(-1_000);
    agents
        .reenroll(
            server.uid,
            &standby_api::secrets::token_hash(&other),
            expired,
        )
        .await
        .expect("expire the token");
    store.close().await;
    let late = host((100, 200));
    let mut agent = Agent::start(&app.base, &late.config, &late.state_dir, Some(&other));
    let (status, said) = agent.exit(Duration::from_secs(30));
    assert!(!status.success());
    assert!(said.contains("enrollment refused"), "{said}");

    // The enrollment attempts are in the audit trail.
    let (_, audit) = app
        .get_json("/api/v3/extensions/audit", &[("limit", "100")])
        .await;
    let enrollments: Vec<&Value> = audit["data"]
        .as_array()
        .expect("audit")
        .iter()
        .filter(|e| e["action"] == "agent.enroll")
        .collect();
    assert_eq!(
        enrollments
            .iter()
            .filter(|e| e["outcome"] == "success")
            .count(),
        1
    );
    assert_eq!(
        enrollments
            .iter()
            .filter(|e| e["outcome"] == "refused")
            .count(),
        3
    );
}

#[tokio::test]
async fn an_agents_credential_serves_its_server_only_and_a_revoked_one_stops_the_agent() {
    let app = server_app(&[]).await;
    let host = host((100, 200));
    let token = add_server(&app, SERVER);
    // A password in the control URL (a proxy's, say) is neither sent nor logged.
    let url = app
        .base
        .replace("http://", "http://proxy-user:hunter2-secret@");
    let mut agent = Agent::start(&url, &host.config, &host.state_dir, Some(&token));
    wait_for_plan(&app, PLAN).await;
    let credential = std::fs::read_to_string(host.state_dir.join("credential"))
        .expect("the credential")
        .trim()
        .to_owned();
    assert!(credential.starts_with("sba_"));
    assert!(
        !agent.stderr().contains(&credential),
        "the credential is in the agent's log"
    );
    assert!(
        !agent.stderr().contains("hunter2-secret") && !agent.stderr().contains(&token),
        "the URL's password or the token is in the agent's log"
    );
    // Every VSPC route and every user extension refuses it.
    for path in [
        PLANS.to_owned(),
        OBJECTS.to_owned(),
        "/api/v3/asyncActions".to_owned(),
        "/api/v3/extensions/backupServers".to_owned(),
        "/api/v3/extensions/audit".to_owned(),
    ] {
        let (status, body) = send(
            app.http
                .get(app.url(&path))
                .bearer_auth(&credential)
                .header("x-client-version", "3.6.1"),
        )
        .await;
        assert_eq!(status, 401, "{path}: {body}");
    }
    // And the agent routes refuse a user's token.
    let (status, _) = send(
        app.http
            .get(app.url("/api/v3/extensions/agent/commands"))
            .query(&[("waitSeconds", "0")])
            .bearer_auth(&app.token),
    )
    .await;
    assert_eq!(status, 401);

    // A test failover, so the ledger has something to keep across the reenrollment.
    let uid = plan_uid(&app).await;
    start_plan(&app, &uid, true).await;
    assert_eq!(
        app.wait_for(&uid, &["Success", "Failed"]).await["status"],
        "Success"
    );

    // Reenrolled: the running agent's credential is refused; it says so and exits non-zero.
    let (ok, stdout, stderr) = standby_cli(&app, &["servers", "reenroll", SERVER]);
    assert!(ok, "{stderr}");
    let token = stdout.lines().last().unwrap_or_default().trim().to_owned();
    assert!(token.starts_with("sbe_"), "{stdout}");
    let (status, said) = agent.exit(Duration::from_secs(30));
    assert!(!status.success());
    assert!(said.contains("revoked"), "{said}");
    assert_eq!(backup_server(&app, SERVER).await["enrolled"], false);

    // Started again with the new token on the same state dir: enrolled again, its ledger kept,
    // and the undo of what it failed over before runs.
    let agent = Agent::start(&app.base, &host.config, &host.state_dir, Some(&token));
    let deadline = Instant::now() + Duration::from_secs(30);
    while backup_server(&app, SERVER).await["enrolled"] != true {
        assert!(
            Instant::now() < deadline,
            "not enrolled again: {}",
            agent.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = send(app.post(&format!("{PLANS}/{uid}/undo"))).await;
    assert!(status == 200 || status == 202, "undo: {status} {body}");
    let plan = app.wait_for(&uid, &["Ready", "UndoFailed", "Failed"]).await;
    assert_eq!(plan["status"], "Ready", "{}", session_log(&app, &uid).await);
    let ledger = agent.ledger();
    assert_each_ran_once(&ledger, "succeeded");
    assert_eq!(
        ledger.len(),
        7,
        "3 failovers, the script, 3 undos: {ledger:?}"
    );
    drop(agent);

    // A server with a plan running cannot be removed; a quiet one can.
    let (ok, _, stderr) = standby_cli(&app, &["servers", "remove", SERVER]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = standby_cli(&app, &["servers", "remove", SERVER]);
    assert!(!ok && stderr.contains("no backup server"), "{stderr}");
    assert!(
        !app.all_plans()
            .await
            .iter()
            .any(|plan| plan["name"] == PLAN),
        "its plans are gone"
    );
}

#[tokio::test]
async fn a_server_is_not_removed_while_a_plan_on_it_runs() {
    let Running {
        app,
        host: _host,
        agent: _agent,
        uid,
    } = running((3_000, 4_000), &[]).await;
    start_plan(&app, &uid, true).await;
    let (ok, _, stderr) = standby_cli(&app, &["servers", "remove", SERVER]);
    assert!(!ok, "removed while running");
    assert!(stderr.contains(PLAN), "{stderr}");
    let server = backup_server(&app, SERVER).await;
    let (status, body) = send(
        app.http
            .delete(app.url(&format!(
                "/api/v3/extensions/backupServers/{}",
                server["instanceUid"].as_str().expect("uid")
            )))
            .bearer_auth(&app.token),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    app.wait_for(&uid, &["Success", "Failed"]).await;
}

/// A network namespace of its own, joined to this one by a veth pair; removed on drop.
struct Namespace {
    name: String,
    /// The veth end in this namespace (gone with the namespace, unless setting up failed).
    host_end: String,
    host_address: String,
}

impl Namespace {
    /// `None` where namespaces cannot be made (no CAP_NET_ADMIN).
    fn create() -> Option<Namespace> {
        let id = std::process::id() % 200 + 20;
        let name = format!("sbtest{id}");
        let (host_end, agent_end) = (format!("sbh{id}"), format!("sba{id}"));
        let host_address = format!("10.231.{id}.1");
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|status| status.success())
        };
        // What a run killed before its cleanup may have left.
        let _ = ip(&["netns", "del", &name]);
        let _ = ip(&["link", "del", &host_end]);
        if !ip(&["netns", "add", &name]) {
            return None;
        }
        let namespace = Namespace {
            name: name.clone(),
            host_end: host_end.clone(),
            host_address: host_address.clone(),
        };
        let steps: [&[&str]; 7] = [
            &[
                "link", "add", &host_end, "type", "veth", "peer", "name", &agent_end,
            ],
            &["link", "set", &agent_end, "netns", &name],
            &[
                "addr",
                "add",
                &format!("{host_address}/30"),
                "dev",
                &host_end,
            ],
            &["link", "set", &host_end, "up"],
            &[
                "-n",
                &name,
                "addr",
                "add",
                &format!("10.231.{id}.2/30"),
                "dev",
                &agent_end,
            ],
            &["-n", &name, "link", "set", &agent_end, "up"],
            &["-n", &name, "link", "set", "lo", "up"],
        ];
        for step in steps {
            assert!(ip(step), "ip {}", step.join(" "));
        }
        Some(namespace)
    }

    fn exec(&self) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]);
        command
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it, once the pair is set up.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_end])
            .stderr(Stdio::null())
            .status();
    }
}

#[tokio::test]
async fn an_agent_in_its_own_network_namespace_needs_no_inbound_path() {
    let Some(namespace) = Namespace::create() else {
        eprintln!("SKIPPED: no network namespaces here (needs CAP_NET_ADMIN; CI runs as root)");
        return;
    };
    let listen = format!("{}:0", namespace.host_address);
    let app = server_app(&["--listen", &listen]).await;
    let host = host((100, 200));
    let token = add_server(&app, SERVER);
    let mut command = namespace.exec();
    command.arg(binary());
    let agent = Agent::start_with(
        command,
        &app.base,
        &host.config,
        &host.state_dir,
        Some(&token),
    );
    let uid = plan_uid(&app).await;
    // The agent's namespace has no listening socket at all, TCP or UDP, and no route but the veth.
    let listening = namespace
        .exec()
        .args(["ss", "-H", "-l", "-t", "-u", "-n"])
        .output()
        .expect("ss");
    assert!(listening.status.success());
    let sockets = String::from_utf8_lossy(&listening.stdout);
    assert!(
        sockets.trim().is_empty(),
        "listening in the agent's namespace: {sockets}"
    );
    let routes = namespace
        .exec()
        .args(["ip", "route"])
        .output()
        .expect("ip route");
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert!(!routes.contains("default"), "{routes}");

    start_plan(&app, &uid, true).await;
    let plan = app.wait_for(&uid, &["Success", "Failed"]).await;
    assert_eq!(
        plan["status"],
        "Success",
        "{}",
        session_log(&app, &uid).await
    );
    assert_each_ran_once(&agent.ledger(), "succeeded");
}

#[tokio::test]
async fn a_command_patched_on_the_control_plane_does_not_run_on_the_host() {
    let Running {
        app,
        host,
        agent: _agent,
        uid,
    } = running((100, 200), &[]).await;
    let pwned = host.marks.join("pwned");
    let patch = serde_json::json!([{
        "op": "replace",
        "path": "preFailoverCommand",
        "value": format!("touch {}", pwned.display()),
    }]);
    let (status, body) = send(app.patch(&format!("{PLANS}/{uid}"), &patch)).await;
    assert_eq!(status, 200, "{body}");
    start_plan(&app, &uid, true).await;
    app.wait_for(&uid, &["Success", "Failed"]).await;
    let log = session_log(&app, &uid).await;
    assert!(log.contains("only the manifest's command runs"), "{log}");
    assert!(!pwned.exists(), "the patched command ran on the host");
}

/// Enrolls over HTTP (as an agent would) and answers the credential.
async fn enroll_over_http(app: &TestApp, token: &str) -> String {
    let (status, body) = send(
        app.http
            .post(app.url("/api/v3/extensions/agent/enroll"))
            .json(&serde_json::json!({"token": token, "agentVersion": "test"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["credential"]
        .as_str()
        .expect("credential")
        .to_owned()
}

fn inventory(plan: &str, plan_type: &str, tenant: Option<&str>, vms: &[&str]) -> Value {
    serde_json::json!({
        "agentVersion": "test",
        "driver": "sim",
        "plans": [{
            "name": plan,
            "type": plan_type,
            "tenant": tenant,
            "vms": vms.iter().map(|vm| serde_json::json!({
                "name": vm,
                "restorePoints": ["2026-12-01T00:00:00Z"],
            })).collect::<Vec<_>>(),
        }],
    })
}

#[tokio::test]
async fn agent_routes_refuse_bad_input_and_keep_companies_apart() {
    let app = TestApp::demo().await;
    let (ok, stdout, stderr) = standby_cli(
        &app,
        &["servers", "add", "fab-host", "--org", "Fabrikam Inc"],
    );
    assert!(ok, "{stderr}");
    let token = stdout.lines().last().unwrap_or_default().trim().to_owned();
    let credential = enroll_over_http(&app, &token).await;
    let put = |body: Value| {
        app.http
            .put(app.url("/api/v3/extensions/agent/inventory"))
            .bearer_auth(&credential)
            .json(&body)
    };

    // Bad inventories: a 4xx in the error envelope each, and nothing written.
    let bad: [(Value, u16, &str); 6] = [
        (
            serde_json::json!({"agentVersion": "x"}),
            400,
            "missing field",
        ),
        (
            inventory("A/B", "Local", None, &["vm"]),
            400,
            "contains '/'",
        ),
        (inventory("P", "Local", None, &["vm", "vm"]), 400, "twice"),
        (
            inventory("P", "Tenant", None, &["vm"]),
            400,
            "names no tenant",
        ),
        (inventory("P", "Weird", None, &["vm"]), 400, "type must be"),
        // Another company's tenant is not this server's to use.
        (
            inventory("P", "Tenant", Some("contoso-cloud"), &["vm"]),
            409,
            "another company",
        ),
    ];
    for (body, expected, says) in bad {
        let (status, answer) = send(put(body.clone())).await;
        assert_eq!(status, expected, "{body}: {answer}");
        let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: {answer}");
    }
    let (status, answer) = send(
        app.http
            .put(app.url("/api/v3/extensions/agent/inventory"))
            .bearer_auth(&credential)
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = send(
        app.http
            .get(app.url("/api/v3/extensions/agent/commands"))
            .query(&[("waitSeconds", "99")])
            .bearer_auth(&credential),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    let (_, tenant_plans) = app.get_json(PLANS, &[("limit", "500")]).await;
    assert!(
        !tenant_plans["data"]
            .as_array()
            .expect("plans")
            .iter()
            .any(|p| p["name"] == "P"),
        "a refused inventory wrote a plan"
    );

    // A good one with a new tenant: created in the server's company, visible to that company
    // only, and the server too.
    let (status, answer) = send(put(inventory(
        "Fab DR",
        "Tenant",
        Some("fabrikam-dr"),
        &["a", "b"],
    )))
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["vms"], 2);
    let fabrikam = app.token_for("fabrikam-admin", DEMO_PASSWORD).await;
    let contoso = app.token_for("contoso-owner", DEMO_PASSWORD).await;
    for (token, sees) in [(&fabrikam, true), (&contoso, false)] {
        let (_, plans) = send(
            app.http
                .get(app.url(PLANS))
                .query(&[("limit", "500")])
                .bearer_auth(token),
        )
        .await;
        let listed = plans["data"]
            .as_array()
            .expect("plans")
            .iter()
            .any(|p| p["name"] == "Fab DR");
        assert_eq!(listed, sees, "{plans}");
        let (_, servers) = send(
            app.http
                .get(app.url("/api/v3/extensions/backupServers"))
                .bearer_auth(token),
        )
        .await;
        let listed = servers["data"]
            .as_array()
            .expect("servers")
            .iter()
            .any(|s| s["name"] == "fab-host");
        assert_eq!(listed, sees, "{servers}");
    }
    // Only provider administrators add servers.
    let (status, _) = send(
        app.http
            .post(app.url("/api/v3/extensions/backupServers"))
            .bearer_auth(&fabrikam)
            .json(&serde_json::json!({"name": "x", "organizationUid": Uuid::nil()})),
    )
    .await;
    assert_eq!(status, 403);
    // A result for an operation the server never queued changes nothing and is no error.
    let (status, answer) = send(
        app.http
            .post(app.url("/api/v3/extensions/agent/results"))
            .bearer_auth(&credential)
            .json(&serde_json::json!({"results": [{"operationId": "nobody/nothing", "outcome": "succeeded"}]})),
    )
    .await;
    assert_eq!(
        (status, &answer["data"]["finished"]),
        (200, &serde_json::json!(0)),
        "{answer}"
    );
}

/// A process that does not outlive its test, whatever the test's end.
struct KilledOnDrop(Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_agent_verifies_the_control_planes_certificate() {
    let temp = tempfile::tempdir().expect("temp dir");
    // A certificate authority of our own, and the server's certificate signed by it.
    let made = Command::new("sh")
        .current_dir(temp.path())
        .args([
            "-c",
            "set -e
             printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > leaf.ext
             openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj '/CN=Standby test CA' \\
                 -keyout ca.key -out ca.pem 2>/dev/null
             openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout key.pem \\
                 -out leaf.csr 2>/dev/null
             openssl x509 -req -days 1 -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial \\
                 -extfile leaf.ext -out cert.pem 2>/dev/null",
        ])
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let file = |name: &str| temp.path().join(name);
    let data = file("data");
    std::fs::write(file("fleet.toml"), one_plan_fleet("Sim plan", 1)).expect("fleet");
    let mut server = KilledOnDrop(
        Command::new(binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .arg("--fleet")
            .arg(file("fleet.toml"))
            .arg("--tls-cert")
            .arg(file("cert.pem"))
            .arg("--tls-key")
            .arg(file("key.pem"))
            .env("STANDBY_ADMIN_USER", ADMIN)
            .env("STANDBY_ADMIN_PASSWORD", PASSWORD)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("serve"),
    );
    let stdout = server.0.stdout.take().expect("stdout");
    let base = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            line.strip_prefix("standby: listening on ")
                .map(str::to_owned)
        })
        .expect("a listening line");
    assert!(base.starts_with("https://"), "{base}");
    let cli = |args: &[&str]| {
        let output = Command::new(binary())
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .expect("standby");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let token = cli(&["servers", "add", SERVER, "--org", "MSP"])
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned();

    // Without the CA: the certificate is refused, nothing is enrolled.
    let untrusting = host((100, 200));
    let mut agent = Agent::start(
        &base,
        &untrusting.config,
        &untrusting.state_dir,
        Some(&token),
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!untrusting.state_dir.join("credential").exists());
    let said = agent.stderr();
    assert!(said.contains("invalid peer certificate"), "{said}");
    agent.kill();

    // With it (`--ca-cert`, here as its environment variable): enrolled, and online.
    let trusting = host((100, 200));
    let mut command = Command::new(binary());
    command.env("STANDBY_AGENT_CA_CERT", file("ca.pem"));
    let _agent = Agent::start_with(
        command,
        &base,
        &trusting.config,
        &trusting.state_dir,
        Some(&token),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed: Value =
            serde_json::from_str(&cli(&["servers", "list", "-o", "json"])).expect("json");
        let server = listed
            .as_array()
            .and_then(|servers| servers.iter().find(|s| s["name"] == SERVER).cloned())
            .unwrap_or_default();
        if server["online"] == true && server["enrolled"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "not online over HTTPS: {server}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn what_the_host_stops_reporting_goes_unless_a_session_remembers_it() {
    let app = server_app(&["--vm-step-timeout-seconds", "2"]).await;
    let token = add_server(&app, SERVER);
    let credential = enroll_over_http(&app, &token).await;
    let push = |plans: Vec<(&str, Vec<&str>)>| {
        let plans: Vec<Value> = plans
            .into_iter()
            .map(|(name, vms)| inventory(name, "Local", None, &vms)["plans"][0].clone())
            .collect();
        app.http
            .put(app.url("/api/v3/extensions/agent/inventory"))
            .bearer_auth(&credential)
            .json(&serde_json::json!({"agentVersion": "test", "driver": "sim", "plans": plans}))
    };
    let (status, body) = send(push(vec![("A", vec!["a", "b"]), ("B", vec!["c"])])).await;
    assert_eq!(status, 200, "{body}");
    // B gets a history: a run that fails (no agent executes it) within the 2 s step deadline.
    let b = wait_for_plan(&app, "B").await["instanceUid"]
        .as_str()
        .expect("uid")
        .to_owned();
    start_plan(&app, &b, true).await;
    assert_eq!(
        app.wait_for(&b, &["Success", "Failed"]).await["status"],
        "Failed"
    );

    // VM b and plan B are no longer reported: b goes (it never ran), B stays (it did).
    let (status, body) = send(push(vec![("A", vec!["a"])])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["plansKept"],
        serde_json::json!(["B"]),
        "{body}"
    );
    assert_eq!(
        body["data"]["plansRemoved"],
        serde_json::json!([]),
        "{body}"
    );
    let a = wait_for_plan(&app, "A").await;
    assert_eq!(a["objectsCount"], 1, "{a}");
    let vms: Vec<Value> = app
        .objects_of(a["instanceUid"].as_str().expect("uid"))
        .await;
    assert_eq!(vms.len(), 1);
    assert_eq!(vms[0]["name"], "a");

    // Nothing reported: A goes, B stays with its history.
    let (status, body) = send(push(vec![])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["plansRemoved"],
        serde_json::json!(["A"]),
        "{body}"
    );
    let names: Vec<Value> = app
        .all_plans()
        .await
        .into_iter()
        .map(|p| p["name"].clone())
        .collect();
    assert!(!names.contains(&serde_json::json!("A")), "{names:?}");
    assert!(names.contains(&serde_json::json!("B")), "{names:?}");
}

//! Black-box: the `standby` command line (fleet import, config file, environment).

mod common;

use std::process::Command;

use common::*;
use serde_json::json;

const FLEET: &str = r#"
[[organizations]]
name = "Acme MSP"
kind = "provider"

[[organizations]]
name = "Globex"
kind = "company"
tenants = ["globex-cc"]

[[servers]]
name = "vbr-01"
organization = "Acme MSP"

[[plans]]
name = "Globex web"
server = "vbr-01"
type = "Tenant"
tenant = "globex-cc"
pre_failover_command = "C:\\pre.cmd"
schedule = { every_hours = 6, days = 2 }

  [[plans.vms]]
  name = "web2"
  boot_delay_seconds = 30

  [[plans.vms]]
  name = "web10"
  host = "esx-01"
  folder = "Replicas"
  path = "vc\\DC\\web10"
  restore_points = ["2026-11-01T10:00:00Z", "2026-11-02"]

[[plans]]
name = "Local ops"
server = "vbr-01"
type = "Local"
"#;

fn standby(args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .args(args)
        .output()
        .expect("run standby")
}

#[tokio::test]
async fn fleet_import_is_idempotent_and_served() {
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("fleet.toml");
    std::fs::write(&file, FLEET).unwrap();
    let store = TestStore::fresh().await;
    let import = [
        &["fleet", "import", file.to_str().unwrap()][..],
        &store.args(),
    ]
    .concat();
    let first = standby(&import);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("2 plans, 2 VMs"));
    let second = standby(&import);
    assert!(second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("0 new restore points"),
        "{}",
        String::from_utf8_lossy(&second.stdout)
    );

    let app = TestApp::start(&store, &[]).await;
    let plans = app.all_plans().await;
    assert_eq!(plans.len(), 2);
    let web = plans.iter().find(|p| p["name"] == "Globex web").unwrap();
    assert_eq!(web["type"], "Tenant");
    assert!(web["tenantUid"].is_string());
    assert_eq!(web["objectsCount"], 2);
    assert_eq!(web["preFailoverCommand"], "C:\\pre.cmd");
    assert_eq!(web["status"], "Ready");
    assert!(web["lastSession"].is_null());
    let local = plans.iter().find(|p| p["name"] == "Local ops").unwrap();
    assert!(local["tenantUid"].is_null());
    let (_, objects) = app
        .get_json(
            &format!("{PLANS}/{}/objects", web["instanceUid"].as_str().unwrap()),
            &[],
        )
        .await;
    let vms = objects["data"].as_array().unwrap();
    assert_eq!(vms.len(), 2);
    let web10 = vms.iter().find(|vm| vm["name"] == "web10").unwrap();
    assert_eq!(web10["path"], "vc\\DC\\web10");
    assert_eq!(web10["hostName"], "esx-01");
    assert!(vms.iter().all(|vm| vm.get("restoreSession").is_none()));
    // Natural order puts web2 before web10; ordinal does not.
    let sort =
        json!([{"property": "name", "direction": "ascending", "collation": "lexicographic"}])
            .to_string();
    let (_, sorted) = app
        .get_json(
            &format!("{PLANS}/{}/objects", web["instanceUid"].as_str().unwrap()),
            &[("sort", &sort)],
        )
        .await;
    assert_eq!(sorted["data"][0]["name"], "web2");
    let (_, ordinal) = app
        .get_json(
            &format!("{PLANS}/{}/objects", web["instanceUid"].as_str().unwrap()),
            &[],
        )
        .await;
    assert_eq!(ordinal["data"][0]["name"], "web10");
}

#[test]
fn bad_fleet_files_fail_with_a_clear_message() {
    let temp = tempfile::tempdir().unwrap();
    for (content, expected) in [
        (
            FLEET.replace(
                "server = \"vbr-01\"\ntype = \"Local\"",
                "server = \"vbr-99\"\ntype = \"Local\"",
            ),
            "unknown server 'vbr-99'",
        ),
        ("[[plans]\n".to_owned(), "not valid TOML"),
        (
            FLEET.replace("kind = \"company\"", "kind = \"customer\""),
            "kind must be 'provider' or 'company'",
        ),
    ] {
        let file = temp.path().join("bad.toml");
        std::fs::write(&file, content).unwrap();
        let output = standby(&[
            "fleet",
            "import",
            file.to_str().unwrap(),
            "--data-dir",
            temp.path().join("d").to_str().unwrap(),
        ]);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
    let output = standby(&["fleet", "import", "/no/such/file.toml"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/no/such/file.toml"));
}

#[tokio::test]
async fn the_demo_prints_as_a_fleet_file_that_imports() {
    let temp = tempfile::tempdir().unwrap();
    let demo = standby(&["fleet", "demo"]);
    assert!(demo.status.success());
    let file = temp.path().join("demo.toml");
    std::fs::write(&file, &demo.stdout).unwrap();
    let imported = standby(&[
        "fleet",
        "import",
        file.to_str().unwrap(),
        "--data-dir",
        temp.path().join("d").to_str().unwrap(),
    ]);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert!(String::from_utf8_lossy(&imported.stdout).contains("40 plans"));
}

#[tokio::test]
async fn config_file_settings_apply_and_flags_override_them() {
    let temp = tempfile::tempdir().unwrap();
    let config = temp.path().join("standby.toml");
    std::fs::write(&config, "demo = true\nmax_page_size = 50\n").unwrap();
    let app = TestApp::start(
        &TestStore::at_dir(&temp.path().join("data")),
        &["--config", config.to_str().unwrap()],
    )
    .await;
    let (status, body) = app.get_json(PLANS, &[("limit", "51")]).await;
    assert_error(status, &body, 400, 400, Some("limit"));
    let (_, body) = app.get_json(PLANS, &[]).await;
    assert_eq!(
        body["meta"]["pagingInfo"]["count"], 40,
        "the demo was loaded from the config file"
    );
    drop(app);
    let app = TestApp::start(
        &TestStore::at_dir(&temp.path().join("data")),
        &[
            "--config",
            config.to_str().unwrap(),
            "--max-page-size",
            "500",
        ],
    )
    .await;
    let (status, _) = app.get_json(PLANS, &[("limit", "500")]).await;
    assert_eq!(status, 200);

    std::fs::write(&config, "colour = \"blue\"\n").unwrap();
    let output = standby(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        temp.path().join("x").to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unknown field"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_generated_admin_password_is_printed_once() {
    let temp = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            temp.path().to_str().unwrap(),
        ])
        .env_remove("STANDBY_ADMIN_USER")
        .env_remove("STANDBY_ADMIN_PASSWORD")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let first = lines.next().unwrap().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        first.starts_with("standby: created portal administrator 'admin' with password "),
        "{first}"
    );
}

#[tokio::test]
async fn a_client_that_sends_its_headers_slowly_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let store = TestStore::fresh().await;
    let app = TestApp::start(&store, &["--header-read-timeout-seconds", "1"]).await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    // Half a request, then silence: the server must not hold the connection open.
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: standby\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut buffer),
    )
    .await;
    assert!(read.is_ok(), "the connection was still open after 20 s");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    // A complete request on a new connection is answered as usual. (A fresh client: the timeout
    // also closes idle keep-alive connections, such as the one the test harness logged in on.)
    let fresh = http_client();
    let (status, _) = send(fresh.get(app.url("/healthz"))).await;
    assert_eq!(status, 200);
}

/// Started empty, an installation has its own provider organization ("Standby"); a fleet that
/// names another provider, imported later, must still be visible to the first administrator.
#[tokio::test]
async fn a_fleet_imported_into_a_running_empty_installation_is_served() {
    let store = TestStore::fresh().await;
    let app = TestApp::start(&store, &[]).await;
    assert_eq!(app.all_plans().await.len(), 0);
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("fleet.toml");
    std::fs::write(&file, FLEET).unwrap();
    let import = [
        &["fleet", "import", file.to_str().unwrap()][..],
        &store.args(),
    ]
    .concat();
    let imported = standby(&import);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    // Another process wrote the store: the server's cached reads notice it through the
    // database's change marker, polled every 200 ms (standby_store::freshness).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while app.all_plans().await.len() != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the imported plans never showed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, actions) = app.get_json("/api/v3/extensions/audit", &[]).await;
    assert!(actions["data"].is_array(), "still provider-wide: {actions}");
}

/// An installation moves to another store with `standby store copy` and is served from there
/// exactly as before: the same plans, users and history.
#[tokio::test]
async fn store_copy_moves_an_installation() {
    let app = TestApp::demo().await;
    let before = app.all_plans().await;
    let (_, history) = app
        .get_json(
            &format!(
                "/api/v3/extensions/failoverplans/{}/sessions",
                before[0]["instanceUid"].as_str().unwrap()
            ),
            &[],
        )
        .await;
    let store = app.stop().unwrap();
    let from = match &store.location {
        standby_store::Location::Sqlite(path) => format!("sqlite://{}", path.display()),
        standby_store::Location::Postgres(url) => url.clone(),
    };
    let temp = tempfile::tempdir().unwrap();
    let to = format!("sqlite://{}", temp.path().join("copy.db").display());
    let copied = standby(&["store", "copy", "--from", &from, "--to", &to]);
    let report = String::from_utf8_lossy(&copied.stdout);
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    assert!(report.contains("every table verified"), "{report}");
    assert!(
        !report.contains("standby-test"),
        "no password in the report"
    );

    let moved = TestApp::start(&TestStore::at_url(&to), &[]).await;
    assert_eq!(moved.all_plans().await, before);
    let (_, moved_history) = moved
        .get_json(
            &format!(
                "/api/v3/extensions/failoverplans/{}/sessions",
                before[0]["instanceUid"].as_str().unwrap()
            ),
            &[],
        )
        .await;
    assert_eq!(moved_history, history);
    moved.login("contoso-owner", DEMO_PASSWORD).await;

    // Copying again into the now non-empty store is refused and changes nothing.
    let again = standby(&["store", "copy", "--from", &from, "--to", &to]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let bad = standby(&["store", "copy", "--from", "mysql://x", "--to", &to]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unsupported database URL"));
}

/// A command leaves a SQLite store closed: the write-ahead log folded back into the database
/// file and removed, so the next open does not replay it (a generated large fleet left one of
/// 380 MB while the change-marker connection was not closed).
#[tokio::test]
async fn commands_leave_no_write_ahead_log_behind() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let generated = standby(&[
        "fleet",
        "generate",
        "--servers",
        "2",
        "--plans-per-server",
        "2",
        "--vms-per-plan",
        "3",
        "--points-per-vm",
        "2",
        "--seed",
        "7",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    assert!(data.join("standby.db").exists());
    assert!(
        !data.join("standby.db-wal").exists(),
        "the write-ahead log was left behind"
    );
}

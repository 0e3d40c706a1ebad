//! Black-box: the operator client (`standby login`, `plans`, `actions`) against a started
//! server, as a script would use it: exit codes, `--output json` parsed back, the saved session.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use common::*;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

const FLEET: &str = r#"
[[organizations]]
name = "Acme MSP"
kind = "provider"

[[organizations]]
name = "Globex"
kind = "company"

[[servers]]
name = "vbr-east"
organization = "Globex"

[[servers]]
name = "vbr-west"
organization = "Globex"

[[plans]]
name = "Globex ERP"
server = "vbr-east"
type = "Local"
schedule = { every_hours = 6, days = 2 }

  [[plans.vms]]
  name = "erp-db"

  [[plans.vms]]
  name = "erp-app"

  [[plans.vms]]
  name = "erp-web"

[[plans]]
name = "Globex Files"
server = "vbr-east"
type = "Local"
schedule = { every_hours = 6, days = 2 }

  [[plans.vms]]
  name = "files-01"

  [[plans.vms]]
  name = "files-02"

[[plans]]
name = "Web"
server = "vbr-east"
type = "Cloud"
schedule = { every_hours = 6, days = 2 }

  [[plans.vms]]
  name = "web-east"

[[plans]]
name = "Web"
server = "vbr-west"
type = "Cloud"
schedule = { every_hours = 6, days = 2 }

  [[plans.vms]]
  name = "web-west"
"#;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not JSON ({e}): {}\n{}", self.stdout, self.stderr)
        })
    }
}

/// Runs the client with its config under `config` (never the tester's own), feeding `stdin`.
async fn standby(config: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut command = tokio::process::Command::new(binary());
    command
        .args(args)
        .env("XDG_CONFIG_HOME", config)
        .env_remove("STANDBY_URL")
        .env_remove("STANDBY_API_KEY")
        .env_remove("STANDBY_OUTPUT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn standby");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.expect("write stdin");
    }
    drop(input);
    let output = child.wait_with_output().await.expect("standby output");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn logged_in(app: &TestApp) -> tempfile::TempDir {
    let config = tempfile::tempdir().unwrap();
    let run = standby(
        config.path(),
        &["login", &app.base, "--user", ADMIN, "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    config
}

#[tokio::test]
async fn login_keeps_a_private_session_and_refuses_bad_passwords() {
    let app = TestApp::with_fleet(FLEET, &[]).await;
    let config = tempfile::tempdir().unwrap();

    let run = standby(config.path(), &["plans", "list"], None).await;
    assert_eq!(run.code, 7, "not logged in: {}", run.stderr);
    assert!(run.stderr.contains("standby login"), "{}", run.stderr);

    let run = standby(
        config.path(),
        &["login", &app.base, "--user", ADMIN, "--password-stdin"],
        Some("wrong password\n"),
    )
    .await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert!(!config.path().join("standby/credentials.json").exists());

    // Without --password-stdin and without a terminal there is nobody to prompt.
    let run = standby(config.path(), &["login", &app.base, "--user", ADMIN], None).await;
    assert_eq!(run.code, 2, "{}", run.stderr);

    let run = standby(
        config.path(),
        &[
            "login",
            &format!("{}/api/v3/", app.base),
            "--user",
            ADMIN,
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let file = config.path().join("standby/credentials.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(
        saved["refresh_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert!(!std::fs::read_to_string(&file).unwrap().contains(PASSWORD));

    // An expired access token is renewed with the refresh token, and the new pair saved.
    let mut expired = saved.clone();
    expired["access_expires_at"] = json!(0);
    std::fs::write(&file, expired.to_string()).unwrap();
    let run = standby(config.path(), &["plans", "list", "-o", "json"], None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let renewed: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_ne!(renewed["refresh_token"], saved["refresh_token"]);
    assert_ne!(renewed["access_token"], saved["access_token"]);

    // A spent refresh token (and a dead access token) means logging in again, exit 7.
    std::fs::write(&file, expired.to_string()).unwrap();
    let run = standby(config.path(), &["plans", "list"], None).await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert!(
        run.stderr.contains("run `standby login` again"),
        "{}",
        run.stderr
    );

    let run = standby(config.path(), &["logout"], None).await;
    assert_eq!(run.code, 0);
    assert!(!file.exists());
}

#[tokio::test]
async fn lists_filter_on_the_server_and_json_is_the_apis_own() {
    let app = TestApp::with_fleet(FLEET, &[]).await;
    let config = logged_in(&app).await;
    let dir = config.path();

    let run = standby(
        dir,
        &["plans", "list", "--name", "globex", "-o", "json"],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let body = run.json();
    let names: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Globex ERP", "Globex Files"]);
    assert_eq!(body["meta"]["pagingInfo"]["total"], 2);
    // The same objects the API serves.
    assert_eq!(body["data"][0], app.plan_named("Globex ERP").await);

    let run = standby(
        dir,
        &[
            "plans",
            "list",
            "--type",
            "cloud",
            "--sort",
            "name:desc",
            "--limit",
            "1",
            "-o",
            "json",
        ],
        None,
    )
    .await;
    let body = run.json();
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["data"][0]["name"], "Web");
    assert_eq!(body["meta"]["pagingInfo"]["total"], 2);

    let run = standby(dir, &["plans", "list", "--all", "--status", "ready"], None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("NAME"), "{}", run.stdout);
    assert_eq!(run.stdout.lines().count(), 5, "{}", run.stdout);
    assert!(run.stderr.contains("4 of 4 plans"), "{}", run.stderr);

    // A status the API does not have is a usage error before any request.
    let run = standby(dir, &["plans", "list", "--status", "broken"], None).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("UndoFailed"), "{}", run.stderr);

    // A server error envelope (sort on a property that does not exist) is refused, exit 5.
    let run = standby(dir, &["plans", "list", "--sort", "colour"], None).await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("sort"), "{}", run.stderr);

    // Plans by server.
    let west = app.plan_named("Globex ERP").await;
    let server = west["backupServerUid"].as_str().unwrap();
    let run = standby(
        dir,
        &["plans", "list", "--server", server, "-o", "json"],
        None,
    )
    .await;
    assert_eq!(run.json()["meta"]["pagingInfo"]["total"], 3);

    let run = standby(dir, &["plans", "objects", "globex erp", "-o", "json"], None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let objects = run.json();
    let vms: Vec<&str> = objects["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|vm| vm["name"].as_str().unwrap())
        .collect();
    assert_eq!(vms.len(), 3);
    assert!(vms.contains(&"erp-db"));
}

#[tokio::test]
async fn plan_names_resolve_or_say_why_not() {
    let app = TestApp::with_fleet(FLEET, &[]).await;
    let config = logged_in(&app).await;
    let dir = config.path();

    let run = standby(dir, &["plans", "show", "Web"], None).await;
    assert_eq!(run.code, 4, "ambiguous: {}", run.stderr);
    assert!(
        run.stderr.contains("2 plans are named 'Web'"),
        "{}",
        run.stderr
    );

    let run = standby(dir, &["plans", "show", "Globex"], None).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("'Globex ERP'"),
        "suggestions: {}",
        run.stderr
    );

    let run = standby(
        dir,
        &["plans", "show", "0191d3a5-0000-7000-8000-000000000000"],
        None,
    )
    .await;
    assert_eq!(run.code, 3, "{}", run.stderr);

    let erp = app.plan_named("Globex ERP").await;
    let uid = erp["instanceUid"].as_str().unwrap();
    let run = standby(dir, &["plans", "show", uid, "-o", "json"], None).await;
    assert_eq!(run.json()["data"], erp);
    let run = standby(dir, &["plans", "show", "GLOBEX erp"], None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(uid), "{}", run.stdout);

    // A typo in the second name starts nothing.
    let run = standby(dir, &["plans", "start", "Globex ERP", "Globex Fies"], None).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(app.plan_named("Globex ERP").await["status"], "Ready");

    let run = standby(dir, &["actions", "show", "not-a-uuid"], None).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run = standby(
        dir,
        &["actions", "show", "0191d3a5-0000-7000-8000-000000000000"],
        None,
    )
    .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
}

#[tokio::test]
async fn start_wait_undo_and_failed_runs() {
    let app = TestApp::with_fleet(FLEET, &[]).await;
    let config = logged_in(&app).await;
    let dir = config.path();

    // A point in time: every VM gets its newest restore point at or before it.
    let at = {
        let yesterday = time::OffsetDateTime::now_utc() - time::Duration::hours(20);
        yesterday
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let run = standby(
        dir,
        &["plans", "preview", "Globex ERP", "--at", &at, "-o", "json"],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let preview = run.json();
    assert_eq!(preview["data"]["vmsWithoutRestorePoint"], 0);

    let run = standby(
        dir,
        &[
            "plans",
            "start",
            "Globex ERP",
            "Globex Files",
            "--at",
            &at,
            "--wait",
            "-o",
            "json",
        ],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let runs = run.json();
    let runs = runs["data"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for followed in runs {
        let session = &followed["session"];
        assert_eq!(session["kind"], "failover", "{followed}");
        assert_eq!(session["status"], "Success", "{followed}");
        assert!(session["endTime"].is_string());
        for vm in session["vms"].as_array().unwrap() {
            assert_eq!(vm["backupStatus"], "Success");
            let point = vm["restorePointDateTime"].as_str().unwrap();
            let point =
                time::OffsetDateTime::parse(point, &time::format_description::well_known::Rfc3339)
                    .unwrap();
            let limit =
                time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
                    .unwrap();
            assert!(point <= limit, "{point} after {limit}");
        }
        assert!(followed["actionId"].is_string());
    }
    assert_eq!(runs[0]["session"]["vms"].as_array().unwrap().len(), 3);
    // Line mode (standard error is not a terminal): one line per VM change and a summary.
    assert!(run.stderr.contains("Globex ERP: erp-db"), "{}", run.stderr);
    assert!(run.stderr.contains("failover Success in"), "{}", run.stderr);
    assert_eq!(app.plan_named("Globex ERP").await["status"], "Completed");

    // Starting a plan that has already failed over is refused by the server: exit 5.
    let run = standby(dir, &["plans", "start", "Globex ERP"], None).await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("refused"), "{}", run.stderr);

    // A future point is refused with VSPC's code 9000.
    let run = standby(dir, &["plans", "start", "Web", "--at", "2999-01-01"], None).await;
    assert_eq!(run.code, 4, "ambiguity is checked first: {}", run.stderr);

    let run = standby(
        dir,
        &["plans", "undo", "Globex ERP", "Globex Files", "--wait"],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("PLAN"), "{}", run.stdout);
    assert!(run.stdout.contains("undo"), "{}", run.stdout);
    assert_eq!(app.plan_named("Globex ERP").await["status"], "Ready");

    // A future point is refused with VSPC's code 9000: exit 5, the message passed on.
    let run = standby(
        dir,
        &["plans", "start", "Globex Files", "--at", "2999-01-01"],
        None,
    )
    .await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("future"), "{}", run.stderr);

    // `watch` on a finished plan shows its newest run and ends at once.
    let run = standby(dir, &["plans", "watch", "Globex Files", "-o", "json"], None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["data"][0]["session"]["kind"], "undo");

    // A VM that fails to boot makes the run fail: exit 6, after the summary.
    let erp = app.plan_named("Globex ERP").await;
    let vm = app.objects_of(erp["instanceUid"].as_str().unwrap()).await[1].clone();
    let (status, body) = send(
        app.http
            .put(app.url("/api/v3/extensions/sim/faults"))
            .bearer_auth(&app.token)
            .json(&json!({"targetUid": vm["instanceUid"], "fault": "boot-fails", "enabled": true})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let run = standby(
        dir,
        &["plans", "start", "Globex ERP", "--test", "--wait"],
        None,
    )
    .await;
    assert_eq!(run.code, 6, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("Failed"), "{}", run.stdout);
    assert!(run.stderr.contains("1 of 1 runs failed"), "{}", run.stderr);

    // Every start and undo above is an async action the client can list and show.
    let run = standby(dir, &["actions", "list", "-o", "json"], None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let actions = run.json();
    let actions = actions["data"].as_array().unwrap();
    assert!(actions.len() >= 5, "{actions:?}");
    let id = actions[0]["id"].as_str().unwrap();
    let run = standby(dir, &["actions", "show", id, "-o", "json"], None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["data"]["id"], id);

    // `--wait` and `watch` followed the runs over the event stream, not by polling: the run
    // history was read only to learn each plan's newest run before a start or undo.
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let requests = |route: &str| -> f64 {
        metrics
            .lines()
            .filter(|line| line.starts_with("standby_http_requests_total{"))
            .filter(|line| line.contains(&format!("route=\"{route}\"")))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let streams = requests("/api/v3/extensions/failoverplans/events");
    let history = requests("/api/v3/extensions/failoverplans/{planUid}/sessions");
    assert_eq!(streams, 4.0, "three --wait and one watch: {metrics}");
    // One read per plan of each start or undo sent (2 + 1 + 2 + 1 + 1), none while following.
    assert_eq!(history, 7.0, "the run history was polled");
}

#[tokio::test]
async fn an_api_key_from_the_environment_needs_no_login() {
    let app = TestApp::with_fleet(FLEET, &[]).await;
    let created = std::process::Command::new(binary())
        .args(["apikeys", "add", ADMIN, "--read-only"])
        .args(&app.store_args)
        .output()
        .expect("apikeys create");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = String::from_utf8_lossy(&created.stdout)
        .lines()
        .next()
        .and_then(|line| line.rsplit(' ').next())
        .expect("a key in the output")
        .to_owned();
    let config = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(binary())
        .args(["plans", "list", "--name", "Globex", "-o", "json"])
        .env("XDG_CONFIG_HOME", config.path())
        .env("STANDBY_URL", &app.base)
        .env("STANDBY_API_KEY", &key)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let body: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(body["meta"]["pagingInfo"]["total"], 2);
    // The key is read-only: a start is refused (403), exit 5.
    let output = tokio::process::Command::new(binary())
        .args(["plans", "start", "Globex ERP"])
        .env("XDG_CONFIG_HOME", config.path())
        .env("STANDBY_URL", &app.base)
        .env("STANDBY_API_KEY", &key)
        .output()
        .await
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn drills_are_scheduled_run_and_reported_from_the_terminal() {
    let app = TestApp::with_fleet(FLEET, &["--sim-boot-ms", "50-100"]).await;
    let config = logged_in(&app).await;
    let dir = config.path();
    let run = standby(
        dir,
        &[
            "drills",
            "create",
            "--name",
            "Globex weekly",
            "--plan",
            "Globex ERP",
            "--schedule",
            "0 2 * * SUN",
            "--tz",
            "Europe/Berlin",
            "--ttl",
            "1",
            "--max-parallel-vms",
            "3",
        ],
        None,
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("Drill 'Globex weekly' created"),
        "{}",
        run.stderr
    );
    let run = standby(dir, &["drills", "list"], None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("Globex weekly") && run.stdout.contains("Europe/Berlin"));

    // Bad input: the server's message, exit code 5 (refused).
    let run = standby(
        dir,
        &[
            "drills",
            "create",
            "--name",
            "x",
            "--plan",
            "Globex ERP",
            "--schedule",
            "nope",
            "--ttl",
            "1",
            "--max-parallel-vms",
            "3",
        ],
        None,
    )
    .await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("cron"), "{}", run.stderr);
    let run = standby(dir, &["drills", "show", "No such drill"], None).await;
    assert_eq!(run.code, 3, "{}", run.stderr);

    let run = standby(dir, &["drills", "run", "Globex weekly"], None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let report = loop {
        let run = standby(
            dir,
            &["drills", "report", "Globex weekly", "-o", "json"],
            None,
        )
        .await;
        if run.code == 0 && run.json()["data"]["state"] == "finished" {
            break run.json();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} {}",
            run.stdout,
            run.stderr
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert_eq!(report["data"]["plans"][0]["state"], "undone", "{report}");
    let run = standby(dir, &["drills", "report", "Globex weekly"], None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("Globex ERP") && run.stdout.contains("undone"),
        "{}",
        run.stdout
    );
    let run = standby(dir, &["drills", "pause", "Globex weekly"], None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = standby(dir, &["drills", "run", "Globex weekly"], None).await;
    assert_eq!(run.code, 5, "a paused drill is not run: {}", run.stderr);
    let run = standby(dir, &["drills", "delete", "Globex weekly"], None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = standby(dir, &["drills", "list", "-o", "json"], None).await;
    assert_eq!(run.json()["data"], serde_json::json!([]));
}

#[tokio::test]
async fn webhooks_are_added_listed_logged_and_deleted_from_the_terminal() {
    let app = TestApp::with_fleet(
        FLEET,
        &[
            "--sim-boot-ms",
            "50-100",
            "--notification-retry-seconds",
            "1",
        ],
    )
    .await;
    let config = logged_in(&app).await;
    let dir = config.path();
    // Nothing listens on this port: the delivery is attempted, and the attempts logged.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let run = standby(
        dir,
        &["webhooks", "add", "--url", &url, "--event", "run.started"],
        None,
    )
    .await;
    assert_eq!(run.code, 2, "a webhook needs its secret: {}", run.stderr);
    let run = standby(
        dir,
        &[
            "webhooks",
            "add",
            "--url",
            &url,
            "--secret-stdin",
            "--event",
            "run.started",
            "-o",
            "json",
        ],
        Some("a secret of some length\n"),
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let id = run.json()["data"]["instanceUid"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = standby(
        dir,
        &["webhooks", "add", "--url", &url, "--secret-stdin"],
        Some("short\n"),
    )
    .await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("secret"), "{}", run.stderr);
    let run = standby(dir, &["webhooks", "list"], None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains(&url) && run.stdout.contains("run.started"));

    let run = standby(dir, &["plans", "start", "Globex ERP", "--test"], None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let run = standby(dir, &["webhooks", "deliveries", &id], None).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        if run.stdout.contains("run.started") && run.stdout.contains("request failed") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", run.stdout);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let run = standby(dir, &["webhooks", "delete", &id], None).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = standby(dir, &["webhooks", "deliveries", &id], None).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
}

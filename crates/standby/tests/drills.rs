//! Scheduled drills over real HTTP against the real binary: a drill due now tests its plans
//! under its budget of VMs and undoes each after its time to live, across a SIGKILL of the
//! server; it never starts a plan that is not Ready and says why; a failed undo is retried;
//! bad input is refused; a company sees only its own drills.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const DRILLS: &str = "/api/v3/extensions/drills";
const EXT: &str = "/api/v3/extensions/failoverplans";

/// Two plans of two VMs each on one sim server.
fn two_plan_fleet() -> String {
    let mut fleet = String::from(
        "[[organizations]]\nname = \"MSP\"\nkind = \"provider\"\n\n[[servers]]\nname = \"vbr-1\"\norganization = \"MSP\"\n",
    );
    for plan in ["Alpha", "Bravo"] {
        fleet.push_str(&format!(
            "\n[[plans]]\nname = \"{plan}\"\nserver = \"vbr-1\"\ntype = \"Local\"\nrto_target_seconds = 600\n"
        ));
        for vm in 0..2 {
            fleet.push_str(&format!(
                "  [[plans.vms]]\n  name = \"{plan}-{vm}\"\n  restore_points = [\"2026-11-01T00:00:00Z\"]\n"
            ));
        }
    }
    fleet
}

fn seconds(text: &Value) -> f64 {
    let at = time::OffsetDateTime::parse(
        text.as_str().expect("a time"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    at.unix_timestamp_nanos() as f64 / 1e9
}

async fn create(app: &TestApp, body: &Value) -> (u16, Value) {
    send(
        app.http
            .post(app.url(DRILLS))
            .bearer_auth(&app.token)
            .json(body),
    )
    .await
}

async fn uid_of(app: &TestApp, name: &str) -> String {
    app.plan_named(name).await["instanceUid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits for the drill's newest run to finish and returns its report.
async fn finished_run(app: &TestApp, drill: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (status, body) = app.get_json(&format!("{DRILLS}/{drill}"), &[]).await;
        assert_eq!(status, 200, "{body}");
        if let Some(run) = body["data"]["runs"]
            .as_array()
            .and_then(|runs| runs.first())
            && run["state"] == "finished"
        {
            let run_uid = run["instanceUid"].as_str().unwrap();
            let (status, report) = app
                .get_json(&format!("{DRILLS}/{drill}/runs/{run_uid}"), &[])
                .await;
            assert_eq!(status, 200, "{report}");
            return report["data"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the drill did not finish: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A plan's sessions, oldest first.
async fn sessions_of(app: &TestApp, plan: &str) -> Vec<Value> {
    let (status, body) = app
        .get_json(&format!("{EXT}/{plan}/sessions"), &[("limit", "100")])
        .await;
    assert_eq!(status, 200, "{body}");
    let mut runs = body["data"].as_array().unwrap().clone();
    runs.reverse();
    runs
}

#[tokio::test]
async fn a_drill_due_now_holds_its_budget_and_undoes_after_its_ttl_across_a_kill() {
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("fleet.toml");
    std::fs::write(&file, two_plan_fleet()).unwrap();
    let store = TestStore::fresh().await;
    let args = [
        "--fleet",
        file.to_str().unwrap(),
        "--sim-boot-ms",
        "300-600",
        "--lease-seconds",
        "3",
    ];
    let mut app = TestApp::start(&store, &args).await;
    let (alpha, bravo) = (uid_of(&app, "Alpha").await, uid_of(&app, "Bravo").await);
    const TTL: f64 = 3.0;
    // A yearly schedule: it runs now only because it is asked to.
    let (status, drill) = create(
        &app,
        &json!({
            "name": "Nightly DR test",
            "planUids": [alpha, bravo],
            "schedule": "0 3 1 1 *",
            "timeZone": "Europe/Paris",
            "ttlSeconds": TTL as u32,
            "maxParallelVms": 2,
        }),
    )
    .await;
    assert_eq!(status, 201, "{drill}");
    let drill = drill["data"]["instanceUid"].as_str().unwrap().to_owned();
    let (status, body) = send(app.post(&format!("{DRILLS}/{drill}/runs"))).await;
    assert_eq!(status, 202, "{body}");

    // Kill the server while Alpha's test is up (inside its time to live), then start it again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.plan(&alpha).await["status"] != "Success" {
        assert!(Instant::now() < deadline, "Alpha's test never came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.kill();
    app = TestApp::start(&store, &args).await;

    let report = finished_run(&app, &drill, Duration::from_secs(90)).await;
    let plans = report["plans"].as_array().unwrap();
    assert_eq!(plans.len(), 2, "{report}");
    for plan in plans {
        assert_eq!(plan["state"], "undone", "{report}");
        assert_eq!(plan["testVerdict"], "Passed", "{report}");
        assert_eq!(plan["undoAttempts"], 1);
        assert_eq!(plan["undoOverdue"], false);
    }
    assert_eq!(report["undone"], 2);
    for plan in [&alpha, &bravo] {
        assert_eq!(app.plan(plan).await["status"], "Ready");
    }

    // Exactly once: one test and one undo per plan, the kill notwithstanding.
    let alpha_runs = sessions_of(&app, &alpha).await;
    let bravo_runs = sessions_of(&app, &bravo).await;
    for runs in [&alpha_runs, &bravo_runs] {
        let kinds: Vec<&str> = runs.iter().map(|r| r["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["test", "undo"], "{runs:?}");
        assert!(runs.iter().all(|r| r["status"] == "Success"), "{runs:?}");
        assert!(
            runs[0]["startedBy"]
                .as_str()
                .unwrap()
                .contains("Nightly DR test")
        );
        // Undone no sooner than its time to live after the test ended.
        let lived = seconds(&runs[1]["startTime"]) - seconds(&runs[0]["endTime"]);
        assert!(lived >= TTL - 0.01, "undone after {lived} s");
    }
    // The budget (2 VMs) holds one plan at a time: Bravo's test began after Alpha's undo ended.
    let (first, second) =
        if seconds(&alpha_runs[0]["startTime"]) < seconds(&bravo_runs[0]["startTime"]) {
            (&alpha_runs, &bravo_runs)
        } else {
            (&bravo_runs, &alpha_runs)
        };
    assert!(
        seconds(&second[0]["startTime"]) >= seconds(&first[1]["endTime"]),
        "two plans ran at once on a budget of one: {first:?} {second:?}"
    );
    // The plan's own run report names the drill that started it.
    let test = alpha_runs[0]["instanceUid"].as_str().unwrap();
    let (_, run_report) = app
        .get_json(&format!("{EXT}/{alpha}/sessions/{test}/report"), &[])
        .await;
    assert_eq!(
        run_report["data"]["trigger"]["kind"], "drill",
        "{run_report}"
    );
    assert_eq!(run_report["data"]["trigger"]["drillUid"], drill.as_str());
    // The drill report as CSV: a header and a line per plan.
    let run_uid = report["instanceUid"].as_str().unwrap();
    let csv = app
        .get(&format!("{DRILLS}/{drill}/runs/{run_uid}?format=csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.contains("\"undone\""));
    // The drill over all its runs (one so far): each plan tested once and passed.
    let (status, over) = app.get_json(&format!("{DRILLS}/{drill}/report"), &[]).await;
    assert_eq!(status, 200, "{over}");
    assert_eq!(over["data"]["runs"], 1);
    assert_eq!(over["data"]["totals"]["tests"], 2);
    assert_eq!(over["data"]["totals"]["passed"], 2);
    for plan in over["data"]["plans"].as_array().unwrap() {
        assert_eq!(plan["lastVerdict"], "Passed", "{plan}");
        assert!(plan["medianRtoSeconds"].as_f64().unwrap() > 0.0);
    }
    let (status, body) = app
        .get_json(&format!("{DRILLS}/{drill}/report"), &[("runs", "0")])
        .await;
    assert_error(status, &body, 400, 400, Some("runs"));
}

#[tokio::test]
async fn a_drill_never_starts_a_plan_that_is_not_ready_and_retries_a_failed_undo() {
    let app = TestApp::with_fleet(
        &two_plan_fleet(),
        &[
            "--sim-boot-ms",
            "100-200",
            "--drill-undo-retry-seconds",
            "1",
            // An offline server fails a VM step after this long instead of 15 minutes.
            "--vm-step-timeout-seconds",
            "2",
        ],
    )
    .await;
    let (alpha, bravo) = (uid_of(&app, "Alpha").await, uid_of(&app, "Bravo").await);
    // Bravo is in a test failover someone else started: not Ready.
    let (status, _) = send(app.post(&format!("{PLANS}/{bravo}/start?test=true"))).await;
    assert_eq!(status, 200);
    app.wait_for(&bravo, &["Success"]).await;
    let server = app.plan(&alpha).await["backupServerUid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, drill) = create(
        &app,
        &json!({
            "name": "Ad hoc",
            "planUids": [bravo, alpha],
            "schedule": "0 3 1 1 *",
            "ttlSeconds": 1,
            "maxParallelVms": 10,
        }),
    )
    .await;
    assert_eq!(status, 201, "{drill}");
    let drill = drill["data"]["instanceUid"].as_str().unwrap().to_owned();
    assert_eq!(
        send(app.post(&format!("{DRILLS}/{drill}/runs"))).await.0,
        202
    );
    // Alpha's test comes up; then its server goes offline, so the undo fails and is retried.
    app.wait_for(&alpha, &["Success"]).await;
    let fault = |enabled: bool| {
        send(
            app.http
                .put(app.url("/api/v3/extensions/sim/faults"))
                .bearer_auth(&app.token)
                .json(&json!({"targetUid": server, "fault": "offline", "enabled": enabled})),
        )
    };
    assert_eq!(fault(true).await.0, 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = app.get_json(&format!("{DRILLS}/{drill}"), &[]).await;
        let run = body["data"]["runs"][0]["instanceUid"]
            .as_str()
            .map(str::to_owned);
        if let Some(run) = run {
            let (_, report) = app
                .get_json(&format!("{DRILLS}/{drill}/runs/{run}"), &[])
                .await;
            let alpha_row = report["data"]["plans"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["planUid"] == alpha.as_str())
                .cloned()
                .unwrap();
            if alpha_row["undoAttempts"].as_u64().unwrap_or(0) >= 2 {
                assert!(
                    alpha_row["reason"]
                        .as_str()
                        .unwrap()
                        .contains("undo attempt 1 failed"),
                    "{alpha_row}"
                );
                break;
            }
        }
        assert!(Instant::now() < deadline, "the failed undo was not retried");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(fault(false).await.0, 200);

    let report = finished_run(&app, &drill, Duration::from_secs(90)).await;
    let row = |plan: &str| {
        report["plans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["planUid"] == plan)
            .cloned()
            .unwrap()
    };
    let skipped = row(&bravo);
    assert_eq!(skipped["state"], "skipped", "{report}");
    assert!(
        skipped["reason"].as_str().unwrap().contains("not Ready"),
        "{skipped}"
    );
    assert_eq!(skipped["testSessionUid"], Value::Null);
    assert_eq!(row(&alpha)["state"], "undone", "{report}");
    // Bravo has only the test its operator started; the drill touched nothing of it.
    let bravo_runs = sessions_of(&app, &bravo).await;
    assert_eq!(bravo_runs.len(), 1);
    assert_eq!(bravo_runs[0]["startedBy"], ADMIN);
    assert_eq!(app.plan(&bravo).await["status"], "Success");
    // Alpha: its test, a failed undo, then the undo that worked.
    let kinds: Vec<(String, String)> = sessions_of(&app, &alpha)
        .await
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(kinds.first().unwrap(), &("test".into(), "Success".into()));
    assert_eq!(kinds.last().unwrap(), &("undo".into(), "Success".into()));
    assert!(
        kinds.iter().any(|k| k == &("undo".into(), "Failed".into())),
        "{kinds:?}"
    );
    assert_eq!(app.plan(&alpha).await["status"], "Ready");
    let (_, over) = app.get_json(&format!("{DRILLS}/{drill}/report"), &[]).await;
    let bravo_row = over["data"]["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["planUid"] == bravo.as_str())
        .cloned()
        .unwrap();
    assert_eq!(bravo_row["skipped"], 1, "{over}");
    assert_eq!(bravo_row["tests"], 0);
    assert!(
        bravo_row["lastSkipReason"]
            .as_str()
            .unwrap()
            .contains("not Ready")
    );
}

#[tokio::test]
async fn drills_refuse_bad_input_and_are_scoped_to_their_company() {
    let app = TestApp::demo().await;
    let plan = app
        .all_plans()
        .await
        .into_iter()
        .find(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("Fabrikam - "))
        })
        .unwrap()["instanceUid"]
        .as_str()
        .unwrap()
        .to_owned();
    let good = json!({
        "name": "Weekly",
        "planUids": [plan],
        "schedule": "0 2 * * SUN",
        "timeZone": "America/New_York",
        "ttlSeconds": 3600,
        "maxParallelVms": 20,
        "stopAfterFailures": 2,
    });
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let filtered = |filter: Value| {
        let mut body = without("planUids");
        body["filter"] = filter;
        body
    };
    for (body, property) in [
        (with("schedule", json!("every sunday")), "schedule"),
        (with("schedule", json!("0 0 30 2 *")), "schedule"),
        (with("timeZone", json!("Mars/Olympus")), "timeZone"),
        (with("ttlSeconds", json!(0)), "ttlSeconds"),
        (with("ttlSeconds", json!(86_400 * 8)), "ttlSeconds"),
        (with("maxParallelVms", json!(-1)), "maxParallelVms"),
        (without("maxParallelVms"), "maxParallelVms"),
        (with("name", json!("   ")), "name"),
        (with("filter", json!([])), "planUids"),
        (without("planUids"), "planUids"),
        (with("planUids", json!([])), "planUids"),
        (with("planUids", json!(["not-a-uid"])), "planUids"),
        (with("planUids", json!([plan, plan])), "planUids"),
        (with("colour", json!("red")), "colour"),
        (with("timeZone", json!(null)), "timeZone"),
        (with("stopAfterFailures", json!(null)), "stopAfterFailures"),
        (filtered(json!("not json")), "filter"),
        (
            filtered(json!([{"property": "colour", "operation": "equals", "value": 1}])),
            "filter",
        ),
    ] {
        let (status, error) = create(&app, &body).await;
        assert_eq!(status, 400, "{body} -> {error}");
        assert_eq!(
            error["errors"][0]["propertyName"], property,
            "{body} -> {error}"
        );
    }
    let (status, _) = create(&app, &with("planUids", json!([uuid::Uuid::new_v4()]))).await;
    assert_eq!(status, 404);
    let (status, _) = send(
        app.http
            .post(app.url(DRILLS))
            .bearer_auth(&app.token)
            .header("content-type", "application/json")
            .body("[1, 2]"),
    )
    .await;
    assert_eq!(status, 400);
    let (_, list) = app.get_json(DRILLS, &[]).await;
    assert_eq!(list["data"], json!([]), "no refused drill was kept");

    // A good one: its next run in New York time, paused and resumed, then deleted.
    let (status, created) = create(&app, &good).await;
    assert_eq!(status, 201, "{created}");
    let drill = created["data"]["instanceUid"].as_str().unwrap().to_owned();
    let next = seconds(&created["data"]["nextRunAt"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        next > now && next <= now + 7.0 * 86_400.0 + 3_600.0,
        "{created}"
    );
    assert!(
        !created["data"]["scheduleDescription"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    let (status, paused) = send(app.post(&format!("{DRILLS}/{drill}/pause"))).await;
    assert_eq!(status, 200);
    assert_eq!(paused["data"]["paused"], true);
    assert_eq!(paused["data"]["nextRunAt"], Value::Null);
    let (status, body) = send(app.post(&format!("{DRILLS}/{drill}/runs"))).await;
    assert_eq!(status, 409, "a paused drill does not run: {body}");
    let (status, resumed) = send(app.post(&format!("{DRILLS}/{drill}/resume"))).await;
    assert_eq!(status, 200);
    assert_eq!(resumed["data"]["nextRunAt"], created["data"]["nextRunAt"]);

    // Companies: a company's own drill is its own; the provider's is nobody else's.
    let contoso = app.token_for("contoso-owner", DEMO_PASSWORD).await;
    let fabrikam = app.token_for("fabrikam-admin", DEMO_PASSWORD).await;
    let as_user = |token: &str, request: reqwest::RequestBuilder| send(request.bearer_auth(token));
    let (status, _) = as_user(
        &contoso,
        app.http.get(app.url(&format!("{DRILLS}/{drill}"))),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = as_user(
        &contoso,
        app.http.delete(app.url(&format!("{DRILLS}/{drill}"))),
    )
    .await;
    assert_eq!(status, 404);
    let (status, own) = as_user(
        &contoso,
        app.http.post(app.url(DRILLS)).json(&json!({
            "name": "Contoso monthly",
            "filter": [{"property": "name", "operation": "contains", "value": "Tier 1"}],
            "schedule": "0 4 1 * *",
            "ttlSeconds": 1800,
            "maxParallelVms": 6,
        })),
    )
    .await;
    assert_eq!(status, 201, "{own}");
    let own = own["data"]["instanceUid"].as_str().unwrap().to_owned();
    // A company cannot name another company's plan, nor see another company's drill.
    let (status, _) = as_user(&contoso, app.http.post(app.url(DRILLS)).json(&good)).await;
    assert_eq!(status, 404, "Contoso named a Fabrikam plan");
    let (_, theirs) = as_user(&fabrikam, app.http.get(app.url(DRILLS))).await;
    assert!(
        theirs["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["instanceUid"] != own.as_str()),
        "{theirs}"
    );
    let (status, _) = as_user(&fabrikam, app.http.get(app.url(&format!("{DRILLS}/{own}")))).await;
    assert_eq!(status, 404);
    let (_, all) = app.get_json(DRILLS, &[]).await;
    assert!(
        all["data"].as_array().unwrap().len() >= 2,
        "the provider sees every drill"
    );

    let (status, _) = send(
        app.http
            .delete(app.url(&format!("{DRILLS}/{drill}")))
            .bearer_auth(&app.token),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = app.get_json(&format!("{DRILLS}/{drill}"), &[]).await;
    assert_eq!(status, 404);
    let (status, body) = app.get_json(&format!("{DRILLS}/not-a-uid"), &[]).await;
    assert_error(status, &body, 400, 400, Some("drillUid"));
}

/// Runs on PostgreSQL (`STANDBY_TEST_POSTGRES_URL`): two nodes run the drill runner against one
/// database, and a drill that fires every two seconds opens each run once and starts each test
/// and undo once.
#[tokio::test]
async fn on_two_nodes_each_drill_run_and_each_of_its_steps_happens_once() {
    let Some(admin_url) = postgres_under_test() else {
        eprintln!("skipped: set STANDBY_TEST_POSTGRES_URL to run the multi-node drill test");
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("fleet.toml");
    std::fs::write(&file, two_plan_fleet()).unwrap();
    let store = TestStore::postgres(&admin_url).await;
    let first = TestApp::start(
        &store,
        &[
            "--fleet",
            file.to_str().unwrap(),
            "--sim-boot-ms",
            "100-300",
        ],
    )
    .await;
    let second = TestApp::start(&store, &["--sim-boot-ms", "100-300"]).await;
    let (alpha, bravo) = (uid_of(&first, "Alpha").await, uid_of(&first, "Bravo").await);
    let (status, drill) = create(
        &first,
        &json!({
            "name": "Every two seconds",
            "planUids": [alpha, bravo],
            "schedule": "*/2 * * * * *",
            "ttlSeconds": 1,
            "maxParallelVms": 4,
        }),
    )
    .await;
    assert_eq!(status, 201, "{drill}");
    let drill = drill["data"]["instanceUid"].as_str().unwrap().to_owned();
    // Let it fire for a while on both nodes, then pause it (through the other node).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = second.get_json(&format!("{DRILLS}/{drill}"), &[]).await;
        let finished = body["data"]["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|run| run["state"] == "finished")
            .count();
        if finished >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "two runs never finished: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, _) = send(
        second
            .http
            .post(second.url(&format!("{DRILLS}/{drill}/pause")))
            .bearer_auth(&second.token),
    )
    .await;
    assert_eq!(status, 200);
    // Whatever run is open finishes its undos.
    let deadline = Instant::now() + Duration::from_secs(60);
    let runs = loop {
        let (_, body) = first.get_json(&format!("{DRILLS}/{drill}"), &[]).await;
        let runs = body["data"]["runs"].as_array().unwrap().clone();
        if runs.iter().all(|run| run["state"] == "finished") {
            break runs;
        }
        assert!(Instant::now() < deadline, "a run never finished: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let due: Vec<&str> = runs.iter().map(|r| r["dueAt"].as_str().unwrap()).collect();
    let mut unique = due.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), due.len(), "an occurrence ran twice: {due:?}");
    // Each run tested and undid each plan once: sessions are exactly two per run per plan.
    for plan in [&alpha, &bravo] {
        let sessions = sessions_of(&first, plan).await;
        assert_eq!(sessions.len(), 2 * runs.len(), "{plan}: {sessions:?}");
        assert!(sessions.iter().all(|s| s["status"] == "Success"));
    }
    for run in &runs {
        assert_eq!(run["undone"], 2, "{run}");
    }
    // And the hypervisor saw every operation once.
    for (operation, executions) in first.sim_executions().await {
        assert_eq!(executions, 1, "{operation} ran {executions} times");
    }
}

/// Runs on PostgreSQL: the node that ran a drill's tests is SIGKILLed while one is up; the
/// other node undoes it after its time to live and finishes the run, each step once.
#[tokio::test]
async fn when_a_node_is_lost_the_other_finishes_its_drill() {
    let Some(admin_url) = postgres_under_test() else {
        eprintln!("skipped: set STANDBY_TEST_POSTGRES_URL to run the node-loss drill test");
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("fleet.toml");
    std::fs::write(&file, two_plan_fleet()).unwrap();
    let store = TestStore::postgres(&admin_url).await;
    let common = ["--sim-boot-ms", "300-600", "--lease-seconds", "3"];
    let mut first_args = vec!["--fleet", file.to_str().unwrap()];
    first_args.extend_from_slice(&common);
    let mut first = TestApp::start(&store, &first_args).await;
    let second = TestApp::start(&store, &common).await;
    let (alpha, bravo) = (uid_of(&first, "Alpha").await, uid_of(&first, "Bravo").await);
    let (status, drill) = create(
        &first,
        &json!({
            "name": "Survives a node",
            "planUids": [alpha, bravo],
            "schedule": "0 3 1 1 *",
            "ttlSeconds": 3,
            "maxParallelVms": 2,
        }),
    )
    .await;
    assert_eq!(status, 201, "{drill}");
    let drill = drill["data"]["instanceUid"].as_str().unwrap().to_owned();
    assert_eq!(
        send(first.post(&format!("{DRILLS}/{drill}/runs"))).await.0,
        202
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let statuses = [
            first.plan(&alpha).await["status"].clone(),
            first.plan(&bravo).await["status"].clone(),
        ];
        if statuses.iter().any(|s| s == "Success") {
            break;
        }
        assert!(Instant::now() < deadline, "no test came up: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.kill();
    let report = finished_run(&second, &drill, Duration::from_secs(120)).await;
    for plan in report["plans"].as_array().unwrap() {
        assert_eq!(plan["state"], "undone", "{report}");
    }
    for plan in [&alpha, &bravo] {
        let kinds: Vec<String> = sessions_of(&second, plan)
            .await
            .iter()
            .map(|r| r["kind"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kinds, ["test", "undo"], "{plan}");
        assert_eq!(second.plan(plan).await["status"], "Ready");
    }
    for (operation, executions) in second.sim_executions().await {
        assert_eq!(executions, 1, "{operation} ran {executions} times");
    }
}

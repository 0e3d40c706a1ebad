//! Recovery targets and run reports over real HTTP: targets from a fleet file and from the API,
//! a run judged against the targets it started under, the report's figures recomputed here from
//! the sessions the API serves, the printable and CSV forms, operator notes, the RTO trend, bad
//! input, and company scoping.

mod common;

use common::*;
use serde_json::{Value, json};

const EXT: &str = "/api/v3/extensions/failoverplans";

fn seconds_between(from: &Value, to: &Value) -> f64 {
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().expect("a time"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("RFC 3339")
    };
    (parse(to) - parse(from)).as_seconds_f64()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.002
}

/// Runs a test failover of `plan` to its end and returns that run as `/sessions` shows it.
async fn run_test(app: &TestApp, plan: &str) -> Value {
    let response = app
        .post(&format!("{PLANS}/{plan}/start?test=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.wait_for(plan, &["Success", "Failed"]).await;
    let (status, sessions) = app
        .get_json(&format!("{EXT}/{plan}/sessions"), &[("limit", "1")])
        .await;
    assert_eq!(status, 200, "{sessions}");
    sessions["data"][0].clone()
}

async fn undo(app: &TestApp, plan: &str) {
    let response = app
        .post(&format!("{PLANS}/{plan}/undo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.wait_for(plan, &["Ready"]).await;
}

async fn put_targets(app: &TestApp, plan: &str, body: &Value) -> (u16, Value) {
    send(
        app.http
            .put(app.url(&format!("{EXT}/{plan}/targets")))
            .bearer_auth(&app.token)
            .json(body),
    )
    .await
}

#[tokio::test]
async fn a_run_is_judged_against_the_targets_it_started_under() {
    let fleet = one_plan_fleet("Payroll", 3).replace(
        "type = \"Local\"\n",
        "type = \"Local\"\nrto_target_seconds = 600\nrpo_target_seconds = 3600\n",
    );
    let app = TestApp::with_fleet(&fleet, &["--sim-boot-ms", "100-300"]).await;
    let plan = app.plan_named("Payroll").await["instanceUid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, targets) = app.get_json(&format!("{EXT}/{plan}/targets"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        targets["data"],
        json!({"rtoSeconds": 600, "rpoSeconds": 3600})
    );

    // The points are from 2026-11-01: far older than an hour, so the RPO target is missed.
    let run = run_test(&app, &plan).await;
    let session = run["instanceUid"].as_str().unwrap().to_owned();
    let (status, report) = app
        .get_json(&format!("{EXT}/{plan}/sessions/{session}/report"), &[])
        .await;
    assert_eq!(status, 200, "{report}");
    let report = &report["data"];
    assert_eq!(report["planName"], "Payroll");
    assert_eq!(report["startedBy"], ADMIN);
    assert_eq!(report["trigger"]["kind"], "person");
    assert_eq!(
        report["targets"],
        json!({"rtoSeconds": 600, "rpoSeconds": 3600})
    );
    // The figures, recomputed here from the run's own times as /sessions serves them.
    let vms = run["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 3);
    let rto = vms
        .iter()
        .map(|vm| seconds_between(&run["startTime"], &vm["endTime"]))
        .fold(f64::MIN, f64::max);
    let worst_rpo = vms
        .iter()
        .map(|vm| seconds_between(&vm["restorePointDateTime"], &run["startTime"]))
        .fold(f64::MIN, f64::max);
    assert!(
        close(report["rto"]["achievedSeconds"].as_f64().unwrap(), rto),
        "{report}"
    );
    assert!(rto > 0.0 && rto < 600.0);
    assert_eq!(report["rto"]["met"], true);
    assert!(close(
        report["rpo"]["worstSeconds"].as_f64().unwrap(),
        worst_rpo
    ));
    assert_eq!(report["rpo"]["met"], false);
    assert_eq!(report["verdict"], "TargetMissed");
    for (shown, vm) in report["vms"].as_array().unwrap().iter().zip(vms) {
        assert_eq!(shown["name"], vm["name"]);
        assert!(close(
            shown["timeToReadySeconds"].as_f64().unwrap(),
            seconds_between(&run["startTime"], &vm["endTime"])
        ));
        assert_eq!(shown["rpoMet"], false);
    }
    assert!(
        report["log"].as_array().is_some_and(|log| !log.is_empty()),
        "the run's log is on its report: {report}"
    );
    // The sessions list judges the run the same way.
    assert_eq!(run["verdict"], "TargetMissed");
    assert_eq!(run["rpoMet"], false);

    // New targets apply to runs started afterwards; the first run keeps its own.
    let (status, body) = put_targets(
        &app,
        &plan,
        &json!({"rtoSeconds": 600, "rpoSeconds": 31_622_400}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, again) = app
        .get_json(&format!("{EXT}/{plan}/sessions/{session}/report"), &[])
        .await;
    assert_eq!(again["data"]["targets"]["rpoSeconds"], 3600);
    assert_eq!(again["data"]["verdict"], "TargetMissed");
    undo(&app, &plan).await;
    let second = run_test(&app, &plan).await;
    assert_eq!(second["targets"]["rpoSeconds"], 31_622_400);
    assert_eq!(second["verdict"], "Passed");

    // The trend: both tests, oldest first (the undo is not a recovery), with their verdicts.
    let (status, trend) = app.get_json(&format!("{EXT}/{plan}/rtoTrend"), &[]).await;
    assert_eq!(status, 200, "{trend}");
    let runs = trend["data"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{trend}");
    assert_eq!(runs[0]["sessionUid"], session.as_str());
    assert_eq!(runs[0]["verdict"], "TargetMissed");
    assert_eq!(runs[1]["verdict"], "Passed");
    assert_eq!(trend["data"]["summary"]["rtoMet"], 2);
    let achieved = [
        runs[0]["rtoSeconds"].as_f64().unwrap(),
        runs[1]["rtoSeconds"].as_f64().unwrap(),
    ];
    assert!(close(
        trend["data"]["summary"]["medianRtoSeconds"]
            .as_f64()
            .unwrap(),
        (achieved[0] + achieved[1]) / 2.0
    ));
    let csv = app
        .get(&format!("{EXT}/{plan}/rtoTrend?format=csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
}

#[tokio::test]
async fn a_report_prints_exports_and_takes_notes() {
    let fleet = one_plan_fleet("Ledger <prod> & co", 2);
    let app = TestApp::with_fleet(&fleet, &["--sim-boot-ms", "50-100"]).await;
    let plan = app.plan_named("Ledger <prod> & co").await["instanceUid"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = run_test(&app, &plan).await;
    let session = run["instanceUid"].as_str().unwrap().to_owned();
    let report_path = format!("{EXT}/{plan}/sessions/{session}/report");

    // No targets: nothing met or missed, and the verdict is the outcome.
    let (_, report) = app.get_json(&report_path, &[]).await;
    assert_eq!(report["data"]["rto"]["met"], Value::Null);
    assert_eq!(report["data"]["verdict"], "Passed");

    let note = |body: Value| {
        send(
            app.http
                .post(app.url(&format!("{EXT}/{plan}/sessions/{session}/notes")))
                .bearer_auth(&app.token)
                .json(&body),
        )
    };
    let (status, added) = note(json!({"text": "  Drill signed off by <b>J. Doe</b>.  "})).await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["data"]["seq"], 1);
    assert_eq!(added["data"]["author"], ADMIN);
    assert_eq!(added["data"]["text"], "Drill signed off by <b>J. Doe</b>.");
    let (status, _) = note(json!({"text": "Second look: fine."})).await;
    assert_eq!(status, 201);
    let (_, report) = app.get_json(&report_path, &[]).await;
    let notes = report["data"]["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[1]["seq"], 2);

    // The printable page escapes what it shows and allows nothing but its own style.
    let page = app
        .get(&format!("{report_path}?format=html"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("Verdict: Passed"), "{html}");
    assert!(html.contains("Ledger &#60;prod&#62; &#38; co"), "{html}");
    assert!(html.contains("&#60;b&#62;J. Doe&#60;/b&#62;"));
    assert!(!html.contains("<b>J. Doe</b>"));

    let csv = app
        .get(&format!("{report_path}?format=csv"))
        .send()
        .await
        .unwrap();
    assert!(
        csv.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&session)
    );
    let csv = csv.text().await.unwrap();
    assert_eq!(
        csv.lines().count(),
        3,
        "a header and one line per VM: {csv}"
    );
    assert!(csv.contains("\"vm-1\""));

    // Bad input: each refused in the envelope, nothing written.
    let (status, body) = note(json!({"text": "   "})).await;
    assert_error(status, &body, 400, 400, None);
    assert_eq!(body["errors"][0]["propertyName"], "text", "{body}");
    let (status, body) = note(json!({"text": "x".repeat(4_001)})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = note(json!({"text": "ok", "author": "someone else"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = note(json!(["not", "an", "object"])).await;
    assert_eq!(status, 400, "{body}");
    let (_, report) = app.get_json(&report_path, &[]).await;
    assert_eq!(report["data"]["notes"].as_array().unwrap().len(), 2);
    let (status, body) = app.get_json(&report_path, &[("format", "pdf")]).await;
    assert_error(status, &body, 400, 400, Some("format"));
    let (status, body) = app
        .get_json(&format!("{EXT}/{plan}/rtoTrend"), &[("format", "html")])
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app
        .get_json(&format!("{EXT}/{plan}/rtoTrend"), &[("limit", "0")])
        .await;
    assert_error(status, &body, 400, 400, Some("limit"));
    let (status, body) = app
        .get_json(&format!("{EXT}/{plan}/sessions/not-a-uid/report"), &[])
        .await;
    assert_error(status, &body, 400, 400, Some("sessionUid"));
    let stranger = uuid::Uuid::new_v4();
    let (status, body) = app
        .get_json(&format!("{EXT}/{plan}/sessions/{stranger}/report"), &[])
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app
        .get_json(&format!("{EXT}/{stranger}/targets"), &[])
        .await;
    assert_eq!(status, 404, "{body}");
    for bad in [
        json!({"rtoSeconds": 0}),
        json!({"rtoSeconds": -5}),
        json!({"rpoSeconds": 1.5}),
        json!({"rpoSeconds": "an hour"}),
        json!({"rpoSeconds": 31_622_401}),
        json!({"rto": 60}),
        json!([60, 60]),
    ] {
        let (status, body) = put_targets(&app, &plan, &bad).await;
        assert_eq!(status, 400, "{bad} -> {body}");
    }
    let (status, body) = send(
        app.http
            .put(app.url(&format!("{EXT}/{plan}/targets")))
            .bearer_auth(&app.token)
            .header("content-type", "application/json")
            .body("{\"rtoSeconds\":"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (_, targets) = app.get_json(&format!("{EXT}/{plan}/targets"), &[]).await;
    assert_eq!(
        targets["data"],
        json!({"rtoSeconds": null, "rpoSeconds": null}),
        "no refused PUT wrote anything"
    );
}

#[tokio::test]
async fn a_company_sees_only_its_own_plans_reports_and_targets() {
    let app = TestApp::demo().await;
    // A Fabrikam plan on Fabrikam's own server that is Ready to start.
    let plan = app
        .all_plans()
        .await
        .into_iter()
        .find(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("Fabrikam - "))
                && p["type"] == "Local"
                && p["status"] == "Ready"
        })
        .expect("a Ready Fabrikam plan")["instanceUid"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = run_test(&app, &plan).await;
    let session = run["instanceUid"].as_str().unwrap().to_owned();
    let contoso = app.token_for("contoso-owner", DEMO_PASSWORD).await;
    let as_contoso = |request: reqwest::RequestBuilder| send(request.bearer_auth(&contoso));
    for path in [
        format!("{EXT}/{plan}/sessions/{session}/report"),
        format!("{EXT}/{plan}/sessions/{session}/report?format=html"),
        format!("{EXT}/{plan}/targets"),
        format!("{EXT}/{plan}/rtoTrend"),
    ] {
        let (status, body) = as_contoso(app.http.get(app.url(&path))).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _) = as_contoso(
        app.http
            .put(app.url(&format!("{EXT}/{plan}/targets")))
            .json(&json!({"rtoSeconds": 1})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = as_contoso(
        app.http
            .post(app.url(&format!("{EXT}/{plan}/sessions/{session}/notes")))
            .json(&json!({"text": "not mine"})),
    )
    .await;
    assert_eq!(status, 404);
    // The provider still sees the targets the demo gave the plan, unchanged.
    let (status, targets) = app.get_json(&format!("{EXT}/{plan}/targets"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(targets["data"]["rtoSeconds"], 600);
    let (_, report) = app
        .get_json(&format!("{EXT}/{plan}/sessions/{session}/report"), &[])
        .await;
    assert!(report["data"]["notes"].as_array().unwrap().is_empty());
}

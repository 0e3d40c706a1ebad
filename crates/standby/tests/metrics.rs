//! Black-box: `/metrics` moves when requests, logins and sessions happen.

mod common;

use common::*;

async fn scrape(app: &TestApp) -> String {
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The value of the first sample whose line starts with `prefix` and contains every `part`.
fn sample(text: &str, prefix: &str, parts: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(prefix) && parts.iter().all(|p| line.contains(p)))
        .find_map(|line| line.rsplit(' ').next().and_then(|v| v.parse().ok()))
}

#[tokio::test]
async fn metrics_follow_requests_logins_and_sessions() {
    let app = TestApp::demo().await;
    let plan = app
        .all_plans()
        .await
        .into_iter()
        .find(|p| p["status"] == "Ready")
        .unwrap();
    let uid = plan["instanceUid"].as_str().unwrap().to_owned();
    let _ = app
        .http
        .post(app.url("/api/v3/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", ADMIN),
            ("password", "wrong"),
        ])
        .send()
        .await;
    let (status, _) = send(app.post(&format!("{PLANS}/{uid}/start"))).await;
    assert_eq!(status, 200);
    app.wait_for(&uid, &["Completed", "Failed"]).await;
    let text = scrape(&app).await;

    let route = "route=\"/api/v3/infrastructure/backupServers/failoverplans\"";
    assert!(
        sample(
            &text,
            "standby_http_requests_total",
            &[route, "status=\"200\""]
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );
    assert!(
        sample(
            &text,
            "standby_http_requests_total",
            &["failoverplans/{planUid}/start", "status=\"200\""]
        ) == Some(1.0),
        "routes are labelled by template, not by UID"
    );
    assert!(!text.contains(&uid), "no UID becomes a label value");
    assert!(
        sample(
            &text,
            "standby_http_request_duration_seconds_count",
            &[route]
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        sample(&text, "standby_logins_total", &["outcome=\"refused\""]),
        Some(1.0)
    );
    assert!(sample(&text, "standby_logins_total", &["outcome=\"success\""]).unwrap() >= 1.0);
    assert_eq!(
        sample(
            &text,
            "standby_sessions_total",
            &["kind=\"failover\"", "outcome=\"succeed\""]
        ),
        Some(1.0)
    );
    let vms = plan["objectsCount"].as_f64().unwrap();
    assert_eq!(
        sample(
            &text,
            "standby_vm_operations_total",
            &["kind=\"failover\"", "outcome=\"success\""]
        ),
        Some(vms)
    );
    assert_eq!(
        sample(&text, "standby_jobs_claimed_total", &["resumed=\"false\""]),
        Some(1.0)
    );
}

#[tokio::test]
async fn metrics_show_the_job_queue_and_store_query_times() {
    // One worker and slow boots: the first start runs, the second waits its turn.
    let store = TestStore::fresh().await;
    let app = TestApp::start(
        &store,
        &["--demo", "--workers", "1", "--sim-boot-ms", "5000-5000"],
    )
    .await;
    let text = scrape(&app).await;
    assert_eq!(
        sample(&text, "standby_jobs", &["state=\"queued\""]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "standby_jobs", &["state=\"running\""]),
        Some(0.0)
    );
    // Every statement is timed, by verb (the login above read the user).
    assert!(
        sample(
            &text,
            "standby_store_query_duration_seconds_count",
            &["statement=\"select\""]
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );

    let ready: Vec<String> = app
        .all_plans()
        .await
        .into_iter()
        .filter(|p| p["status"] == "Ready")
        .take(2)
        .map(|p| p["instanceUid"].as_str().unwrap().to_owned())
        .collect();
    for uid in &ready {
        let (status, body) = send(app.post(&format!("{PLANS}/{uid}/start"))).await;
        assert_eq!(status, 200, "{body}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let text = scrape(&app).await;
        let queued = sample(&text, "standby_jobs", &["state=\"queued\""]);
        let running = sample(&text, "standby_jobs", &["state=\"running\""]);
        if (queued, running) == (Some(1.0), Some(1.0)) {
            assert!(
                sample(
                    &text,
                    "standby_store_query_duration_seconds_count",
                    &["statement=\"insert\""]
                )
                .unwrap()
                    >= 1.0,
                "the starts wrote: {text}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "queued {queued:?}, running {running:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

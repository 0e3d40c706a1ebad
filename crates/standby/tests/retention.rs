//! Black-box: what only grows is purged in the background. A day of churn, compressed: every
//! simulated hour (at least a second of wall time) each plan is tested and undone under an
//! X-Request-id, patched under another, and a user signs in; retentions are two hours and the
//! purge runs every hour. The bounded tables' sizes (the `standby_store_rows` gauge) stay flat
//! while the run history, kept on purpose, grows hour by hour.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const PLANS_IN_FLEET: usize = 6;
const HOURS: usize = 24;
const HOUR: Duration = Duration::from_secs(1);

/// Tables the purge bounds, as the gauge names them.
/// (Tokens are bounded by their lifetime, an hour of real time, not by a retention.)
const BOUNDED: &[&str] = &[
    "jobs",
    "idempotency",
    "sim_operations",
    "audit",
    "async_actions",
];

fn churn_fleet() -> String {
    plans_fleet((0..PLANS_IN_FLEET).map(|n| format!("churn-{n}")), 2)
}

/// Rows per table from the gauge, which the purge refreshes after every pass.
async fn table_rows(app: &TestApp) -> BTreeMap<String, f64> {
    let text = app.metrics().await;
    text.lines()
        .filter_map(|line| line.strip_prefix("standby_store_rows{table=\""))
        .filter_map(|rest| {
            let (table, value) = rest.split_once("\"} ")?;
            Some((table.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Starts or undoes every plan under a fresh X-Request-id each, then waits for `until`.
async fn act(app: &TestApp, plans: &[String], action: &str, until: &[&str]) {
    for uid in plans {
        let (status, body) = send(
            app.post(&format!("{PLANS}/{uid}/{action}"))
                .header("X-Request-id", uuid::Uuid::new_v4().to_string()),
        )
        .await;
        assert_eq!(status, 200, "{action}: {body}");
    }
    for uid in plans {
        app.wait_for(uid, until).await;
    }
}

#[tokio::test]
async fn a_compressed_day_of_churn_leaves_the_bounded_tables_flat() {
    let app = TestApp::with_fleet(
        &churn_fleet(),
        &[
            "--done-job-retention-seconds",
            "2",
            "--ledger-retention-seconds",
            "2",
            "--audit-retention-seconds",
            "2",
            "--idempotency-window-seconds",
            "2",
            "--action-success-retention-seconds",
            "2",
            "--action-failure-retention-seconds",
            "2",
            "--notification-retention-seconds",
            "2",
            "--purge-interval-seconds",
            "1",
        ],
    )
    .await;
    let plans: Vec<String> = app
        .all_plans()
        .await
        .iter()
        .map(|p| p["instanceUid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(plans.len(), PLANS_IN_FLEET);

    let mut hourly: Vec<BTreeMap<String, f64>> = Vec::new();
    for hour in 0..HOURS {
        let started = Instant::now();
        act(&app, &plans, "start?test=true", &["Success"]).await;
        act(&app, &plans, "undo", &["Ready"]).await;
        for uid in &plans {
            let (status, body) = send(
                app.patch(
                    &format!("{PLANS}/{uid}"),
                    &json!([{"op": "replace", "path": "/preFailoverCommand", "value": format!("echo {hour}")}]),
                )
                .header("X-Request-id", uuid::Uuid::new_v4().to_string()),
            )
            .await;
            assert_eq!(status, 200, "{body}");
        }
        // A sign-in: an access and a refresh token, and an audit row.
        app.login(ADMIN, PASSWORD).await;
        tokio::time::sleep(HOUR.saturating_sub(started.elapsed())).await;
        hourly.push(table_rows(&app).await);
    }

    let rows = |hour: usize, table: &str| hourly[hour].get(table).copied().unwrap_or(0.0);
    let peak = |hours: std::ops::Range<usize>, table: &str| {
        hours.map(|h| rows(h, table)).fold(0.0, f64::max)
    };
    let report: Vec<String> = hourly
        .iter()
        .enumerate()
        .map(|(hour, tables)| format!("hour {hour}: {tables:?}"))
        .collect();
    let report = report.join("\n");
    println!("{report}");

    // The history is kept and grows every hour: the churn is real, and a table that is not
    // purged shows as growth.
    let sessions = (rows(11, "sessions"), rows(HOURS - 1, "sessions"));
    assert!(
        sessions.1 >= sessions.0 * 1.8 && sessions.0 > 0.0,
        "the run history did not grow with the churn: {sessions:?}\n{report}"
    );
    // Flat, whatever the machine's speed: an hour writes the same rows every time (hours 0 and 1
    // are one to two hours' worth: nothing is two hours old yet), and with retentions of two
    // hours, a purge every hour and a slow pass or two, at most six hours' worth may be there at
    // once. Unpurged, the last hours would hold 18 to 24 hours' worth.
    for table in BOUNDED {
        let hour_worth = peak(0..2, table);
        let late = peak(HOURS - 6..HOURS, table);
        assert!(hour_worth > 0.0, "{table} never had rows\n{report}");
        assert!(
            late <= 6.0 * hour_worth,
            "{table} kept growing: {late} rows in the last six hours, an hour writes about \
             {hour_worth}\n{report}"
        );
    }
}

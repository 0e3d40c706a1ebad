//! Black-box: cached reads are dropped by what changes what they show, and by nothing else. A
//! plan list stays cached while other plans fail over (their VM steps, log lines and job claims
//! touch no table it shows), yet shows each plan's start and end at once; on PostgreSQL a write
//! through another node reaches this node's cache through the tables' notifications.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const IDLE_PLANS: usize = 5;
const BUSY_PLANS: usize = 10;
const VMS_PER_PLAN: usize = 6;

fn fleet() -> String {
    let plans = (0..IDLE_PLANS)
        .map(|n| format!("idle-{n}"))
        .chain((0..BUSY_PLANS).map(|n| format!("busy-{n}")));
    plans_fleet(plans, VMS_PER_PLAN)
}

/// The response cache's hits and misses of the plan list so far (`standby_response_cache_total`).
async fn list_outcomes(app: &TestApp) -> (f64, f64) {
    let text = app.metrics().await;
    let outcome = |name: &str| {
        text.lines()
            .filter(|line| {
                line.starts_with("standby_response_cache_total")
                    && line.contains("read=\"plans\"")
                    && line.contains(&format!("outcome=\"{name}\""))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    (outcome("hit"), outcome("miss"))
}

fn idle_filter() -> String {
    json!([{"property": "name", "operation": "contains", "value": "idle"}]).to_string()
}

#[tokio::test]
async fn a_plan_list_stays_cached_while_other_plans_fail_over() {
    let app = TestApp::with_fleet(&fleet(), &["--sim-boot-ms", "400-1600"]).await;
    let plans = app.all_plans().await;
    let busy: Vec<String> = plans
        .iter()
        .filter(|p| p["name"].as_str().unwrap().starts_with("busy"))
        .map(|p| p["instanceUid"].as_str().unwrap().to_owned())
        .collect();
    let filter = idle_filter();
    let query = [("filter", filter.as_str())];
    let (status, first) = app.get_json(PLANS, &query).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["meta"]["pagingInfo"]["total"], IDLE_PLANS);

    let (hits_before, misses_before) = list_outcomes(&app).await;
    for uid in &busy {
        let (status, body) = send(app.post(&format!("{PLANS}/{uid}/start?test=true"))).await;
        assert_eq!(status, 200, "{body}");
    }
    // Read the idle plans' list all through the failovers.
    let mut reads = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, page) = app.get_json(PLANS, &query).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page, first, "the idle plans' list changed");
        reads += 1;
        // The busy plans' statuses are read less often: the list's reads are what count.
        if reads % 5 == 0 {
            let mut ended = 0;
            for uid in &busy {
                if app.plan(uid).await["status"] == "Success" {
                    ended += 1;
                }
            }
            if ended == BUSY_PLANS {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the failovers did not end");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (hits, misses) = list_outcomes(&app).await;
    let (hits, misses) = (hits - hits_before, misses - misses_before);
    let plan_writes = 2 * BUSY_PLANS;
    println!(
        "{reads} reads of the list: {hits} hits, {misses} misses; {plan_writes} plan writes \
         (starts and ends), {} VM steps",
        BUSY_PLANS * VMS_PER_PLAN
    );
    assert_eq!(
        hits + misses,
        f64::from(reads),
        "every read is counted once"
    );
    // Only a plan's start or end may drop the list (and the first read after each computes it
    // again); a VM step, a log line or a job's claim dropping it would cost a miss per read.
    assert!(
        misses <= (plan_writes + 1) as f64,
        "{misses} misses in {reads} reads: the list was dropped by more than the plans' \
         {plan_writes} starts and ends"
    );
    assert!(
        reads > 3 * (plan_writes as u32 + 1),
        "too few reads to tell a cache kept from one dropped: {reads}"
    );

    // And a plan-level write shows at once: the next read computes the list afresh.
    let idle = plans.iter().find(|p| p["name"] == "idle-0").unwrap()["instanceUid"]
        .as_str()
        .unwrap()
        .to_owned();
    let patch = json!([{"op": "replace", "path": "/postFailoverCommand", "value": "echo fresh"}]);
    let (status, body) = send(app.patch(&format!("{PLANS}/{idle}"), &patch)).await;
    assert_eq!(status, 200, "{body}");
    let (_, after) = app.get_json(PLANS, &query).await;
    let patched: Vec<&Value> = after["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["postFailoverCommand"] == "echo fresh")
        .collect();
    assert_eq!(patched.len(), 1, "the patch was not shown: {after}");
}

/// A running plan's own page shows each log line as its VMs end (the per-session check), while
/// a page of other plans is served from cache.
#[tokio::test]
async fn a_running_plans_page_shows_its_log_lines_at_once() {
    let app = TestApp::with_fleet(&fleet(), &["--sim-boot-ms", "200-400"]).await;
    let plan = app.plan_named("busy-0").await;
    let uid = plan["instanceUid"].as_str().unwrap().to_owned();
    let (status, body) = send(app.post(&format!("{PLANS}/{uid}/start?test=true"))).await;
    assert_eq!(status, 200, "{body}");
    // Every read of the plan shows at least the log lines its run's report (never cached) had
    // just before.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut checked = 0;
    loop {
        let read = app.plan(&uid).await;
        let session = read["lastSession"]["instanceUid"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let (status, report) = app
            .get_json(
                &format!("/api/v3/extensions/failoverplans/{uid}/sessions/{session}/report"),
                &[],
            )
            .await;
        assert_eq!(status, 200, "{report}");
        let logged = report["data"]["log"].as_array().map_or(0, Vec::len);
        let shown = app.plan(&uid).await["lastSession"]["detailedMessages"]
            .as_array()
            .map_or(0, Vec::len);
        assert!(
            shown >= logged,
            "a log line written before this read was not shown: {shown} < {logged}"
        );
        checked += usize::from(logged > 0);
        if read["status"] == "Success" {
            break;
        }
        assert!(Instant::now() < deadline, "the failover did not end");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(checked > 0, "no read happened while the run logged");
}

#[tokio::test]
async fn another_nodes_writes_reach_this_nodes_cache_through_notifications() {
    let Some(admin_url) = postgres_under_test() else {
        eprintln!("skipped: set STANDBY_TEST_POSTGRES_URL to run the two-node cache test");
        return;
    };
    let store = TestStore::postgres(&admin_url).await;
    let (a, b) = tokio::join!(TestApp::start(&store, &[]), TestApp::start(&store, &[]));
    store.import_fleet(&fleet());
    // The import (another process) shows on both nodes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.all_plans().await.len() != IDLE_PLANS + BUSY_PLANS {
        assert!(Instant::now() < deadline, "node a never saw the import");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let uid = a.plan_named("idle-1").await["instanceUid"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("{PLANS}/{uid}");
    for round in 0..5 {
        // Cached on a...
        a.plan(&uid).await;
        a.plan(&uid).await;
        // ...changed through b...
        let value = format!("echo round {round}");
        let patch = json!([{"op": "replace", "path": "/preFailoverCommand", "value": value}]);
        let (status, body) = send(b.patch(&path, &patch)).await;
        assert_eq!(status, 200, "{body}");
        // ...and seen on a soon after the commit.
        let written = Instant::now();
        loop {
            if a.plan(&uid).await["preFailoverCommand"] == value.as_str() {
                break;
            }
            assert!(
                written.elapsed() < Duration::from_secs(2),
                "node a still serves the old plan 2 s after node b's write"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!(
            "round {round}: seen on the other node after {:?}",
            written.elapsed()
        );
    }
}

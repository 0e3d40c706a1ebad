//! `GET /api/v3/extensions/failoverplans/events`: session events as server-sent events, what the
//! CLI's `--wait` and `watch` follow instead of polling.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const EVENTS: &str = "/api/v3/extensions/failoverplans/events";

fn payloads(events: &[(String, String)]) -> Vec<Value> {
    events
        .iter()
        .map(|(_, data)| serde_json::from_str(data).expect("JSON data"))
        .collect()
}

#[tokio::test]
async fn session_events_follow_runs_from_start_to_end() {
    let store = TestStore::fresh().await;
    let app = TestApp::start(&store, &["--demo", "--sim-boot-ms", "300-600"]).await;
    let first = app.plan_named("Northwind - Tier 1 - Identity").await;
    let second = app.plan_named("Northwind - Tier 2 - Web").await;
    let uids = [
        first["instanceUid"].as_str().unwrap().to_owned(),
        second["instanceUid"].as_str().unwrap().to_owned(),
    ];
    let response = app
        .get(EVENTS)
        .query(&[("planUid", uids[0].as_str()), ("planUid", uids[1].as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    for uid in &uids {
        let start = app
            .post(&format!("{PLANS}/{uid}/start?test=true"))
            .send()
            .await
            .unwrap();
        assert_eq!(start.status(), 200);
    }
    // Until both plans have reported Success.
    let finished = std::sync::Mutex::new(std::collections::HashSet::new());
    let done = |data: &str| {
        let event: Value = serde_json::from_str(data).expect("JSON data");
        let mut finished = finished.lock().unwrap();
        if event["planStatus"] == "Success" {
            finished.insert(event["planUid"].as_str().unwrap_or("").to_owned());
        }
        finished.len() == 2
    };
    let events = read_events(response, Duration::from_secs(90), done).await;
    let seen = payloads(&events);
    // The first two describe each plan as it was (at rest, its last run from the demo history).
    assert_eq!(seen[0]["planUid"], uids[0].as_str());
    assert_eq!(seen[1]["planUid"], uids[1].as_str());
    for uid in &uids {
        let of_plan: Vec<&Value> = seen
            .iter()
            .filter(|e| e["planUid"] == uid.as_str())
            .collect();
        let last = of_plan.last().expect("events for the plan");
        assert_eq!(last["planStatus"], "Success", "{of_plan:?}");
        assert_eq!(last["session"]["kind"], "test");
        assert_eq!(last["session"]["status"], "Success");
        assert!(!last["session"]["endTime"].is_null());
        assert!(
            last["session"]["vms"]
                .as_array()
                .is_some_and(|vms| !vms.is_empty())
        );
        // Something between the start and the end arrived too.
        assert!(
            of_plan
                .iter()
                .any(|e| e["planStatus"] == "InProgress" && e["session"]["endTime"].is_null()),
            "{of_plan:?}"
        );
        // The same run as the sessions extension reports.
        let (_, sessions) = app
            .get_json(
                &format!("/api/v3/extensions/failoverplans/{uid}/sessions"),
                &[("limit", "1")],
            )
            .await;
        assert_eq!(last["session"], sessions["data"][0]);
    }
    let ids: Vec<u64> = events.iter().map(|(id, _)| id.parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] <= w[1]), "{ids:?}");

    // Reconnecting (Last-Event-ID or not), the whole state comes first, at once.
    let again = app
        .get(EVENTS)
        .query(&[("planUid", uids[0].as_str())])
        .header("last-event-id", ids.last().unwrap().to_string())
        .send()
        .await
        .unwrap();
    let events = read_events(again, Duration::from_secs(5), |_| true).await;
    assert_eq!(payloads(&events)[0]["planStatus"], "Success");
}

#[tokio::test]
async fn session_events_refuse_bad_requests_and_other_companies() {
    let app = TestApp::demo().await;
    let plan = app.plan_named("Fabrikam - ERP").await;
    let uid = plan["instanceUid"].as_str().unwrap();
    let unknown = uuid::Uuid::now_v7().to_string();
    let many: Vec<(&str, String)> = (0..201)
        .map(|_| ("planUid", uuid::Uuid::now_v7().to_string()))
        .collect();
    for (query, status) in [
        (vec![], 400),
        (vec![("planUid", "nope".to_owned())], 400),
        (many, 400),
        (vec![("planUid", unknown)], 404),
    ] {
        let (code, body) = send(app.get(EVENTS).query(&query)).await;
        assert_eq!(code, status, "{body}");
        assert!(body["errors"][0]["message"].is_string(), "{body}");
    }
    let response = app
        .http
        .get(app.url(EVENTS))
        .query(&[("planUid", uid)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // Another company's plan is not found; its own plans are followed.
    let contoso = app.token_for("contoso-owner", DEMO_PASSWORD).await;
    let response = app
        .http
        .get(app.url(EVENTS))
        .bearer_auth(&contoso)
        .query(&[("planUid", uid)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let own = app.plan_named("Contoso - ERP").await;
    let response = app
        .http
        .get(app.url(EVENTS))
        .bearer_auth(&contoso)
        .query(&[("planUid", own["instanceUid"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let events = read_events(response, Duration::from_secs(5), |_| true).await;
    assert_eq!(payloads(&events)[0]["planUid"], own["instanceUid"]);
}

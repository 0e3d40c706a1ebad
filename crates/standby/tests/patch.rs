//! Black-box: PATCH of a plan, and X-Request-id idempotency (kept across a restart).

mod common;

use common::*;
use serde_json::{Value, json};

async fn ready_plan(app: &TestApp) -> Value {
    app.all_plans()
        .await
        .into_iter()
        .find(|p| p["status"] == "Ready")
        .expect("a Ready plan")
}

#[tokio::test]
async fn patch_commands_and_refusals() {
    let app = TestApp::demo().await;
    let plan = ready_plan(&app).await;
    let path = format!("{PLANS}/{}", plan["instanceUid"].as_str().unwrap());

    let body = json!([
        {"op": "test", "path": "/status", "value": "Ready"},
        {"op": "replace", "path": "preFailoverCommand", "value": "C:\\Scripts\\pre.ps1"},
        {"op": "replace", "path": "/POSTFAILOVERCOMMAND", "value": "C:\\Scripts\\post.ps1 -Quiet"}
    ]);
    let (status, patched) = send(app.patch(&path, &body).query(&[(
        "select",
        r#"[{"propertyPath":"preFailoverCommand"},{"propertyPath":"preFailoverScriptEnabled"}]"#,
    )]))
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        patched["data"],
        json!({"preFailoverScriptEnabled": true, "preFailoverCommand": "C:\\Scripts\\pre.ps1"})
    );
    let (_, stored) = app.get_json(&path, &[]).await;
    assert_eq!(
        stored["data"]["postFailoverCommand"],
        "C:\\Scripts\\post.ps1 -Quiet"
    );
    assert_eq!(stored["data"]["postFailoverScriptEnabled"], true);
    // The new value is searchable at once.
    let filter = json!([{"property": "preFailoverCommand", "operation": "contains", "value": "PRE.PS1", "collation": "ignorecase"}]).to_string();
    let (_, found) = app.get_json(PLANS, &[("filter", &filter)]).await;
    assert_eq!(found["meta"]["pagingInfo"]["total"], 1);

    // Clearing a command turns its script off.
    let (status, cleared) = send(app.patch(
        &path,
        &json!([{"op": "remove", "path": "/preFailoverCommand"}]),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            cleared["data"]["preFailoverCommand"].as_str(),
            cleared["data"]["preFailoverScriptEnabled"].as_bool()
        ),
        (Some(""), Some(false))
    );

    // Refusals: 1001 with the failed operation, and nothing applied (atomic).
    let failing = json!([
        {"op": "replace", "path": "/preFailoverCommand", "value": "should not stick"},
        {"op": "replace", "path": "/name", "value": "renamed"}
    ]);
    let (status, body) = send(app.patch(&path, &failing)).await;
    assert_error(status, &body, 400, 1001, None);
    assert_eq!(body["errors"][0]["failedJsonPatch"], failing[1]);
    let (status, body) = send(app.patch(&path, &json!([{"op": "test", "path": "/status", "value": "Failed"}, {"op": "replace", "path": "/preFailoverCommand", "value": "x"}]))).await;
    assert_error(status, &body, 400, 1001, None);
    let (_, after) = app.get_json(&path, &[]).await;
    assert_eq!(after["data"]["preFailoverCommand"], "");
    assert_eq!(after["data"]["name"], plan["name"]);

    // Wrong content type, malformed JSON, unknown plan, malformed UID.
    let (status, body) = send(
        app.http
            .patch(app.url(&path))
            .bearer_auth(&app.token)
            .header("Content-Type", "text/plain")
            .body("[]"),
    )
    .await;
    assert_error(status, &body, 415, 415, None);
    let (status, body) = send(
        app.http
            .patch(app.url(&path))
            .bearer_auth(&app.token)
            .header("Content-Type", "application/json")
            .body("[{"),
    )
    .await;
    assert_error(status, &body, 400, 400, None);
    let (status, body) = send(app.patch(
        &format!("{PLANS}/4b1a7f0e-0000-4000-8000-000000000000"),
        &json!([{"op": "replace", "path": "/preFailoverCommand", "value": "x"}]),
    ))
    .await;
    assert_error(status, &body, 404, 404, None);
    let (status, body) = send(app.patch(&format!("{PLANS}/12"), &json!([]))).await;
    assert_error(status, &body, 400, 400, Some("planUid"));
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: standby\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 2097152\r\nConnection: close\r\n\r\n",
        app.token
    );
    let (status, body) = raw_request(&app.base, &head, b"[").await;
    assert_error(status, &body, 413, 413, None);
}

#[tokio::test]
async fn request_ids_replay_the_first_answer_even_after_a_restart() {
    let app = TestApp::demo().await;
    let plan = ready_plan(&app).await;
    let path = format!("{PLANS}/{}", plan["instanceUid"].as_str().unwrap());
    let request_id = "0b7c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d";
    let first_body = json!([{"op": "replace", "path": "/preFailoverCommand", "value": "first"}]);
    let (status, first) = send(
        app.patch(&path, &first_body)
            .header("X-Request-id", request_id),
    )
    .await;
    assert_eq!(status, 200);

    // Someone else changes the plan; a replay of the first request must not re-apply it.
    let (status, _) = send(app.patch(
        &path,
        &json!([{"op": "replace", "path": "/preFailoverCommand", "value": "second"}]),
    ))
    .await;
    assert_eq!(status, 200);
    let response = app
        .patch(&path, &first_body)
        .header("X-Request-id", request_id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-idempotent-replay"], "true");
    assert_eq!(response.json::<Value>().await.unwrap(), first);
    let (_, current) = app.get_json(&path, &[]).await;
    assert_eq!(
        current["data"]["preFailoverCommand"], "second",
        "the replay did nothing"
    );

    // The same id for another request is a conflict; a malformed id is a 400.
    let (status, body) = send(
        app.patch(
            &path,
            &json!([{"op": "replace", "path": "/preFailoverCommand", "value": "other"}]),
        )
        .header("X-Request-id", request_id),
    )
    .await;
    assert_error(status, &body, 409, 1000, None);
    let (status, body) = send(
        app.patch(&path, &first_body)
            .header("X-Request-id", "not-a-uuid"),
    )
    .await;
    assert_error(status, &body, 400, 400, Some("X-Request-id"));
    // Declared as a UUID on every operation, so a GET with a malformed one is refused too.
    let (status, body) = send(app.get(PLANS).header("X-Request-id", "6")).await;
    assert_error(status, &body, 400, 400, Some("X-Request-id"));
    let (status, _) = send(app.get(PLANS).header("X-Request-id", request_id)).await;
    assert_eq!(
        status, 200,
        "a well-formed id on a GET is accepted and ignored"
    );

    // A failed request is not remembered: the same id may be retried once it is fixed.
    let retry_id = "1b7c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d";
    let (status, _) = send(
        app.patch(
            &path,
            &json!([{"op": "replace", "path": "/name", "value": "x"}]),
        )
        .header("X-Request-id", retry_id),
    )
    .await;
    assert_eq!(status, 400);

    // The record lives in the database: a restarted server still replays it.
    let store = app.stop().expect("the demo app owns its store");
    let restarted = TestApp::start(&store, &[]).await;
    let response = restarted
        .patch(&path, &first_body)
        .header("X-Request-id", request_id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-idempotent-replay"], "true");
    assert_eq!(response.json::<Value>().await.unwrap(), first);
}

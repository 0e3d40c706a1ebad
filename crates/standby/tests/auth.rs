//! Black-box: `POST /api/v3/token` and bearer authentication.

mod common;

use common::*;
use serde_json::Value;

async fn token_request(app: &TestApp, form: &[(&str, &str)]) -> (u16, Value) {
    send(app.http.post(app.url("/api/v3/token")).form(form)).await
}

#[tokio::test]
async fn password_and_refresh_grants() {
    let app = TestApp::demo().await;
    let (status, body) = token_request(
        &app,
        &[
            ("grant_type", "password"),
            ("username", ADMIN),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body["mfa_token"].is_null() && body["encrypted_code"].is_null());
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();

    let (status, renewed) = token_request(
        &app,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, 200);
    let access = renewed["access_token"].as_str().unwrap();
    assert_ne!(access, body["access_token"].as_str().unwrap());
    let (status, _) = send(app.http.get(app.url(PLANS)).bearer_auth(access)).await;
    assert_eq!(status, 200);
    // A refresh token works once.
    let (status, reused) = token_request(
        &app,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(reused["error"], "invalid_grant");
    // Reusing a spent refresh token revokes the whole chain: the pair it bought stops working.
    let (status, _) = send(app.http.get(app.url(PLANS)).bearer_auth(access)).await;
    assert_eq!(status, 401, "the access token of the chain is revoked");
    let (status, body) = token_request(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", renewed["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // Other logins of the same user are not affected.
    let (status, _) = send(app.get(PLANS)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_logins_are_oauth2_errors() {
    let app = TestApp::demo().await;
    for (form, error) in [
        (
            vec![
                ("grant_type", "password"),
                ("username", ADMIN),
                ("password", "wrong"),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("username", "nobody"),
                ("password", "wrong"),
            ],
            "invalid_request",
        ),
        (
            vec![("grant_type", "password"), ("username", ADMIN)],
            "invalid_request",
        ),
        (
            vec![("username", ADMIN), ("password", PASSWORD)],
            "invalid_request",
        ),
        (
            vec![("grant_type", "mfa"), ("mfa_token", "x")],
            "unsupported_grant_type",
        ),
        (vec![("grant_type", "telepathy")], "unsupported_grant_type"),
        (
            vec![("grant_type", "refresh_token"), ("refresh_token", "forged")],
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("username", ADMIN),
                ("password", PASSWORD),
                ("readOnly", "maybe"),
            ],
            "invalid_request",
        ),
    ] {
        let (status, body) = token_request(&app, &form).await;
        assert_eq!(status, 400, "{form:?}");
        assert_eq!(body["error"], error, "{form:?}: {body}");
        assert!(body["error_description"].is_string());
        assert!(body.get("error_uri").is_some());
    }
    let head = "POST /api/v3/token HTTP/1.1\r\nHost: standby\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 2097152\r\nConnection: close\r\n\r\n";
    let (status, body) = raw_request(&app.base, head, b"grant_type=password").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "an oversized form: {body}"
    );
    let (status, body) = send(
        app.http
            .post(app.url("/api/v3/token"))
            .json(&serde_json::json!({"grant_type": "password"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

#[tokio::test]
async fn every_endpoint_needs_a_valid_bearer_token() {
    let app = TestApp::demo().await;
    let plan = app.all_plans().await.remove(0);
    let uid = plan["instanceUid"].as_str().unwrap();
    let server = plan["backupServerUid"].as_str().unwrap();
    let gets = [
        PLANS.to_owned(),
        OBJECTS.to_owned(),
        format!("{PLANS}/{uid}"),
        format!("{PLANS}/{uid}/objects"),
        format!("/api/v3/infrastructure/backupServers/{server}/failoverplans"),
        format!("/api/v3/infrastructure/backupServers/{server}/failoverplans/objects"),
    ];
    for path in &gets {
        for auth in [
            None,
            Some("Bearer nonsense"),
            Some("Basic YWRtaW46YWRtaW4="),
            Some("Bearer "),
        ] {
            let mut request = app.http.get(app.url(path));
            if let Some(auth) = auth {
                request = request.header("Authorization", auth);
            }
            let (status, body) = send(request).await;
            assert_error(status, &body, 401, 401, None);
            assert_eq!(body["errors"][0]["type"], "security");
        }
    }
    for path in [
        format!("{PLANS}/{uid}/start"),
        format!("{PLANS}/{uid}/undo"),
    ] {
        let (status, body) = send(app.http.post(app.url(&path))).await;
        assert_error(status, &body, 401, 401, None);
    }
    let (status, body) = send(
        app.http
            .patch(app.url(&format!("{PLANS}/{uid}")))
            .json(&serde_json::json!([])),
    )
    .await;
    assert_error(status, &body, 401, 401, None);
}

#[tokio::test]
async fn read_only_tokens_read_but_never_write() {
    let app = TestApp::demo().await;
    let (_, body) = token_request(
        &app,
        &[
            ("grant_type", "password"),
            ("username", ADMIN),
            ("password", PASSWORD),
            ("readOnly", "true"),
        ],
    )
    .await;
    let token = body["access_token"].as_str().unwrap();
    let (status, _) = send(app.http.get(app.url(PLANS)).bearer_auth(token)).await;
    assert_eq!(status, 200);
    let uid = app.all_plans().await[0]["instanceUid"]
        .as_str()
        .unwrap()
        .to_owned();
    let patch = serde_json::json!([{"op": "replace", "path": "/preFailoverCommand", "value": "x"}]);
    let (status, body) = send(
        app.http
            .patch(app.url(&format!("{PLANS}/{uid}")))
            .bearer_auth(token)
            .json(&patch),
    )
    .await;
    assert_error(status, &body, 403, 403, None);
    let (status, body) = send(
        app.http
            .post(app.url(&format!("{PLANS}/{uid}/start")))
            .bearer_auth(token),
    )
    .await;
    assert_error(status, &body, 403, 403, None);
    // Refreshing a read-only token keeps it read-only.
    let refresh = body_refresh(&app, ADMIN, PASSWORD).await;
    let (_, renewed) = token_request(
        &app,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    let (status, _) = send(
        app.http
            .patch(app.url(&format!("{PLANS}/{uid}")))
            .bearer_auth(renewed["access_token"].as_str().unwrap())
            .json(&patch),
    )
    .await;
    assert_eq!(status, 403);
}

async fn body_refresh(app: &TestApp, user: &str, password: &str) -> String {
    let (_, body) = token_request(
        app,
        &[
            ("grant_type", "password"),
            ("username", user),
            ("password", password),
            ("readOnly", "True"),
        ],
    )
    .await;
    body["refresh_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn health_and_readiness_need_no_token() {
    let app = TestApp::demo().await;
    let (status, body) = send(app.http.get(app.url("/healthz"))).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = send(app.http.get(app.url("/readyz"))).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
}

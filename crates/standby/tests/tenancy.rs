//! Black-box: roles and company scoping over every surface, and user administration.

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};
use standby_fleet::derived_uid;
use standby_model::{Role, WireEnum};

const ANY: &str = "4b1a7f0e-0000-4000-8000-000000000000";

async fn call(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    send(request).await
}

/// Plans a demo company should see: on its own server, or Tenant plans of its tenant.
fn in_company(plan: &Value, server: Option<&str>, tenant: &str) -> bool {
    server.is_some_and(|s| derived_uid("server", s).to_string() == plan["backupServerUid"])
        || derived_uid("tenant", tenant).to_string() == plan["tenantUid"]
}

#[tokio::test]
async fn every_role_gets_what_its_role_allows() {
    let app = TestApp::demo().await;
    let plans = app.all_plans().await;
    for (user, _, role) in standby_api::users::DEMO_USERS.iter().copied().chain([(
        ADMIN,
        "",
        Role::PortalAdministrator,
    )]) {
        let token = app
            .token_for(
                user,
                if user == ADMIN {
                    PASSWORD
                } else {
                    DEMO_PASSWORD
                },
            )
            .await;
        let read = if role.can_read_plans() { 200 } else { 403 };
        let (status, list) = call(&app, &token, reqwest::Method::GET, PLANS, None).await;
        assert_eq!(status, read, "{user} lists plans: {list}");
        if !role.can_read_plans() {
            for path in [
                OBJECTS.to_owned(),
                "/api/v3/asyncActions".to_owned(),
                format!("{PLANS}/{ANY}"),
            ] {
                let (status, body) = call(&app, &token, reqwest::Method::GET, &path, None).await;
                assert_error(status, &body, 403, 403, None);
            }
            continue;
        }
        // A Ready plan this user can see.
        let visible: Vec<&Value> = list["data"].as_array().unwrap().iter().collect();
        let ready = visible
            .iter()
            .find(|p| p["status"] == "Ready")
            .unwrap_or_else(|| panic!("{user} sees no Ready plan"));
        let uid = ready["instanceUid"].as_str().unwrap();
        for path in [
            format!("{PLANS}/{uid}"),
            format!("{PLANS}/{uid}/objects"),
            format!("/api/v3/extensions/failoverplans/{uid}/sessions"),
        ] {
            let (status, body) = call(&app, &token, reqwest::Method::GET, &path, None).await;
            assert_eq!(status, 200, "{user} GET {path}: {body}");
        }
        let patch = json!([{"op": "replace", "path": "/postFailoverCommand", "value": format!("C:\\{user}.ps1")}]);
        let (status, body) = call(
            &app,
            &token,
            reqwest::Method::PATCH,
            &format!("{PLANS}/{uid}"),
            Some(&patch),
        )
        .await;
        if role.can_write_plans() {
            assert_eq!(status, 200, "{user} patches: {body}");
            // Authorized, then refused by the state machine: a Ready plan cannot be undone.
            let (status, body) = call(
                &app,
                &token,
                reqwest::Method::POST,
                &format!("{PLANS}/{uid}/undo"),
                None,
            )
            .await;
            assert_error(status, &body, 409, 1000, None);
        } else {
            assert_error(status, &body, 403, 403, None);
            for action in ["start", "undo"] {
                let (status, body) = call(
                    &app,
                    &token,
                    reqwest::Method::POST,
                    &format!("{PLANS}/{uid}/{action}"),
                    None,
                )
                .await;
                assert_error(status, &body, 403, 403, None);
            }
        }
    }
    assert_eq!(plans.len(), 40, "the administrator sees every plan");
}

#[tokio::test]
async fn a_company_user_sees_nothing_of_another_company() {
    let app = TestApp::demo().await;
    let all = app.all_plans().await;
    let contoso: Vec<&Value> = all
        .iter()
        .filter(|p| in_company(p, Some("contoso-vbr01"), "contoso-cloud"))
        .collect();
    let fabrikam: Vec<&Value> = all
        .iter()
        .filter(|p| in_company(p, Some("fabrikam-vbr01"), "fabrikam-cloud"))
        .collect();
    assert!(contoso.len() >= 9 && fabrikam.len() >= 9);
    let token = app.token_for("contoso-owner", DEMO_PASSWORD).await;
    let get = |path: String| {
        let token = token.clone();
        let app = &app;
        async move { call(app, &token, reqwest::Method::GET, &path, None).await }
    };

    let (_, list) = get(format!("{PLANS}?limit=500")).await;
    assert_eq!(list["meta"]["pagingInfo"]["total"], contoso.len());
    let seen: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["instanceUid"].as_str().unwrap())
        .collect();
    assert!(
        contoso
            .iter()
            .all(|p| seen.contains(&p["instanceUid"].as_str().unwrap()))
    );
    // Page by page (pages past the first pick their rows' keys first): the pages together
    // are exactly the company's plans and VMs, in order, never another's.
    let mut paged = Vec::new();
    for offset in (0..contoso.len() + 2).step_by(2) {
        let (_, page) = get(format!("{PLANS}?limit=2&offset={offset}")).await;
        paged.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["instanceUid"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(paged, seen, "the pages of 2 are the list of 500, cut");
    // Sorted on the last run, which the walk for the keys joins.
    let by_last_run =
        json!([{"property": "lastSession.endTime", "direction": "descending"}]).to_string();
    let (_, page) = get(format!(
        "{PLANS}?limit=3&offset=2&sort={}",
        urlencode(&by_last_run)
    ))
    .await;
    let page = page["data"].as_array().unwrap();
    assert_eq!(page.len(), 3);
    assert!(
        page.iter()
            .all(|p| seen.contains(&p["instanceUid"].as_str().unwrap())),
        "{page:?}"
    );
    let vms: u64 = contoso
        .iter()
        .map(|p| p["objectsCount"].as_u64().unwrap())
        .sum();
    let (_, objects) = get(format!("{OBJECTS}?limit=500")).await;
    assert_eq!(objects["meta"]["pagingInfo"]["total"], vms);
    let (_, page) = get(format!("{OBJECTS}?limit=500&offset=1")).await;
    assert_eq!(page["data"].as_array().unwrap().len() as u64, vms - 1);
    assert_eq!(
        page["data"][0], objects["data"][1],
        "page 2 starts where page 1 went on"
    );
    // Filtering on another company's tenant finds nothing; counts never include it.
    let filter = json!([{"property": "tenantUid", "operation": "equals", "value": derived_uid("tenant", "fabrikam-cloud")}]).to_string();
    let (_, none) = app.get_json(PLANS, &[]).await;
    assert!(none["meta"]["pagingInfo"]["total"].as_u64().unwrap() > 0);
    let (status, filtered) = call(
        &app,
        &token,
        reqwest::Method::GET,
        &format!("{PLANS}?filter={}", urlencode(&filter)),
        None,
    )
    .await;
    assert_eq!(
        (status, filtered["meta"]["pagingInfo"]["total"].as_u64()),
        (200, Some(0))
    );

    // Every way to reach a Fabrikam plan answers 404, as if it did not exist.
    let other = fabrikam.iter().find(|p| p["status"] == "Ready").unwrap();
    let uid = other["instanceUid"].as_str().unwrap();
    let (_, admin_objects) = app.get_json(&format!("{PLANS}/{uid}/objects"), &[]).await;
    let vm = admin_objects["data"][0]["instanceUid"].as_str().unwrap();
    for (method, path) in [
        (reqwest::Method::GET, format!("{PLANS}/{uid}")),
        (reqwest::Method::GET, format!("{PLANS}/{uid}/objects")),
        (reqwest::Method::POST, format!("{PLANS}/{uid}/start")),
        (reqwest::Method::POST, format!("{PLANS}/{uid}/undo")),
        (
            reqwest::Method::GET,
            format!("/api/v3/extensions/failoverplans/{uid}/preview"),
        ),
        (
            reqwest::Method::GET,
            format!("/api/v3/extensions/failoverplans/{uid}/sessions"),
        ),
        (
            reqwest::Method::GET,
            format!("/api/v3/extensions/failoverplans/objects/{vm}/restorePoints"),
        ),
        (
            reqwest::Method::GET,
            format!(
                "/api/v3/infrastructure/backupServers/{}/failoverplans",
                derived_uid("server", "fabrikam-vbr01")
            ),
        ),
        (
            reqwest::Method::GET,
            format!(
                "/api/v3/infrastructure/backupServers/{}/failoverplans/objects",
                derived_uid("server", "fabrikam-vbr01")
            ),
        ),
    ] {
        let (status, body) = call(&app, &token, method.clone(), &path, None).await;
        assert_error(status, &body, 404, 404, None);
    }
    let patch = json!([{"op": "replace", "path": "/preFailoverCommand", "value": "x"}]);
    let (status, body) = call(
        &app,
        &token,
        reqwest::Method::PATCH,
        &format!("{PLANS}/{uid}"),
        Some(&patch),
    )
    .await;
    assert_error(status, &body, 404, 404, None);
    assert_eq!(
        app.plan(uid).await["preFailoverCommand"],
        other["preFailoverCommand"],
        "nothing changed"
    );

    // A provider server hosting one of Contoso's Tenant plans shows Contoso's plans only.
    let shared = contoso.iter().find(|p| p["type"] == "Tenant").unwrap()["backupServerUid"]
        .as_str()
        .unwrap();
    let (status, on_shared) = get(format!(
        "/api/v3/infrastructure/backupServers/{shared}/failoverplans?limit=500"
    ))
    .await;
    assert_eq!(status, 200);
    assert!(
        on_shared["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| in_company(p, Some("contoso-vbr01"), "contoso-cloud"))
    );

    // Another user's async action is invisible and cannot be cancelled.
    let response = app
        .post(&format!("{PLANS}/{uid}/start"))
        .send()
        .await
        .unwrap();
    let action = response.headers()["location"]
        .to_str()
        .unwrap()
        .split("/api/v3/")
        .nth(1)
        .unwrap()
        .to_owned();
    let (status, body) = get(format!("/api/v3/{action}")).await;
    assert_error(status, &body, 404, 404, None);
    let (status, body) = call(
        &app,
        &token,
        reqwest::Method::DELETE,
        &format!("/api/v3/{action}"),
        None,
    )
    .await;
    assert_error(status, &body, 404, 404, None);
    let (_, actions) = get("/api/v3/asyncActions".to_owned()).await;
    assert_eq!(actions["data"], json!([]));
    app.wait_for(uid, &["Completed", "Failed"]).await;
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The answer to a plan list with `token` once it stops being 200, or the last 200 after 2 s.
/// An admin command is another process: the server notices its write through the store's
/// change marker, polled every 200 ms (`standby_store::freshness`), and its cached credentials
/// go with it; a change made through the API shows at the next request.
async fn once_refused(app: &TestApp, token: &str) -> (u16, serde_json::Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let (status, body) = call(app, token, reqwest::Method::GET, PLANS, None).await;
        if status != 200 || std::time::Instant::now() > deadline {
            return (status, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn standby(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(binary())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn users_are_administered_on_the_command_line() {
    let app = TestApp::demo().await;
    let (store_flag, data) = (app.store_args[0].clone(), app.store_args[1].clone());
    let orgs = standby(&["orgs", "list", &store_flag, &data], None);
    assert!(String::from_utf8_lossy(&orgs.stdout).contains("Contoso Ltd"));

    let added = standby(
        &[
            "users",
            "add",
            "ops",
            "--org",
            "Fabrikam Inc",
            "--role",
            "companyadministrator",
            "--password-stdin",
            &store_flag,
            &data,
        ],
        Some("a long enough password\n"),
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let token = app.token_for("ops", "a long enough password").await;
    let (status, _) = call(&app, &token, reqwest::Method::GET, PLANS, None).await;
    assert_eq!(status, 200);
    let listed =
        String::from_utf8_lossy(&standby(&["users", "list", &store_flag, &data], None).stdout)
            .to_string();
    assert!(
        listed.lines().any(|l| l.starts_with("ops")
            && l.contains("CompanyAdministrator")
            && l.contains("Fabrikam Inc")),
        "{listed}"
    );

    // Disabling revokes every token (within the change-marker poll, see once_refused);
    // enabling lets the user log in again.
    assert!(
        standby(&["users", "disable", "ops", &store_flag, &data], None)
            .status
            .success()
    );
    let (status, body) = once_refused(&app, &token).await;
    assert_error(status, &body, 401, 401, None);
    let refused = app
        .http
        .post(app.url("/api/v3/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "ops"),
            ("password", "a long enough password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(
        standby(&["users", "enable", "ops", &store_flag, &data], None)
            .status
            .success()
    );
    let token = app.token_for("ops", "a long enough password").await;

    // A new password revokes the old tokens; a generated one is printed once.
    let changed = standby(&["users", "passwd", "ops", &store_flag, &data], None);
    let line = String::from_utf8_lossy(&changed.stdout).to_string();
    let password = line
        .split("New password for ops: ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let (status, _) = once_refused(&app, &token).await;
    assert_eq!(status, 401);
    app.token_for("ops", &password).await;
    assert!(
        standby(&["users", "remove", "ops", &store_flag, &data], None)
            .status
            .success()
    );
    assert!(
        !standby(&["users", "remove", "ops", &store_flag, &data], None)
            .status
            .success()
    );

    for (args, expected) in [
        (
            vec![
                "users",
                "add",
                "x",
                "--org",
                "Nowhere",
                "--role",
                "CompanyOwner",
            ],
            "no organization named 'Nowhere'",
        ),
        (
            vec![
                "users",
                "add",
                "x",
                "--org",
                "Contoso Ltd",
                "--role",
                "Boss",
            ],
            "unknown role 'Boss'",
        ),
        (
            vec![
                "users",
                "add",
                "bad name",
                "--org",
                "Contoso Ltd",
                "--role",
                "CompanyOwner",
            ],
            "is not a user name",
        ),
        (
            vec![
                "users",
                "add",
                "contoso-owner",
                "--org",
                "Contoso Ltd",
                "--role",
                "CompanyOwner",
            ],
            "already exists",
        ),
    ] {
        let mut args = args.clone();
        args.extend([store_flag.as_str(), data.as_str()]);
        let output = standby(&args, None);
        assert!(!output.status.success());
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(expected),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let short = standby(
        &[
            "users",
            "add",
            "y",
            "--org",
            "Contoso Ltd",
            "--role",
            "CompanyOwner",
            "--password-stdin",
            &store_flag,
            &data,
        ],
        Some("short\n"),
    );
    assert!(String::from_utf8_lossy(&short.stderr).contains("10 to 128 characters"));
    assert!(Role::ALL.len() == 16);
}

#[tokio::test]
async fn api_keys_act_as_their_user_until_the_user_is_disabled() {
    let app = TestApp::demo().await;
    let (store_flag, data) = (app.store_args[0].clone(), app.store_args[1].clone());
    let key_of = |output: std::process::Output| {
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        text.lines()
            .next()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    let read_only = key_of(standby(
        &[
            "apikeys",
            "add",
            "contoso-owner",
            "--read-only",
            &store_flag,
            &data,
        ],
        None,
    ));
    let read_write = key_of(standby(
        &[
            "apikeys",
            "add",
            "contoso-owner",
            "--description",
            "runbook",
            &store_flag,
            &data,
        ],
        None,
    ));
    assert!(
        read_only.starts_with("sbk_") && read_write.starts_with("sbk_") && read_only != read_write
    );

    let (status, list) = call(&app, &read_only, reqwest::Method::GET, PLANS, None).await;
    assert_eq!(status, 200);
    let plans = list["data"].as_array().unwrap();
    assert!(
        plans
            .iter()
            .all(|p| in_company(p, Some("contoso-vbr01"), "contoso-cloud")),
        "a key has its user's scope"
    );
    let uid = plans.iter().find(|p| p["status"] == "Ready").unwrap()["instanceUid"]
        .as_str()
        .unwrap()
        .to_owned();
    let patch = json!([{"op": "replace", "path": "/preFailoverCommand", "value": "C:\\key.ps1"}]);
    let (status, body) = call(
        &app,
        &read_only,
        reqwest::Method::PATCH,
        &format!("{PLANS}/{uid}"),
        Some(&patch),
    )
    .await;
    assert_error(status, &body, 403, 403, None);
    let (status, _) = call(
        &app,
        &read_write,
        reqwest::Method::PATCH,
        &format!("{PLANS}/{uid}"),
        Some(&patch),
    )
    .await;
    assert_eq!(status, 200);

    assert!(
        standby(
            &["users", "disable", "contoso-owner", &store_flag, &data],
            None
        )
        .status
        .success()
    );
    let (status, body) = once_refused(&app, &read_write).await;
    assert_error(status, &body, 401, 401, None);
    let missing = standby(&["apikeys", "add", "nobody", &store_flag, &data], None);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no user named 'nobody'"));
}

#[tokio::test]
async fn writes_and_logins_leave_an_audit_trail_for_provider_administrators() {
    let app = TestApp::demo().await;
    let (store_flag, data) = (app.store_args[0].clone(), app.store_args[1].clone());
    let failed = app
        .http
        .post(app.url("/api/v3/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "contoso-owner"),
            ("password", "guess"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 400);
    let plans = app.all_plans().await;
    let ready = plans.iter().find(|p| p["status"] == "Ready").unwrap()["instanceUid"]
        .as_str()
        .unwrap()
        .to_owned();
    let patch =
        json!([{"op": "replace", "path": "/preFailoverCommand", "value": "C:\\audited.ps1"}]);
    assert_eq!(
        send(app.patch(&format!("{PLANS}/{ready}"), &patch)).await.0,
        200
    );
    assert_eq!(
        send(app.post(&format!("{PLANS}/{ready}/undo"))).await.0,
        409
    );
    assert!(
        standby(
            &["users", "disable", "fabrikam-admin", &store_flag, &data],
            None
        )
        .status
        .success()
    );

    let (status, trail) = app
        .get_json("/api/v3/extensions/audit", &[("limit", "100")])
        .await;
    assert_eq!(status, 200, "{trail}");
    let entries = trail["data"].as_array().unwrap();
    let find = |action: &str, outcome: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action && e["outcome"] == outcome)
            .cloned()
    };
    let login = find("login", "refused").expect("the failed login");
    assert_eq!(
        (login["actorName"].as_str(), login["address"].as_str()),
        (Some("contoso-owner"), Some("127.0.0.1"))
    );
    assert!(find("login", "success").is_some());
    let patched = find("plan.patch", "success").expect("the PATCH");
    assert_eq!(
        (patched["actorName"].as_str(), patched["target"].as_str()),
        (Some(ADMIN), Some(ready.as_str()))
    );
    assert!(
        find("plan.undo", "refused").unwrap()["detail"]
            .as_str()
            .unwrap()
            .contains("409")
    );
    let disabled = find("user.disable", "success").expect("the CLI change");
    assert_eq!(
        (
            disabled["actorName"].as_str(),
            disabled["address"].as_str(),
            disabled["target"].as_str()
        ),
        (Some("cli"), Some("local"), Some("fabrikam-admin"))
    );
    let times: Vec<&str> = entries
        .iter()
        .map(|e| e["time"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");

    for user in ["contoso-owner", "noc-operator"] {
        let token = app.token_for(user, DEMO_PASSWORD).await;
        let (status, body) = call(
            &app,
            &token,
            reqwest::Method::GET,
            "/api/v3/extensions/audit",
            None,
        )
        .await;
        assert_error(status, &body, 403, 403, None);
    }
    let printed = String::from_utf8_lossy(
        &standby(&["audit", "--limit", "5", &store_flag, &data], None).stdout,
    )
    .to_string();
    assert!(
        printed.contains("user.disable") && printed.contains("records)"),
        "{printed}"
    );
}

#[tokio::test]
async fn requests_and_failed_logins_are_throttled() {
    let store = TestStore::fresh().await;
    let app = TestApp::start(
        &store,
        &[
            "--demo",
            "--throttle-requests-per-minute",
            "6",
            "--login-failures-per-5-minutes",
            "3",
        ],
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let response = app.get(PLANS).send().await.unwrap();
        let status = response.status().as_u16();
        let retry_header = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = response.json().await.unwrap();
        if status == 429 {
            assert_eq!(body["errors"][0]["type"], "transport");
            assert_eq!(body["errors"][0]["code"], 429);
            let retry = body["errors"][0]["retryAfter"].as_u64().unwrap();
            assert!((1..=60).contains(&retry), "{body}");
            assert_eq!(retry_header, Some(retry.to_string()));
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 200, 429, 429],
        "the user's window is 6 per minute"
    );
    // Another user has a window of their own.
    let other = app.token_for("noc-readonly", DEMO_PASSWORD).await;
    assert_eq!(
        call(&app, &other, reqwest::Method::GET, PLANS, None)
            .await
            .0,
        200
    );

    drop(app);

    // Logins on a server of their own: every request counts toward the address's window, and
    // this one has only 12.
    let store = TestStore::fresh().await;
    let app = TestApp::start(&store, &["--demo", "--login-failures-per-5-minutes", "3"]).await;
    let login = |password: &'static str| {
        app.http
            .post(app.url("/api/v3/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", "contoso-owner"),
                ("password", password),
            ])
            .send()
    };
    for _ in 0..3 {
        assert_eq!(login("wrong").await.unwrap().status(), 400);
    }
    let blocked = login(DEMO_PASSWORD).await.unwrap();
    assert_eq!(
        blocked.status(),
        429,
        "even the right password waits after 3 failures"
    );
    assert!(blocked.headers().get("retry-after").is_some());
    let body: Value = blocked.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(
        app.login("fabrikam-admin", DEMO_PASSWORD).await["token_type"],
        "bearer",
        "other users log in"
    );
}

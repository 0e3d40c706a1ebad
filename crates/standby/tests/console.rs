//! The web console over real HTTP: sign-in, session cookie, CSRF, roles and company scoping,
//! bad input, the live event stream and the CSV export, against the real binary. The last test
//! drives it in a real browser (tests/console/browser.py: Playwright and Debian's Chromium); it
//! needs `STANDBY_PLAYWRIGHT_PYTHON` (a Python with Playwright) and a Chromium
//! (`STANDBY_TEST_BROWSER`, default /usr/bin/chromium), and without them says so and passes,
//! unless `STANDBY_REQUIRE_BROWSER=1` (CI sets it).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

/// A browser-like session: no redirects followed, the session cookie kept by hand.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
    csrf: String,
}

fn no_redirects() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The value of a `name=value` cookie among the response's `Set-Cookie` headers, and the
/// whole header.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|header| {
            let value = header
                .split(';')
                .next()
                .and_then(|pair| pair.split_once('='))
                .map(|(_, value)| value.to_owned())
                .unwrap_or_default();
            (value, header.to_owned())
        })
}

/// The value of `<input type="hidden" name="NAME" value="...">` in a page.
fn hidden_field(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    let end = page[start..].find('"')? + start;
    Some(page[start..end].to_owned())
}

impl Browser {
    async fn sign_in(app: &TestApp, user: &str, password: &str) -> Browser {
        let mut browser = Browser {
            http: no_redirects(),
            base: app.base.clone(),
            cookie: None,
            csrf: String::new(),
        };
        let status = browser.try_sign_in(user, password).await;
        assert_eq!(status, 303, "sign in as {user}");
        let page = browser.get_text("/plans").await;
        browser.csrf = hidden_field(&page, "csrf").expect("the page carries a CSRF token");
        browser
    }

    /// One attempt: the login page, then the form; the answer's status.
    async fn try_sign_in(&mut self, user: &str, password: &str) -> u16 {
        let login = self
            .http
            .get(format!("{}/login", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 200);
        let (token, _) = set_cookie(&login, "standby_login").expect("login cookie");
        let page = login.text().await.unwrap();
        let field = hidden_field(&page, "csrf").expect("login form token");
        assert_eq!(field, token);
        let response = self
            .http
            .post(format!("{}/login", self.base))
            .header("cookie", format!("standby_login={token}"))
            .form(&[
                ("username", user),
                ("password", password),
                ("csrf", &field),
                ("next", "/plans"),
            ])
            .send()
            .await
            .unwrap();
        if let Some((session, header)) = set_cookie(&response, "standby_session") {
            assert!(header.contains("HttpOnly"), "{header}");
            assert!(header.contains("SameSite=Strict"), "{header}");
            assert!(header.contains("Path=/"), "{header}");
            assert!(header.contains("Max-Age="), "{header}");
            self.cookie = Some(session);
        }
        response.status().as_u16()
    }

    fn with_cookie(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cookie {
            Some(cookie) => request.header("cookie", format!("standby_session={cookie}")),
            None => request,
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.with_cookie(self.http.get(format!("{}{path}", self.base)))
            .send()
            .await
            .unwrap()
    }

    async fn get_text(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.unwrap()
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.with_cookie(self.http.post(format!("{}{path}", self.base)))
            .form(form)
            .send()
            .await
            .unwrap()
    }
}

async fn ready_plan(app: &TestApp, name: &str) -> String {
    let plan = app.plan_named(name).await;
    assert_eq!(plan["status"], "Ready", "{name}");
    plan["instanceUid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sign_in_sets_a_strict_session_cookie_and_pages_load_nothing_from_elsewhere() {
    let app = TestApp::demo().await;
    let http = no_redirects();
    // Not signed in: sent to the form, which returns to the page asked for.
    let response = http
        .get(app.url("/plans?status=Ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        app.url("/login?next=%2Fplans%3Fstatus%3DReady").as_str()
    );
    let login = http.get(app.url("/login")).send().await.unwrap();
    let page = login.text().await.unwrap();
    for text in ["User name", "Password", "Log in"] {
        assert!(page.contains(text), "{text}");
    }

    let browser = Browser::sign_in(&app, ADMIN, PASSWORD).await;
    let response = browser.get("/plans").await;
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let page = response.text().await.unwrap();
    assert!(page.contains("Cloud DR 01 - Tier 1 - Identity"));
    for asset in ["/console/assets/console.css", "/console/assets/console.js"] {
        let body = browser.get_text(asset).await;
        for text in [&page, &body] {
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "only this origin: {asset}"
            );
        }
    }
    // Each sign-in is audited as the API's logins are.
    let (status, audit) = app.get_json("/api/v3/extensions/audit", &[]).await;
    assert_eq!(status, 200);
    assert!(
        audit["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["detail"] == "console session" && e["outcome"] == "success"),
        "{audit}"
    );
}

#[tokio::test]
async fn console_sign_in_is_throttled_like_the_token_endpoint() {
    let app = TestApp::demo().await;
    let mut browser = Browser {
        http: no_redirects(),
        base: app.base.clone(),
        cookie: None,
        csrf: String::new(),
    };
    for _ in 0..5 {
        assert_eq!(browser.try_sign_in(ADMIN, "wrong password").await, 401);
    }
    // The sixth failure in the window is refused before the password is even checked, and so
    // is the right password now: the same counter as /api/v3/token.
    assert_eq!(browser.try_sign_in(ADMIN, PASSWORD).await, 429);
    assert!(browser.cookie.is_none());
    let response = app
        .http
        .post(app.url("/api/v3/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", ADMIN),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
}

/// Console pages count toward the API's budgets: the signed-in user's (shared with the API)
/// and the address's. Assets are not counted.
#[tokio::test]
async fn console_pages_are_throttled_with_the_apis_budgets() {
    let store = TestStore::fresh().await;
    let app = TestApp::start(&store, &["--demo", "--throttle-requests-per-minute", "20"]).await;
    let browser = Browser::sign_in(&app, ADMIN, PASSWORD).await;
    let mut statuses = Vec::new();
    for _ in 0..30 {
        let response = browser.get("/plans").await;
        let status = response.status().as_u16();
        if status == 429 {
            let retry_after: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry_after), "{retry_after}");
            let page = response.text().await.unwrap();
            assert!(page.contains("Too many requests"), "{page}");
        }
        statuses.push(status);
    }
    let refused = statuses.iter().filter(|s| **s == 429).count();
    let served = statuses.iter().filter(|s| **s == 200).count();
    // The user may make 20 requests a minute; signing in took one of them.
    assert_eq!((served, refused), (19, 11), "{statuses:?}");
    // The same user through the API shares that budget.
    let (status, body) = send(app.get(PLANS)).await;
    assert_error(status, &body, 429, 429, None);
    // Assets are served all the same.
    assert_eq!(
        browser.get("/console/assets/console.css").await.status(),
        200
    );
}

/// The console's writes are outside the API's audit layer and record their own rows: every
/// one of them leaves a row naming its actor, target and outcome, and that it came from here.
#[tokio::test]
async fn every_console_write_leaves_an_audit_row() {
    let fleet = plans_fleet(["web".to_owned(), "other".to_owned()], 2);
    let app = TestApp::with_fleet(&fleet, &[]).await;
    let web = ready_plan(&app, "web").await;
    let other = ready_plan(&app, "other").await;
    let admin = Browser::sign_in(&app, ADMIN, PASSWORD).await;
    let csrf = admin.csrf.as_str();
    let expect_redirect = |response: reqwest::Response, what: &str| {
        assert_eq!(response.status(), 303, "{what}");
    };
    expect_redirect(
        admin
            .post(
                &format!("/plans/{web}/start"),
                &[("csrf", csrf), ("mode", "test"), ("point", "latest")],
            )
            .await,
        "start",
    );
    app.wait_for(&web, &["Success"]).await;
    expect_redirect(
        admin
            .post(&format!("/plans/{web}/undo"), &[("csrf", csrf)])
            .await,
        "undo",
    );
    app.wait_for(&web, &["Ready"]).await;
    let bulk = admin
        .post(
            "/plans/bulk",
            &[("csrf", csrf), ("action", "test"), ("plan", other.as_str())],
        )
        .await;
    assert!(bulk.status().is_success() || bulk.status() == 303, "bulk");
    let (_, sessions) = app
        .get_json(
            &format!("/api/v3/extensions/failoverplans/{web}/sessions"),
            &[("limit", "1")],
        )
        .await;
    let session = sessions["data"][0]["instanceUid"].as_str().unwrap();
    expect_redirect(
        admin
            .post(
                &format!("/plans/{web}/runs/{session}/notes"),
                &[("csrf", csrf), ("text", "checked")],
            )
            .await,
        "note",
    );
    expect_redirect(
        admin
            .post(
                "/drills/new",
                &[
                    ("csrf", csrf),
                    ("name", "Audited"),
                    ("plans", "web"),
                    ("schedule", "0 6 1 */3 *"),
                    ("timeZone", "UTC"),
                    ("ttlSeconds", "3600"),
                    ("maxParallelVms", "50"),
                    ("stopAfterFailures", "0"),
                ],
            )
            .await,
        "drill",
    );
    let (_, drills) = app.get_json("/api/v3/extensions/drills", &[]).await;
    let drill = drills["data"][0]["instanceUid"]
        .as_str()
        .unwrap()
        .to_owned();
    expect_redirect(
        admin
            .post(&format!("/drills/{drill}/pause"), &[("csrf", csrf)])
            .await,
        "pause",
    );
    // Cancelling an async action (the start's, finished by now: refused, and recorded so).
    let (_, actions) = app.get_json("/api/v3/asyncActions", &[]).await;
    let action = actions["data"][0]["id"].as_str().unwrap().to_owned();
    let cancel = admin
        .post(&format!("/actions/{action}/cancel"), &[("csrf", csrf)])
        .await;
    let cancel_outcome = match cancel.status().as_u16() {
        303 => "success",
        400..=499 => "refused",
        other => panic!("cancel answered {other}"),
    };
    // A write the server refuses is recorded as refused.
    let refused = admin
        .post(&format!("/plans/{web}/undo"), &[("csrf", csrf)])
        .await;
    assert_eq!(refused.status(), 409);

    let (_, audit) = app
        .get_json("/api/v3/extensions/audit", &[("limit", "100")])
        .await;
    let rows = audit["data"].as_array().unwrap();
    let console_row = |action: &str, target: &str, outcome: &str| {
        rows.iter().any(|row| {
            row["action"] == action
                && row["target"] == target
                && row["outcome"] == outcome
                && row["actorName"] == ADMIN
                && row["detail"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("console: ")
        })
    };
    for (action, target, outcome) in [
        ("plan.start", web.as_str(), "success"),
        ("plan.undo", web.as_str(), "success"),
        ("plan.start", other.as_str(), "success"),
        ("session.note", session, "success"),
        ("drill.create", drill.as_str(), "success"),
        ("drill.pause", drill.as_str(), "success"),
        ("action.cancel", action.as_str(), cancel_outcome),
        ("plan.undo", web.as_str(), "refused"),
    ] {
        assert!(
            console_row(action, target, outcome),
            "no audit row for {action} {target} {outcome}: {audit}"
        );
    }
}

#[tokio::test]
async fn a_form_without_this_sessions_token_changes_nothing() {
    let app = TestApp::demo().await;
    let plan = ready_plan(&app, "Cloud DR 02 - Tier 1 - Databases").await;
    let admin = Browser::sign_in(&app, ADMIN, PASSWORD).await;
    let other = Browser::sign_in(&app, "noc-operator", DEMO_PASSWORD).await;
    assert_ne!(admin.csrf, other.csrf);
    let path = format!("/plans/{plan}/start");
    for form in [
        vec![("mode", "test")],
        vec![("mode", "test"), ("csrf", "")],
        vec![("mode", "test"), ("csrf", other.csrf.as_str())],
    ] {
        let response = admin.post(&path, &form).await;
        assert_eq!(response.status(), 403, "{form:?}");
    }
    for form in [vec![("action", "test"), ("plan", plan.as_str())]] {
        assert_eq!(admin.post("/plans/bulk", &form).await.status(), 403);
    }
    assert_eq!(admin.post("/logout", &[]).await.status(), 403);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.plan(&plan).await["status"], "Ready");
    // With the token it starts.
    let response = admin
        .post(&path, &[("mode", "test"), ("csrf", admin.csrf.as_str())])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        app.url(&format!("/live?plan={plan}")).as_str()
    );
    app.wait_for(&plan, &["Success"]).await;
}

#[tokio::test]
async fn roles_and_companies_are_the_apis() {
    let app = TestApp::demo().await;
    let plan = ready_plan(&app, "Fabrikam - Tier 2 - Web").await;
    // A read-only role sees no controls, and a forged form is refused anyway.
    let viewer = Browser::sign_in(&app, "noc-readonly", DEMO_PASSWORD).await;
    let page = viewer.get_text(&format!("/plans/{plan}")).await;
    assert!(!page.contains("name=\"mode\""), "no start controls");
    assert!(page.contains("can read plans but not run them"));
    let response = viewer
        .post(
            &format!("/plans/{plan}/start"),
            &[("mode", "test"), ("csrf", viewer.csrf.as_str())],
        )
        .await;
    assert_eq!(response.status(), 403);
    let response = viewer
        .post(
            "/plans/bulk",
            &[
                ("action", "undo"),
                ("plan", plan.as_str()),
                ("csrf", viewer.csrf.as_str()),
            ],
        )
        .await;
    assert_eq!(response.status(), 403);
    assert_eq!(app.plan(&plan).await["status"], "Ready");

    // A company user: its own plans only; another company's plan is not found anywhere.
    let contoso = Browser::sign_in(&app, "contoso-owner", DEMO_PASSWORD).await;
    let page = contoso.get_text("/plans?per=200").await;
    assert!(page.contains("Contoso - ERP"));
    assert!(
        !page.contains("Fabrikam"),
        "another company's plans are listed"
    );
    assert!(
        !page.contains("All companies"),
        "no company filter for a company user"
    );
    // Its server filter offers its own servers and the provider's that host its Tenant plans,
    // and filtering by one of those shows its plans there (and nobody else's).
    assert!(page.contains(">contoso-vbr01</option>"), "{page}");
    let draas = app.plan_named("Contoso DRaaS - Tier 2 - Web").await;
    let provider_server = draas["backupServerUid"].as_str().unwrap();
    assert!(
        page.contains(&format!("value=\"{provider_server}\"")),
        "{page}"
    );
    let page = contoso
        .get_text(&format!("/plans?server={provider_server}"))
        .await;
    assert!(page.contains("Contoso DRaaS - Tier 2 - Web"), "{page}");
    assert!(
        !page.contains("Cloud DR"),
        "the provider's own plans stay hidden"
    );
    for path in [
        format!("/plans/{plan}"),
        format!("/plans/{plan}/history.csv"),
        format!("/live?plan={plan}"),
        format!("/live/events?plan={plan}"),
    ] {
        assert_eq!(contoso.get(&path).await.status(), 404, "{path}");
    }
    let response = contoso
        .post(
            &format!("/plans/{plan}/start"),
            &[("mode", "test"), ("csrf", contoso.csrf.as_str())],
        )
        .await;
    assert_eq!(response.status(), 404);
    // Naming another company in the URL narrows nothing open: still only Contoso's plans.
    let fabrikam = app.plan(&plan).await["backupServerUid"].clone();
    let page = contoso
        .get_text(&format!("/plans?server={}", fabrikam.as_str().unwrap()))
        .await;
    assert!(
        page.contains("No plans match."),
        "a foreign server shows nothing"
    );
    // The audit trail is for provider administrators only.
    assert_eq!(contoso.get("/audit").await.status(), 403);
    assert_eq!(app.plan(&plan).await["status"], "Ready");
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_starts_nothing() {
    let app = TestApp::demo().await;
    let plan = ready_plan(&app, "Cloud DR 03 - Tier 2 - Web").await;
    let admin = Browser::sign_in(&app, ADMIN, PASSWORD).await;
    let csrf = admin.csrf.as_str();
    for path in [
        "/plans?status=Sleeping",
        "/plans?sort=password",
        "/plans?per=7",
        "/plans?page=-3",
        "/plans?server=nope",
        "/plans?server_name=nope",
        "/plans?company_name=Nobody%20Inc",
        "/plans/not-a-uid",
        "/live",
        "/live?plan=nope",
        "/plans/not-a-uid/runs/nope",
    ] {
        let response = admin.get(path).await;
        assert_eq!(response.status(), 400, "{path}");
        let page = response.text().await.unwrap();
        assert!(page.contains("role=\"alert\""), "{path}: {page}");
    }
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(admin.get(&format!("/plans/{unknown}")).await.status(), 404);
    // A server typed by name (the text box of a fleet with too many to list) becomes the
    // shareable URL by UID.
    let server = app.plan(&plan).await["backupServerUid"].clone();
    let response = admin
        .get("/plans?server_name=vbr-dc2-01&status=Ready")
        .await;
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.contains(&format!("server={}", server.as_str().unwrap())),
        "{location}"
    );
    assert!(location.contains("status=Ready"), "{location}");
    let start = format!("/plans/{plan}/start");
    for form in [
        vec![("csrf", csrf)],
        vec![("csrf", csrf), ("mode", "sideways")],
        vec![("csrf", csrf), ("mode", "test"), ("point", "time")],
        vec![
            ("csrf", csrf),
            ("mode", "test"),
            ("point", "time"),
            ("at", "yesterday"),
        ],
        vec![
            ("csrf", csrf),
            ("mode", "test"),
            ("point", "time"),
            ("at", "2999-01-01T00:00"),
        ],
        vec![
            ("csrf", csrf),
            ("mode", "test"),
            ("point", "time"),
            ("at", "2026-11-26T00:00"),
            ("tz", "Mars"),
        ],
    ] {
        let response = admin.post(&start, &form).await;
        assert_eq!(response.status(), 400, "{form:?}");
    }
    let many: Vec<String> = (0..201).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let mut form = vec![("csrf", csrf), ("action", "test")];
    form.extend(many.iter().map(|uid| ("plan", uid.as_str())));
    for form in [
        vec![("csrf", csrf), ("action", "test")],
        vec![
            ("csrf", csrf),
            ("action", "reboot"),
            ("plan", plan.as_str()),
        ],
        vec![("csrf", csrf), ("action", "test"), ("plan", "nope")],
        form,
    ] {
        let response = admin.post("/plans/bulk", &form).await;
        assert_eq!(response.status(), 400);
    }
    // A bulk undo of a plan at rest: refused, named, with its reason, on the answer itself.
    let response = admin
        .post(
            "/plans/bulk",
            &[("csrf", csrf), ("action", "undo"), ("plan", plan.as_str())],
        )
        .await;
    assert_eq!(response.status(), 409);
    let page = response.text().await.unwrap();
    assert!(page.contains("0 started, 1 refused"), "{page}");
    assert!(page.contains("Cloud DR 03 - Tier 2 - Web"));
    // A start the state machine refuses says why, with the API's 409.
    let response = admin
        .post(&format!("/plans/{plan}/undo"), &[("csrf", csrf)])
        .await;
    assert_eq!(response.status(), 409);
    assert!(response.text().await.unwrap().contains("Ready"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.plan(&plan).await["status"], "Ready");
}

#[tokio::test]
async fn a_production_start_waits_for_confirm() {
    let app = TestApp::demo().await;
    let plan = ready_plan(&app, "Contoso - Tier 1 - Identity").await;
    let admin = Browser::sign_in(&app, ADMIN, PASSWORD).await;
    let csrf = admin.csrf.as_str();
    let response = admin
        .post(
            &format!("/plans/{plan}/start"),
            &[("csrf", csrf), ("mode", "production"), ("point", "latest")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("PRODUCTION") && page.contains(">Confirm</button>"),
        "{page}"
    );
    assert!(
        page.contains("contoso-dc01"),
        "each VM and its point are listed"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.plan(&plan).await["status"],
        "Ready",
        "nothing started yet"
    );
    let response = admin
        .post(
            &format!("/plans/{plan}/start"),
            &[
                ("csrf", csrf),
                ("mode", "production"),
                ("point", "latest"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    app.wait_for(&plan, &["Completed"]).await;
    // Bulk: the same rule.
    let other = ready_plan(&app, "Contoso - Tier 2 - Web").await;
    let response = admin
        .post(
            "/plans/bulk",
            &[
                ("csrf", csrf),
                ("action", "start"),
                ("plan", other.as_str()),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains(">Confirm</button>"));
    assert_eq!(app.plan(&other).await["status"], "Ready");
}

#[tokio::test]
async fn the_live_stream_sends_each_change_and_resumes() {
    let store = TestStore::fresh().await;
    // Slow enough boots that the stream sees the run between its start and its end.
    let app = TestApp::start(&store, &["--demo", "--sim-boot-ms", "300-600"]).await;
    let plan = ready_plan(&app, "Northwind - Tier 1 - Identity").await;
    let admin = Browser::sign_in(&app, ADMIN, PASSWORD).await;
    let path = format!("/live/events?plan={plan}");
    let response = admin.get(&path).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let start = app
        .post(&format!("{PLANS}/{plan}/start?test=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 200);
    let events = read_events(response, Duration::from_secs(60), |data| {
        data.contains(&format!("id=\"{plan}\"")) && data.contains("data-finished=\"true\"")
    })
    .await;
    let panels: Vec<&(String, String)> = events
        .iter()
        .filter(|(_, data)| data.contains(&format!("id=\"{plan}\"")))
        .collect();
    assert!(
        panels.last().is_some_and(|(_, d)| d.contains("Success")),
        "the run's end arrives: {events:?}"
    );
    assert!(
        panels
            .iter()
            .any(|(_, d)| d.contains("data-finished=\"false\"") && d.contains("Running")),
        "a state between start and end arrives too"
    );
    // Every event names the data generation it shows, and they only go forward.
    let ids: Vec<u64> = events
        .iter()
        .map(|(id, _)| id.parse().expect("numeric id"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] <= w[1]), "{ids:?}");
    // A reconnect (Last-Event-ID) is sent every panel at once, so it cannot keep a stale one.
    let resumed = admin
        .with_cookie(admin.http.get(format!("{}{path}", admin.base)))
        .header("last-event-id", ids.last().unwrap().to_string())
        .send()
        .await
        .unwrap();
    let again = read_events(resumed, Duration::from_secs(10), |data| {
        data.contains(&format!("id=\"{plan}\""))
    })
    .await;
    assert!(
        again
            .iter()
            .any(|(_, d)| d.contains("data-finished=\"true\"")),
        "{again:?}"
    );

    // Signed out, the stream is refused (and the pages send to the form).
    assert_eq!(
        admin
            .post("/logout", &[("csrf", admin.csrf.as_str())])
            .await
            .status(),
        303
    );
    assert_eq!(admin.get(&path).await.status(), 401);
    assert_eq!(admin.get("/plans").await.status(), 303);
}

#[tokio::test]
async fn the_run_history_exports_as_csv_matching_the_sessions() {
    let app = TestApp::demo().await;
    let plan = app.plan_named("Cloud DR 01 - Tier 1 - Identity").await;
    let uid = plan["instanceUid"].as_str().unwrap();
    let admin = Browser::sign_in(&app, ADMIN, PASSWORD).await;
    let response = admin.get(&format!("/plans/{uid}/history.csv")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    let csv = response.text().await.unwrap();
    let (status, sessions) = app
        .get_json(
            &format!("/api/v3/extensions/failoverplans/{uid}/sessions"),
            &[("limit", "100")],
        )
        .await;
    assert_eq!(status, 200);
    let runs = sessions["data"].as_array().unwrap();
    let vm_lines: usize = runs
        .iter()
        .map(|r| r["vms"].as_array().unwrap().len().max(1))
        .sum();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + vm_lines, "{csv}");
    assert!(lines[0].starts_with("\"plan\",\"run\",\"kind\""));
    for run in runs {
        let id = run["instanceUid"].as_str().unwrap();
        let rows: Vec<&&str> = lines.iter().filter(|l| l.contains(id)).collect();
        assert_eq!(rows.len(), run["vms"].as_array().unwrap().len().max(1));
        let status = run["status"].as_str().unwrap();
        assert!(rows.iter().all(|r| r.contains(&format!("\"{status}\""))));
    }
}

#[tokio::test]
async fn a_run_page_judges_the_run_prints_its_report_and_takes_notes() {
    let app = TestApp::demo().await;
    let uid = ready_plan(&app, "Cloud DR 02 - Tier 1 - Databases").await;
    let started = app
        .post(&format!("{PLANS}/{uid}/start?test=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 200);
    app.wait_for(&uid, &["Success", "Failed"]).await;
    let (_, sessions) = app
        .get_json(
            &format!("/api/v3/extensions/failoverplans/{uid}/sessions"),
            &[("limit", "1")],
        )
        .await;
    let run = &sessions["data"][0];
    let session = run["instanceUid"].as_str().unwrap();
    let verdict = match run["verdict"].as_str().unwrap() {
        "TargetMissed" => "Target missed",
        "PassedWithWarnings" => "Passed with warnings",
        other => other,
    };
    let admin = Browser::sign_in(&app, ADMIN, PASSWORD).await;
    let path = format!("/plans/{uid}/runs/{session}");
    let page = admin.get_text(&path).await;
    assert!(page.contains(verdict), "the run's verdict: {verdict}");
    assert!(page.contains("RTO (start to last VM ready)"));
    assert!(page.contains("10 min"), "the demo's RTO target of 600 s");
    assert!(page.contains(&format!("{path}/report")));
    // Its log is shown whether or not it is the plan's last run.
    assert!(page.contains("<h2>Log</h2>"));
    let printable = admin.get_text(&format!("{path}/report")).await;
    assert!(printable.contains(&format!("Verdict: {}", run["verdict"].as_str().unwrap())));

    // A note through the form, with this session's token; a forged one changes nothing.
    let forged = admin
        .post(
            &format!("{path}/notes"),
            &[("csrf", "not-the-token"), ("text", "forged")],
        )
        .await;
    assert_eq!(forged.status(), 403);
    let added = admin
        .post(
            &format!("{path}/notes"),
            &[
                ("csrf", admin.csrf.as_str()),
                ("text", "Checked <DNS> by hand."),
            ],
        )
        .await;
    assert_eq!(added.status(), 303);
    let empty = admin
        .post(
            &format!("{path}/notes"),
            &[("csrf", admin.csrf.as_str()), ("text", "  ")],
        )
        .await;
    assert_eq!(empty.status(), 400);
    let page = admin.get_text(&path).await;
    assert!(page.contains("Checked &#60;DNS&#62; by hand."));
    assert!(!page.contains("forged"));
    let (_, report) = app
        .get_json(
            &format!("/api/v3/extensions/failoverplans/{uid}/sessions/{session}/report"),
            &[],
        )
        .await;
    let notes = report["data"]["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{report}");
    assert_eq!(notes[0]["author"], ADMIN);
    // A read-only operator reads the notes but has no form, and a posted one is refused.
    let viewer = Browser::sign_in(&app, "noc-readonly", DEMO_PASSWORD).await;
    let page = viewer.get_text(&path).await;
    assert!(page.contains("Checked &#60;DNS&#62; by hand."));
    assert!(!page.contains("Add note"));
    let refused = viewer
        .post(
            &format!("{path}/notes"),
            &[("csrf", viewer.csrf.as_str()), ("text", "mine")],
        )
        .await;
    assert_eq!(refused.status(), 403);
}

#[tokio::test]
async fn drills_are_listed_paused_run_and_reported_in_the_console() {
    let store = TestStore::fresh().await;
    let app = TestApp::start(&store, &["--demo", "--sim-boot-ms", "50-100"]).await;
    let uid = ready_plan(&app, "Contoso - Tier 2 - Web").await;
    let admin = Browser::sign_in(&app, ADMIN, PASSWORD).await;
    // Scheduled through the console's form, checked by the API's rules.
    let form = |schedule: &'static str| {
        [
            ("name", "Quarterly <Contoso>"),
            ("plans", "Contoso - Tier 2 - Web"),
            ("schedule", schedule),
            ("timeZone", "Europe/London"),
            ("ttlSeconds", "1"),
            ("maxParallelVms", "50"),
            ("stopAfterFailures", "0"),
        ]
    };
    let mut bad = form("every quarter").to_vec();
    bad.push(("csrf", admin.csrf.as_str()));
    let refused = admin.post("/drills/new", &bad).await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("cron"));
    let mut good = form("0 6 1 */3 *").to_vec();
    good.push(("csrf", admin.csrf.as_str()));
    let created = admin.post("/drills/new", &good).await;
    assert_eq!(created.status(), 303);
    let (_, drills) = app.get_json("/api/v3/extensions/drills", &[]).await;
    let created = drills["data"][0].clone();
    assert_eq!(created["name"], "Quarterly <Contoso>", "{drills}");
    let drill = created["instanceUid"].as_str().unwrap().to_owned();
    let page = admin.get_text("/drills").await;
    assert!(page.contains("Quarterly &#60;Contoso&#62;"));
    assert!(page.contains("Europe/London"));
    let forged = admin
        .post(&format!("/drills/{drill}/run"), &[("csrf", "nope")])
        .await;
    assert_eq!(forged.status(), 403);
    let ran = admin
        .post(
            &format!("/drills/{drill}/run"),
            &[("csrf", admin.csrf.as_str())],
        )
        .await;
    assert_eq!(ran.status(), 303);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let run = loop {
        let (_, body) = app
            .get_json(&format!("/api/v3/extensions/drills/{drill}"), &[])
            .await;
        let newest = &body["data"]["runs"][0];
        if newest["state"] == "finished" {
            break newest["instanceUid"].as_str().unwrap().to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let page = admin.get_text(&format!("/drills/{drill}/runs/{run}")).await;
    assert!(page.contains("Contoso - Tier 2 - Web"));
    assert!(page.contains("Undone"));
    assert!(
        page.contains(&format!("/plans/{uid}/runs/")),
        "a link to the test's run"
    );
    let paused = admin
        .post(
            &format!("/drills/{drill}/pause"),
            &[("csrf", admin.csrf.as_str())],
        )
        .await;
    assert_eq!(paused.status(), 303);
    assert!(admin.get_text("/drills").await.contains("Paused"));
    // A read-only operator sees the drill and no buttons; a posted one is refused.
    let viewer = Browser::sign_in(&app, "noc-readonly", DEMO_PASSWORD).await;
    let page = viewer.get_text("/drills").await;
    assert!(page.contains("Quarterly"));
    assert!(!page.contains("Resume"));
    let refused = viewer
        .post(
            &format!("/drills/{drill}/resume"),
            &[("csrf", viewer.csrf.as_str())],
        )
        .await;
    assert_eq!(refused.status(), 403);
    // A company user does not see the provider's drill, nor its runs.
    let contoso = Browser::sign_in(&app, "contoso-owner", DEMO_PASSWORD).await;
    assert!(!contoso.get_text("/drills").await.contains("Quarterly"));
    let hidden = contoso.get(&format!("/drills/{drill}/runs/{run}")).await;
    assert_eq!(hidden.status(), 404);
    let unknown = admin
        .post(
            &format!("/drills/{drill}/explode"),
            &[("csrf", admin.csrf.as_str())],
        )
        .await;
    assert_eq!(unknown.status(), 404);
    let deleted = admin
        .post(
            &format!("/drills/{drill}/delete"),
            &[("csrf", admin.csrf.as_str())],
        )
        .await;
    assert_eq!(deleted.status(), 303);
    assert!(!admin.get_text("/drills").await.contains("Quarterly"));
    let (status, _) = app
        .get_json(&format!("/api/v3/extensions/drills/{drill}"), &[])
        .await;
    assert_eq!(status, 404);
}

fn playwright_python() -> Option<PathBuf> {
    let required = std::env::var("STANDBY_REQUIRE_BROWSER").as_deref() == Ok("1");
    let python = std::env::var("STANDBY_PLAYWRIGHT_PYTHON")
        .ok()
        .map(PathBuf::from);
    let browser = PathBuf::from(
        std::env::var("STANDBY_TEST_BROWSER").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    match python {
        Some(python) if python.exists() && browser.exists() => Some(python),
        _ => {
            assert!(
                !required,
                "STANDBY_REQUIRE_BROWSER=1 but STANDBY_PLAYWRIGHT_PYTHON or the browser at {} is missing",
                browser.display()
            );
            eprintln!("skipped: set STANDBY_PLAYWRIGHT_PYTHON to a Python with Playwright");
            None
        }
    }
}

#[tokio::test]
async fn the_console_works_in_a_real_browser() {
    let Some(python) = playwright_python() else {
        return;
    };
    let store = TestStore::fresh().await;
    // Runs long enough to be watched, short enough for CI.
    let app = TestApp::start(&store, &["--demo", "--sim-boot-ms", "300-900"]).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/console/browser.py");
    let shots = std::env::var("STANDBY_CONSOLE_SHOTS").unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/console-shots")
            .display()
            .to_string()
    });
    let browser =
        std::env::var("STANDBY_TEST_BROWSER").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let base = app.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(["--base", &base, "--password", PASSWORD])
            .args(["--demo-password", DEMO_PASSWORD, "--browser", &browser])
            .args(["--shots", &shots])
            .output()
            .expect("run the browser test")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "browser checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

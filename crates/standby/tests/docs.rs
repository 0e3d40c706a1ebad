//! Black-box, in a real browser: the API explorer at `/api/docs` renders every documented
//! operation from the served OpenAPI document, with every host but this server unreachable
//! (the assets are compiled in). Needs Chromium (`STANDBY_TEST_BROWSER`, default
//! /usr/bin/chromium); without it the test says so and passes, unless
//! `STANDBY_REQUIRE_BROWSER=1` (CI sets it), where a missing browser fails.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

fn browser() -> Option<PathBuf> {
    let path = PathBuf::from(
        std::env::var("STANDBY_TEST_BROWSER").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("STANDBY_REQUIRE_BROWSER").as_deref() != Ok("1"),
        "STANDBY_REQUIRE_BROWSER=1 but there is no browser at {}",
        path.display()
    );
    eprintln!(
        "skipped: no browser at {} (set STANDBY_TEST_BROWSER)",
        path.display()
    );
    None
}

#[tokio::test]
async fn the_explorer_renders_every_operation_offline() {
    let app = TestApp::demo().await;

    let response = app.http.get(app.url("/api/docs")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let page = response.text().await.unwrap();
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "only this origin: {page}"
    );
    for asset in [
        "/api/docs/swagger-ui-bundle.js",
        "/api/docs/swagger-ui.css",
        "/api/docs/explorer.js",
    ] {
        let response = app.http.get(app.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
    }

    let Some(browser) = browser() else {
        return;
    };
    let (_, document) = send(app.http.get(app.url("/api/v3/openapi.json"))).await;
    let operations: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();

    let profile = tempfile::tempdir().unwrap();
    let url = app.url("/api/docs");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                // Every other host fails to resolve: the page must need nothing from outside.
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--virtual-time-budget=20000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .output()
    })
    .await
    .unwrap()
    .expect("run the browser");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dom = String::from_utf8_lossy(&output.stdout);
    // One rendered block per documented operation, titled by its summary.
    let blocks = dom.matches("class=\"opblock-summary-path\"").count();
    assert_eq!(blocks, operations, "rendered operations");
    for text in [
        "Start Failover Plan",
        "Standby Extensions",
        "Authorize",
        "Preview a start",
    ] {
        assert!(dom.contains(text), "{text} is not on the page");
    }
}

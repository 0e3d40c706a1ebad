//! Notifications over real HTTP and SMTP: a webhook receiver in the test checks every
//! signature and sees each event at least once across a SIGKILL of the server; an unreachable
//! receiver is retried and the attempts are logged until it answers; a company's webhook sees
//! only its own plans; email goes through a real SMTP server the test starts.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use common::*;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

const HOOKS: &str = "/api/v3/extensions/webhooks";
const SECRET: &str = "a-receiver-secret-of-some-length";

#[derive(Debug, Clone)]
struct Received {
    event: String,
    delivery: String,
    body: Value,
}

/// An HTTP receiver on a port of its own: it checks each delivery's signature (a bad one is
/// answered 401 and counted) and keeps what it was sent.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    bad_signatures: Arc<Mutex<u32>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn expected_signature(body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

async fn receiver_on(address: SocketAddr) -> Receiver {
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let address = listener.local_addr().unwrap();
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let bad_signatures: Arc<Mutex<u32>> = Arc::default();
    let (kept, bad) = (received.clone(), bad_signatures.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let (kept, bad) = (kept.clone(), bad.clone());
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                if header("x-standby-signature") != expected_signature(&body) {
                    *bad.lock().unwrap() += 1;
                    return axum::http::StatusCode::UNAUTHORIZED;
                }
                kept.lock().unwrap().push(Received {
                    event: header("x-standby-event"),
                    delivery: header("x-standby-delivery"),
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                });
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        url: format!("http://{address}/hook"),
        received,
        bad_signatures,
        task,
    }
}

impl Receiver {
    fn events(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until a delivery of `event` about `session` (or any, with `None`) has arrived.
    async fn wait_for(&self, event: &str, session: Option<&str>) -> Received {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(found) = self.events().into_iter().find(|r| {
                r.event == event && session.is_none_or(|s| r.body["data"]["sessionUid"] == s)
            }) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no {event} arrived; got {:?}",
                self.events()
                    .iter()
                    .map(|r| r.event.clone())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn add_webhook(app: &TestApp, token: &str, body: &Value) -> (u16, Value) {
    send(app.http.post(app.url(HOOKS)).bearer_auth(token).json(body)).await
}

async fn newest_session(app: &TestApp, plan: &str) -> String {
    let (_, sessions) = app
        .get_json(
            &format!("/api/v3/extensions/failoverplans/{plan}/sessions"),
            &[("limit", "1")],
        )
        .await;
    sessions["data"][0]["instanceUid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn every_event_is_signed_and_arrives_at_least_once_across_a_kill() {
    let fleet = one_plan_fleet("Payroll", 3).replace(
        "type = \"Local\"\n",
        "type = \"Local\"\nrto_target_seconds = 600\nrpo_target_seconds = 3600\n",
    );
    let temp = tempfile::tempdir().unwrap();
    let file = temp.path().join("fleet.toml");
    std::fs::write(&file, fleet).unwrap();
    let store = TestStore::fresh().await;
    let args = [
        "--fleet",
        file.to_str().unwrap(),
        "--sim-boot-ms",
        "400-800",
        "--notification-retry-seconds",
        "1",
        "--lease-seconds",
        "3",
    ];
    let mut app = TestApp::start(&store, &args).await;
    let receiver = receiver_on("127.0.0.1:0".parse().unwrap()).await;
    let (status, hook) = add_webhook(
        &app,
        &app.token,
        &json!({"url": receiver.url, "secret": SECRET}),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    assert!(
        hook["data"].get("secret").is_none(),
        "the secret is not echoed"
    );
    let hook = hook["data"]["instanceUid"].as_str().unwrap().to_owned();
    let plan = app.plan_named("Payroll").await["instanceUid"]
        .as_str()
        .unwrap()
        .to_owned();

    // Start a test and kill the server in the middle of it: what was committed is told anyway.
    let (status, _) = send(app.post(&format!("{PLANS}/{plan}/start?test=true"))).await;
    assert_eq!(status, 200);
    let session = newest_session(&app, &plan).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.kill();
    app = TestApp::start(&store, &args).await;
    app.wait_for(&plan, &["Success"]).await;

    let started = receiver.wait_for("run.started", Some(&session)).await;
    assert_eq!(started.body["data"]["planName"], "Payroll");
    assert_eq!(started.body["data"]["kind"], "test");
    assert_eq!(started.body["id"], started.delivery.as_str());
    let finished = receiver.wait_for("run.finished", Some(&session)).await;
    assert_eq!(finished.body["data"]["status"], "Success");
    // The points are a month old: the hour's RPO target is missed, and said so.
    let missed = receiver.wait_for("target.missed", Some(&session)).await;
    assert_eq!(missed.body["data"]["rpoMet"], false, "{:?}", missed.body);
    assert_eq!(missed.body["data"]["verdict"], "TargetMissed");
    assert_eq!(*receiver.bad_signatures.lock().unwrap(), 0);
    // A delivery id is one delivery: a repeat (at least once) carries the same id and body.
    let events = receiver.events();
    for one in &events {
        for other in events.iter().filter(|o| o.delivery == one.delivery) {
            assert_eq!(other.body, one.body);
        }
    }
    // The log shows each as delivered, with the receiver's answer.
    let (status, log) = app
        .get_json(&format!("{HOOKS}/{hook}/deliveries"), &[])
        .await;
    assert_eq!(status, 200, "{log}");
    let log = log["data"].as_array().unwrap();
    for event in ["run.started", "run.finished", "target.missed"] {
        let entry = log.iter().find(|d| d["event"] == event).unwrap();
        assert_eq!(entry["state"], "delivered", "{entry}");
        assert_eq!(entry["lastStatus"], 204);
    }
}

#[tokio::test]
async fn an_unreachable_receiver_is_retried_and_logged_until_it_answers() {
    let app = TestApp::with_fleet(
        &one_plan_fleet("Ledger", 1),
        &[
            "--sim-boot-ms",
            "50-100",
            "--notification-retry-seconds",
            "1",
        ],
    )
    .await;
    // A port nothing listens on (yet).
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (status, hook) = add_webhook(
        &app,
        &app.token,
        &json!({"url": format!("http://{address}/hook"), "secret": SECRET, "events": ["run.started"]}),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    assert_eq!(hook["data"]["events"], json!(["run.started"]));
    let hook = hook["data"]["instanceUid"].as_str().unwrap().to_owned();
    let plan = app.plan_named("Ledger").await["instanceUid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        send(app.post(&format!("{PLANS}/{plan}/start?test=true")))
            .await
            .0,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let entry = loop {
        let (_, log) = app
            .get_json(&format!("{HOOKS}/{hook}/deliveries"), &[])
            .await;
        if let Some(entry) = log["data"].as_array().and_then(|l| l.first()).cloned()
            && entry["attempts"].as_u64().unwrap_or(0) >= 2
        {
            break entry;
        }
        assert!(Instant::now() < deadline, "no retries logged: {log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(entry["state"], "pending", "{entry}");
    assert!(
        entry["lastError"]
            .as_str()
            .unwrap()
            .contains("request failed"),
        "{entry}"
    );
    assert!(entry["nextAttemptAt"].is_string());
    // The receiver comes up on that port: the next attempt delivers.
    let receiver = receiver_on(address).await;
    let started = receiver.wait_for("run.started", None).await;
    assert_eq!(started.body["data"]["planUid"], plan.as_str());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, log) = app
            .get_json(&format!("{HOOKS}/{hook}/deliveries"), &[])
            .await;
        if log["data"][0]["state"] == "delivered" {
            break;
        }
        assert!(Instant::now() < deadline, "{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Only what it subscribed to: no run.finished came.
    app.wait_for(&plan, &["Success"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(receiver.events().iter().all(|r| r.event == "run.started"));
}

#[tokio::test]
async fn a_companys_webhook_hears_only_of_its_own_plans_and_bad_input_is_refused() {
    let store = TestStore::fresh().await;
    let app = TestApp::start(&store, &["--demo", "--sim-boot-ms", "50-100"]).await;
    let plans = app.all_plans().await;
    let ready = |prefix: &str| {
        plans
            .iter()
            .find(|p| {
                p["name"].as_str().unwrap().starts_with(prefix)
                    && p["type"] == "Local"
                    && p["status"] == "Ready"
            })
            .unwrap()["instanceUid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (contoso_plan, fabrikam_plan) = (ready("Contoso - "), ready("Fabrikam - "));
    let contoso = app.token_for("contoso-owner", DEMO_PASSWORD).await;
    let receiver = receiver_on("127.0.0.1:0".parse().unwrap()).await;
    for (body, property) in [
        (json!({"url": "ftp://x/hook", "secret": SECRET}), "url"),
        (json!({"url": "not a url", "secret": SECRET}), "url"),
        (json!({"url": receiver.url, "secret": "short"}), "secret"),
        (json!({"url": receiver.url}), "secret"),
        (
            json!({"url": receiver.url, "secret": SECRET, "events": ["run.exploded"]}),
            "events",
        ),
        (
            json!({"url": receiver.url, "secret": SECRET, "events": []}),
            "events",
        ),
        (json!({"secret": SECRET}), "url"),
        (
            json!({"url": receiver.url, "secret": SECRET, "colour": 1}),
            "colour",
        ),
        (json!({"email": "not an address"}), "email"),
        // Found by schemathesis: a non-text email was taken for "no email".
        (
            json!({"url": receiver.url, "secret": SECRET, "email": {}}),
            "email",
        ),
        (json!({"url": 5, "secret": SECRET}), "url"),
        (
            json!({"url": receiver.url, "secret": SECRET, "email": null}),
            "email",
        ),
        (
            json!({"url": receiver.url, "secret": SECRET, "events": null}),
            "events",
        ),
        (json!({"url": receiver.url, "secret": ["x"]}), "secret"),
    ] {
        let (status, error) = add_webhook(&app, &contoso, &body).await;
        assert_eq!(status, 400, "{body} -> {error}");
        assert_eq!(error["errors"][0]["propertyName"], property, "{error}");
    }
    // Email needs a relay this server does not have.
    let (status, _) = add_webhook(&app, &contoso, &json!({"email": "noc@contoso.example"})).await;
    assert_eq!(status, 409);
    let (_, none) = send(app.http.get(app.url(HOOKS)).bearer_auth(&contoso)).await;
    assert_eq!(none["data"], json!([]), "no refused webhook was kept");

    let (status, hook) = add_webhook(
        &app,
        &contoso,
        &json!({"url": receiver.url, "secret": SECRET, "events": ["run.started", "run.finished"]}),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let hook = hook["data"]["instanceUid"].as_str().unwrap().to_owned();
    for plan in [&fabrikam_plan, &contoso_plan] {
        assert_eq!(
            send(app.post(&format!("{PLANS}/{plan}/start?test=true")))
                .await
                .0,
            200
        );
    }
    let contoso_session = newest_session(&app, &contoso_plan).await;
    receiver
        .wait_for("run.finished", Some(&contoso_session))
        .await;
    app.wait_for(&fabrikam_plan, &["Success", "Failed"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let heard: Vec<String> = receiver
        .events()
        .iter()
        .map(|r| {
            r.body["data"]["planUid"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert!(!heard.is_empty());
    assert!(
        heard.iter().all(|p| p == &contoso_plan),
        "Contoso's webhook heard of another company's plan: {heard:?}"
    );
    // Fabrikam sees neither the webhook nor its log; the provider sees both.
    let fabrikam = app.token_for("fabrikam-admin", DEMO_PASSWORD).await;
    let (status, _) = send(
        app.http
            .get(app.url(&format!("{HOOKS}/{hook}/deliveries")))
            .bearer_auth(&fabrikam),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(
        app.http
            .delete(app.url(&format!("{HOOKS}/{hook}")))
            .bearer_auth(&fabrikam),
    )
    .await;
    assert_eq!(status, 404);
    let (_, all) = app.get_json(HOOKS, &[]).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 1);
    let (status, _) = send(
        app.http
            .delete(app.url(&format!("{HOOKS}/{hook}")))
            .bearer_auth(&contoso),
    )
    .await;
    assert_eq!(status, 200);
    let (_, all) = app.get_json(HOOKS, &[]).await;
    assert_eq!(all["data"], json!([]));
}

/// The SMTP server's process, killed when the test ends however it ends.
struct SmtpServer(std::process::Child);

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Python's smtpd (3.11 and older): a real SMTP server that prints each message it receives.
fn smtp_server() -> (SmtpServer, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("python3")
        .args([
            "-u",
            "-W",
            "ignore",
            "-m",
            "smtpd",
            "-n",
            "-c",
            "DebuggingServer",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("python3 with its smtpd module (Python 3.11) runs the SMTP server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the SMTP server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (SmtpServer(child), port)
}

#[tokio::test]
async fn a_failed_vm_is_emailed_through_a_real_smtp_server() {
    let (mut smtp, port) = smtp_server();
    let mut stdout = smtp.0.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(&mut stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let fleet = one_plan_fleet("Mail plan", 2).replace(
        "  name = \"vm-1\"\n",
        "  name = \"vm-1\"\n  sim_fault = \"boot-fails\"\n",
    );
    let app = TestApp::with_fleet(
        &fleet,
        &[
            "--sim-boot-ms",
            "50-100",
            "--smtp-url",
            &smtp_url,
            "--smtp-from",
            "Standby DR <dr@msp.example>",
        ],
    )
    .await;
    let (status, channel) = add_webhook(
        &app,
        &app.token,
        &json!({"email": "noc@msp.example", "events": ["vm.failed"]}),
    )
    .await;
    assert_eq!(status, 201, "{channel}");
    assert_eq!(channel["data"]["kind"], "email");
    let plan = app.plan_named("Mail plan").await["instanceUid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        send(app.post(&format!("{PLANS}/{plan}/start?test=true")))
            .await
            .0,
        200
    );
    app.wait_for(&plan, &["Failed"]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let text = loop {
        while let Ok(line) = lines_rx.try_recv() {
            seen.push(line);
        }
        let text = seen.join("\n");
        if text.contains("END MESSAGE") {
            break text;
        }
        assert!(Instant::now() < deadline, "no mail arrived: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(smtp);
    assert!(
        text.contains("Subject: [Standby] vm.failed Mail plan"),
        "{text}"
    );
    assert!(text.contains("noc@msp.example"), "{text}");
    assert!(text.contains("dr@msp.example"), "{text}");
    assert!(text.contains("\"event\": \"vm.failed\""), "{text}");
    let (_, log) = app
        .get_json(
            &format!(
                "{HOOKS}/{}/deliveries",
                channel["data"]["instanceUid"].as_str().unwrap()
            ),
            &[],
        )
        .await;
    assert_eq!(log["data"][0]["state"], "delivered", "{log}");
    assert_eq!(log["data"][0]["lastStatus"], 250);
}

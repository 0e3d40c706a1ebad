//! A `TestApp`: the real `standby` binary started on a random port with a fresh store,
//! and a small HTTP client that speaks to it as a VSPC client would.

#![allow(dead_code)]

pub mod agent;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const ADMIN: &str = "admin";
pub const PASSWORD: &str = "correct horse battery staple";
/// Every demo user's password in tests (STANDBY_DEMO_PASSWORD).
pub const DEMO_PASSWORD: &str = "demo-users-password";
pub const PLANS: &str = "/api/v3/infrastructure/backupServers/failoverplans";
pub const OBJECTS: &str = "/api/v3/infrastructure/backupServers/failoverplans/objects";

/// Where a test's server keeps its data: a fresh SQLite data directory, or, when
/// `STANDBY_TEST_POSTGRES_URL` names a PostgreSQL server (CI sets it for the second run of the
/// suite), a fresh database there.
pub struct TestStore {
    args: Vec<String>,
    pub location: standby_store::Location,
    _temp: Option<tempfile::TempDir>,
    /// A PostgreSQL database made for this test, dropped with it.
    _database: Option<standby_store::ScratchDatabase>,
}

/// The PostgreSQL server the suite runs against, if any (a URL whose role may CREATE DATABASE).
pub fn postgres_under_test() -> Option<String> {
    std::env::var("STANDBY_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

impl TestStore {
    /// A fresh store on the backend under test.
    pub async fn fresh() -> TestStore {
        match postgres_under_test() {
            Some(admin) => Self::postgres(&admin).await,
            None => {
                let temp = tempfile::tempdir().expect("temp dir");
                let mut store = Self::at_dir(&temp.path().join("data"));
                store._temp = Some(temp);
                store
            }
        }
    }

    /// A fresh database on a PostgreSQL server.
    pub async fn postgres(admin_url: &str) -> TestStore {
        let database = standby_store::ScratchDatabase::create(admin_url, "standby_test")
            .await
            .expect("create a test database");
        TestStore {
            args: vec!["--database".into(), database.url.clone()],
            location: standby_store::Location::Postgres(database.url.clone()),
            _temp: None,
            _database: Some(database),
        }
    }

    /// SQLite in a given data directory (tests of the data directory itself).
    pub fn at_dir(dir: &Path) -> TestStore {
        TestStore {
            args: vec!["--data-dir".into(), dir.display().to_string()],
            location: standby_store::Location::data_dir(dir),
            _temp: None,
            _database: None,
        }
    }

    /// The store a `--database` URL names (kept by the caller).
    pub fn at_url(url: &str) -> TestStore {
        TestStore {
            args: vec!["--database".into(), url.to_owned()],
            location: standby_store::Location::parse(url).expect("a database URL"),
            _temp: None,
            _database: None,
        }
    }

    /// The flags that point a `standby` command at this store.
    pub fn args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    /// Imports a fleet file's text with `standby fleet import`, as an operator would (another
    /// process than the servers on this store).
    pub fn import_fleet(&self, fleet: &str) {
        let temp = tempfile::tempdir().expect("temp dir");
        let file = temp.path().join("fleet.toml");
        std::fs::write(&file, fleet).expect("write fleet");
        let imported = std::process::Command::new(binary())
            .args(["fleet", "import", file.to_str().expect("path")])
            .args(self.args())
            .output()
            .expect("run standby fleet import");
        assert!(
            imported.status.success(),
            "{}",
            String::from_utf8_lossy(&imported.stderr)
        );
    }

    /// Opens the store directly (to read what the server wrote, such as the sim ledger).
    pub async fn open(&self) -> std::sync::Arc<dyn standby_store::Store> {
        standby_store::open(&self.location)
            .await
            .expect("open store")
    }
}

pub struct TestApp {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
    /// The flags that point a `standby` command at this server's store.
    pub store_args: Vec<String>,
    child: Child,
    store: Option<TestStore>,
}

/// A fleet file: one provider, one backup server, one Local plan of `vms` VMs named `vm-0`...,
/// each with one restore point.
pub fn one_plan_fleet(plan: &str, vms: usize) -> String {
    let mut text = format!(
        "[[organizations]]\nname = \"MSP\"\nkind = \"provider\"\n\n[[servers]]\nname = \"vbr-1\"\norganization = \"MSP\"\n\n[[plans]]\nname = \"{plan}\"\nserver = \"vbr-1\"\ntype = \"Local\"\n"
    );
    for vm in 0..vms {
        text.push_str(&format!(
            "  [[plans.vms]]\n  name = \"vm-{vm}\"\n  restore_points = [\"2026-11-01T00:00:00Z\"]\n"
        ));
    }
    text
}

/// A fleet file: one provider, one backup server, and for each name a Local plan of `vms` VMs
/// named `{plan}-vm-0`..., each with one restore point.
pub fn plans_fleet(plans: impl IntoIterator<Item = String>, vms: usize) -> String {
    let mut text = String::from(
        "[[organizations]]\nname = \"MSP\"\nkind = \"provider\"\n\n[[servers]]\nname = \"vbr-1\"\norganization = \"MSP\"\n",
    );
    for plan in plans {
        text.push_str(&format!(
            "\n[[plans]]\nname = \"{plan}\"\nserver = \"vbr-1\"\ntype = \"Local\"\n"
        ));
        for vm in 0..vms {
            text.push_str(&format!(
                "  [[plans.vms]]\n  name = \"{plan}-vm-{vm}\"\n  restore_points = [\"2026-11-01T00:00:00Z\"]\n"
            ));
        }
    }
    text
}

/// An HTTP client for tests. reqwest is built with rustls but no default crypto provider (the
/// binary installs ring, as the server uses), so the tests install it too.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_standby")
}

impl TestApp {
    /// The demo fleet in a fresh store.
    pub async fn demo() -> TestApp {
        let store = TestStore::fresh().await;
        let mut app = Self::start(&store, &["--demo"]).await;
        app.store = Some(store);
        app
    }

    /// The store this app owns (apps made by `demo` and `with_fleet`).
    pub fn store(&self) -> &TestStore {
        self.store
            .as_ref()
            .expect("this app does not own its store")
    }

    /// Starts the server on `store` with extra flags, logs in as the administrator.
    pub async fn start(store: &TestStore, extra: &[&str]) -> TestApp {
        Self::start_with_env(store, extra, &[]).await
    }

    /// As [`TestApp::start`], with extra environment variables for the server.
    pub async fn start_with_env(
        store: &TestStore,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> TestApp {
        let mut command = Command::new(binary());
        command.envs(env.iter().copied());
        command.arg("serve");
        // A random port unless the test names one (to restart a server where its clients are).
        if !extra.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command.args(store.args()).args(extra);
        // Fast simulated hypervisor unless a test chooses its own timings.
        if !extra.contains(&"--sim-boot-ms") {
            command.args(["--sim-boot-ms", "20-60"]);
        }
        if !extra.contains(&"--undo-batch-interval-seconds") {
            command.args(["--undo-batch-interval-seconds", "0"]);
        }
        // Tests poll fast; only the throttling test sets tight limits.
        if !extra.contains(&"--throttle-requests-per-minute") {
            command.args(["--throttle-requests-per-minute", "1000000"]);
        }
        command
            .env("STANDBY_ADMIN_USER", ADMIN)
            .env("STANDBY_ADMIN_PASSWORD", PASSWORD)
            .env("STANDBY_DEMO_PASSWORD", DEMO_PASSWORD)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("spawn standby");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("standby: listening on ") {
                    let _ = sender.send(address.to_owned());
                }
            }
        });
        let base = receiver
            .recv_timeout(Duration::from_secs(60))
            .expect("standby did not start listening");
        let http = http_client();
        let mut app = TestApp {
            base,
            token: String::new(),
            http,
            store_args: store.args.clone(),
            child,
            store: None,
        };
        app.token = app.login(ADMIN, PASSWORD).await["access_token"]
            .as_str()
            .expect("token")
            .to_owned();
        app
    }

    /// The server's Prometheus text (`/metrics`).
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn login(&self, user: &str, password: &str) -> Value {
        let response = self
            .http
            .post(self.url("/api/v3/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", user),
                ("password", password),
            ])
            .send()
            .await
            .expect("token request");
        assert_eq!(response.status(), 200, "login as {user}");
        response.json().await.expect("token body")
    }

    /// An access token for another user.
    pub async fn token_for(&self, user: &str, password: &str) -> String {
        self.login(user, password).await["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(&self.token)
    }

    pub fn patch(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .patch(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(&self.token)
    }

    /// GET with query parameters, returning (status, body).
    pub async fn get_json(&self, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
        send(self.get(path).query(query)).await
    }

    /// Every plan, in default order.
    pub async fn all_plans(&self) -> Vec<Value> {
        let (status, body) = self.get_json(PLANS, &[("limit", "500")]).await;
        assert_eq!(status, 200);
        body["data"].as_array().expect("data").clone()
    }

    /// A fleet file in a fresh store.
    pub async fn with_fleet(fleet: &str, extra: &[&str]) -> TestApp {
        let store = TestStore::fresh().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("fleet.toml");
        std::fs::write(&file, fleet).expect("write fleet");
        let mut args = vec!["--fleet", file.to_str().expect("path")];
        args.extend_from_slice(extra);
        let mut app = Self::start(&store, &args).await;
        app.store = Some(store);
        app
    }

    pub async fn plan_named(&self, name: &str) -> Value {
        self.all_plans()
            .await
            .into_iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no plan named {name}"))
    }

    pub async fn plan(&self, uid: &str) -> Value {
        let (status, body) = self.get_json(&format!("{PLANS}/{uid}"), &[]).await;
        assert_eq!(status, 200, "{body}");
        body["data"].clone()
    }

    /// Polls a plan until its status is one of `statuses`.
    pub async fn wait_for(&self, uid: &str, statuses: &[&str]) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let plan = self.plan(uid).await;
            if statuses.iter().any(|s| plan["status"] == *s) {
                return plan;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "plan {uid} stuck in {}",
                plan["status"]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The sim connector's ledger as the API serves it (`/extensions/sim/operations`, every
    /// page): submissions per operation id.
    pub async fn sim_executions(&self) -> std::collections::BTreeMap<String, i64> {
        let mut executions = std::collections::BTreeMap::new();
        loop {
            let offset = executions.len().to_string();
            let (status, body) = self
                .get_json(
                    "/api/v3/extensions/sim/operations",
                    &[("limit", "500"), ("offset", &offset)],
                )
                .await;
            assert_eq!(status, 200, "{body}");
            let page = body["data"].as_array().expect("data");
            for operation in page {
                let id = operation["operationId"].as_str().expect("operationId");
                let count = operation["executions"].as_i64().expect("executions");
                assert!(
                    executions.insert(id.to_owned(), count).is_none(),
                    "{id} listed twice"
                );
            }
            if page.is_empty()
                || executions.len() as u64
                    >= body["meta"]["pagingInfo"]["total"].as_u64().expect("total")
            {
                return executions;
            }
        }
    }

    pub async fn objects_of(&self, uid: &str) -> Vec<Value> {
        let (_, body) = self
            .get_json(&format!("{PLANS}/{uid}/objects"), &[("limit", "500")])
            .await;
        body["data"].as_array().expect("objects").clone()
    }

    /// SIGTERM, as a service manager stops it; waits up to `limit` for the process to exit and
    /// returns how long that took (`None`: it did not exit, and was killed).
    pub fn terminate(&mut self, limit: Duration) -> Option<Duration> {
        let started = std::time::Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "standby exited with {status} after SIGTERM"
                );
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        None
    }

    /// Sends a signal to the server process (`STOP` pauses it, `CONT` resumes it).
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill -{signal}");
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server and hands back its store, to start another server on it.
    pub fn stop(mut self) -> Option<TestStore> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.store.take()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Asserts a VSPC error envelope with the given status, code and (optionally) parameterName.
pub fn assert_error(
    status: u16,
    body: &Value,
    expected_status: u16,
    code: i64,
    parameter: Option<&str>,
) {
    assert_eq!(status, expected_status, "status; body: {body}");
    let error = &body["errors"][0];
    assert_eq!(error["code"], code, "code; body: {body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message; body: {body}"
    );
    assert!(error["type"].is_string(), "type; body: {body}");
    if let Some(parameter) = parameter {
        assert_eq!(
            error["parameterName"], parameter,
            "parameterName; body: {body}"
        );
    }
}

/// Sends a request over a raw socket: the head, then only `body_prefix` of the body its
/// `Content-Length` announces, and reads the answer. For oversized bodies, which the server must
/// refuse from the announced length alone (a client writing them in full races the server's close).
pub async fn raw_request(base: &str, head: &str, body_prefix: &[u8]) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body_prefix).await.expect("write body");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
    )
}

/// Reads server-sent events until `until` holds for one, or the deadline passes.
pub async fn read_events(
    response: reqwest::Response,
    deadline: Duration,
    until: impl Fn(&str) -> bool,
) -> Vec<(String, String)> {
    use futures_util::StreamExt;
    let mut events = Vec::new();
    let mut buffer = String::new();
    let mut stream = response.bytes_stream();
    let end = tokio::time::Instant::now() + deadline;
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(end, stream.next()).await {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(split) = buffer.find("\n\n") {
            let block: String = buffer.drain(..split + 2).collect();
            let id = block
                .lines()
                .find_map(|l| l.strip_prefix("id: "))
                .unwrap_or("")
                .to_owned();
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            if data.is_empty() {
                continue;
            }
            let data = data.join("\n");
            let done = until(&data);
            events.push((id, data));
            if done {
                return events;
            }
        }
    }
    events
}

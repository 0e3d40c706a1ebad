//! The agent's side of black-box tests: `standby servers add`, one `standby agent run` process
//! with its log kept, and its ledger as `standby agent operations` shows it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{TestApp, binary};

/// A `standby` command on the app's store; its standard output, or a panic with its errors.
pub fn standby_cli(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(binary())
        .args(args)
        .args(&app.store_args)
        .output()
        .expect("run standby");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `standby servers add NAME --org MSP`: the enrollment token, alone on the last line.
pub fn add_server(app: &TestApp, name: &str) -> String {
    let (ok, stdout, stderr) = standby_cli(app, &["servers", "add", name, "--org", "MSP"]);
    assert!(ok, "servers add: {stderr}");
    let token = stdout
        .lines()
        .last()
        .expect("a last line")
        .trim()
        .to_owned();
    assert!(token.starts_with("sbe_"), "{stdout}");
    token
}

/// One `standby agent run` process; its standard error is kept for the test to read.
pub struct Agent {
    pub child: Child,
    stderr: Arc<Mutex<String>>,
    pub state_dir: PathBuf,
}

impl Agent {
    pub fn start(base: &str, config: &Path, state_dir: &Path, enroll: Option<&str>) -> Agent {
        Self::start_with(Command::new(binary()), base, config, state_dir, enroll)
    }

    pub fn start_with(
        mut command: Command,
        base: &str,
        config: &Path,
        state_dir: &Path,
        enroll: Option<&str>,
    ) -> Agent {
        command
            .args(["agent", "run", "--control-url", base, "--config"])
            .arg(config)
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--heartbeat-seconds", "1", "--poll-seconds", "2"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(token) = enroll {
            command.args(["--enroll", token]);
        }
        let mut child = command.spawn().expect("spawn the agent");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                eprintln!("agent: {line}");
                if let Ok(mut text) = sink.lock() {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
        });
        Agent {
            child,
            stderr,
            state_dir: state_dir.to_owned(),
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Waits for the agent to exit on its own; its exit status and what it said.
    pub fn exit(&mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return (status, self.stderr());
            }
            assert!(
                started.elapsed() < limit,
                "the agent did not exit within {limit:?}: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

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

    /// Until a failover reached the agent's ledger: a run is under way on the host.
    pub async fn wait_for_a_failover(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.ledger().iter().any(|e| e["action"] == "failover") {
            assert!(Instant::now() < deadline, "no failover reached the agent");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `standby agent operations -o json`: the ledger.
    pub fn ledger(&self) -> Vec<Value> {
        ledger_of(&self.state_dir)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn ledger_of(state_dir: &Path) -> Vec<Value> {
    let output = Command::new(binary())
        .args(["agent", "operations", "-o", "json", "--state-dir"])
        .arg(state_dir)
        .output()
        .expect("agent operations");
    assert!(
        output.status.success(),
        "agent operations: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let entries: Value = serde_json::from_slice(&output.stdout).expect("ledger JSON");
    entries.as_array().expect("a list").clone()
}

/// Waits until the agent's plan is listed by the VSPC API; answers it.
pub async fn wait_for_plan(app: &TestApp, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(plan) = app
            .all_plans()
            .await
            .into_iter()
            .find(|plan| plan["name"] == name)
        {
            return plan;
        }
        assert!(Instant::now() < deadline, "plan {name} never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

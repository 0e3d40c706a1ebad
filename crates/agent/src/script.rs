//! A plan's pre- or post-failover command, run on this host with `sh -c` in a process group of
//! its own, so that a timeout or a cancel kills everything it started, not only the shell.

use std::io::Read;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use standby_fleet::agent::Outcome;

use crate::driver::{Cancel, Finished, ReplicaEffect};

/// What of the output reaches the session log.
const TAIL_LINES: usize = 20;
const TAIL_BYTES: usize = 4096;
/// What is kept while reading: enough for the tail, however much the script writes.
const KEEP_BYTES: usize = 64 * 1024;
/// After the shell exits, how long its output may still take (a background child holding the
/// pipe open must not hold the result).
const OUTPUT_GRACE: Duration = Duration::from_secs(2);

/// Kills the process group when dropped armed: an operation task aborted at shutdown does not
/// leave the script running.
struct ProcessGroup {
    pgid: Option<u32>,
}

impl ProcessGroup {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `command` with `sh -c` and `env` added; never longer than `timeout`.
pub async fn run_script(
    command: &str,
    env: &[(&str, String)],
    timeout: Duration,
    cancel: Cancel,
) -> Finished {
    let (reader, writer) = match std::io::pipe() {
        Ok(pipe) => pipe,
        Err(error) => {
            return failed(format!(
                "cannot create a pipe for the script's output: {error}"
            ));
        }
    };
    let stderr = match writer.try_clone() {
        Ok(stderr) => stderr,
        Err(error) => {
            return failed(format!(
                "cannot create a pipe for the script's output: {error}"
            ));
        }
    };
    let mut process = tokio::process::Command::new("sh");
    // The agent's own settings (the control plane's URL, which may carry a password, and the
    // enrollment token) are not the script's business: a script that prints its environment
    // would put them in the session log.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("STANDBY_") {
            process.env_remove(&name);
        }
    }
    process
        .arg("-c")
        .arg(command)
        .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
        .stdin(Stdio::null())
        // One pipe for both: the tail shows them interleaved as the script wrote them.
        .stdout(writer)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    let spawned = process.spawn();
    // The parent's copies of the pipe's write end must close, or reading never ends.
    drop(process);
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => return failed(format!("cannot start sh: {error}")),
    };
    let mut group = ProcessGroup { pgid: child.id() };
    let output = Arc::new(Mutex::new(Vec::new()));
    let collected = Arc::clone(&output);
    let reading = tokio::task::spawn_blocking(move || collect(reader, &collected));

    let ended = tokio::select! {
        status = child.wait() => Ended::Exited(status),
        () = tokio::time::sleep(timeout) => Ended::TimedOut,
        () = cancel.cancelled() => Ended::Cancelled,
    };
    if !matches!(ended, Ended::Exited(_)) {
        group.kill();
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    group.disarm();
    let _ = tokio::time::timeout(OUTPUT_GRACE, reading).await;
    let tail = match output.lock() {
        Ok(bytes) => tail_of(&bytes),
        Err(poisoned) => tail_of(&poisoned.into_inner()),
    };
    let (outcome, summary) = match ended {
        Ended::Exited(Ok(status)) => match status.code() {
            Some(0) => (Outcome::Succeeded, "exit code 0".to_owned()),
            Some(code) => (Outcome::Failed, format!("exit code {code}")),
            None => {
                use std::os::unix::process::ExitStatusExt;
                let signal = status.signal().unwrap_or(0);
                (Outcome::Failed, format!("killed by signal {signal}"))
            }
        },
        Ended::Exited(Err(error)) => (Outcome::Failed, format!("waiting for the script: {error}")),
        Ended::TimedOut => (
            Outcome::Failed,
            format!("timed out after {} s; killed", timeout.as_secs()),
        ),
        Ended::Cancelled => (
            Outcome::Cancelled,
            "cancelled; the script was killed".to_owned(),
        ),
    };
    let detail = if tail.is_empty() {
        summary
    } else {
        format!("{summary}\n{tail}")
    };
    Finished {
        outcome,
        detail,
        replica: ReplicaEffect::None,
    }
}

enum Ended {
    Exited(std::io::Result<std::process::ExitStatus>),
    TimedOut,
    Cancelled,
}

fn failed(detail: String) -> Finished {
    Finished::failed(detail, ReplicaEffect::None)
}

/// Reads the pipe to its end, keeping the last [`KEEP_BYTES`].
fn collect(mut reader: std::io::PipeReader, output: &Mutex<Vec<u8>>) {
    let mut buffer = [0_u8; 8192];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return,
            Ok(read) => {
                let Ok(mut kept) = output.lock() else {
                    return;
                };
                kept.extend_from_slice(&buffer[..read]);
                if kept.len() > KEEP_BYTES {
                    let excess = kept.len() - KEEP_BYTES;
                    kept.drain(..excess);
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// The last [`TAIL_LINES`] lines, at most [`TAIL_BYTES`] bytes, UTF-8 lossy.
pub fn tail_of(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    if tail.len() <= TAIL_BYTES {
        return tail;
    }
    let mut start = tail.len() - TAIL_BYTES;
    while !tail.is_char_boundary(start) {
        start += 1;
    }
    tail[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    async fn run(command: &str, timeout: Duration) -> Finished {
        run_script(
            command,
            &[
                ("STANDBY_PLAN_NAME", "Payroll DR".to_owned()),
                ("STANDBY_TEST", "1".to_owned()),
            ],
            timeout,
            Cancel::never(),
        )
        .await
    }

    #[tokio::test]
    async fn exit_codes_decide_the_outcome() {
        let ok = run("echo hello", Duration::from_secs(10)).await;
        assert_eq!(ok.outcome, Outcome::Succeeded, "{}", ok.detail);
        assert_eq!(ok.detail, "exit code 0\nhello");
        let bad = run("echo oops >&2; exit 3", Duration::from_secs(10)).await;
        assert_eq!(bad.outcome, Outcome::Failed);
        assert_eq!(bad.detail, "exit code 3\noops");
    }

    #[tokio::test]
    async fn the_environment_reaches_the_script() {
        let done = run(
            "echo \"$STANDBY_PLAN_NAME test=$STANDBY_TEST\"",
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(done.outcome, Outcome::Succeeded, "{}", done.detail);
        assert!(
            done.detail.ends_with("Payroll DR test=1"),
            "{}",
            done.detail
        );
    }

    #[tokio::test]
    async fn only_the_tail_of_the_output_is_kept() {
        let done = run(
            "for i in $(seq 1 100); do echo line $i; done",
            Duration::from_secs(10),
        )
        .await;
        let lines: Vec<&str> = done.detail.lines().collect();
        assert_eq!(lines.len(), 1 + TAIL_LINES, "{}", done.detail);
        assert_eq!(lines[1], "line 81");
        assert_eq!(lines[TAIL_LINES], "line 100");
        let long = run(
            "head -c 20000 /dev/zero | tr '\\0' x",
            Duration::from_secs(10),
        )
        .await;
        assert!(
            long.detail.len() <= "exit code 0\n".len() + TAIL_BYTES,
            "{}",
            long.detail.len()
        );
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        let started = Instant::now();
        // The background sleep holds the pipe open too: only killing the group ends it.
        let done = run("echo started; sleep 30 & sleep 30", Duration::from_secs(1)).await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(done.outcome, Outcome::Failed);
        assert!(
            done.detail.starts_with("timed out after 1 s"),
            "{}",
            done.detail
        );
        assert!(done.detail.ends_with("started"), "{}", done.detail);
    }

    #[tokio::test]
    async fn a_cancel_kills_it() {
        let (handle, cancel) = crate::driver::CancelHandle::new();
        let started = Instant::now();
        let running = tokio::spawn(async move {
            run_script("sleep 30", &[], Duration::from_secs(60), cancel).await
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        handle.cancel();
        let done = running.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(done.outcome, Outcome::Cancelled);
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

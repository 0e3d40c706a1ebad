//! A minimal QMP client: one command at a time over the guest's unix socket, newline-delimited
//! JSON. Events that arrive between a command and its return are skipped.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// A QMP answer that takes longer than this means QEMU is stuck.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Qmp {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
}

impl Qmp {
    /// Connects, reads the greeting and leaves capabilities negotiation mode.
    pub async fn connect(socket: &Path) -> Result<Qmp, String> {
        let stream = tokio::time::timeout(ANSWER_TIMEOUT, UnixStream::connect(socket))
            .await
            .map_err(|_| format!("{}: QMP connect timed out", socket.display()))?
            .map_err(|error| format!("{}: QMP connect: {error}", socket.display()))?;
        let (reader, writer) = stream.into_split();
        let mut qmp = Qmp {
            lines: BufReader::new(reader).lines(),
            writer,
        };
        let greeting = qmp.next_message().await?;
        if greeting.get("QMP").is_none() {
            return Err(format!("not a QMP greeting: {greeting}"));
        }
        qmp.execute("qmp_capabilities").await?;
        Ok(qmp)
    }

    /// Runs `command` and returns its `return` value.
    pub async fn execute(&mut self, command: &str) -> Result<Value, String> {
        let mut line = json!({ "execute": command }).to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .await
            .map_err(|error| format!("QMP {command}: {error}"))?;
        loop {
            let message = self.next_message().await?;
            if message.get("event").is_some() {
                continue;
            }
            if let Some(returned) = message.get("return") {
                return Ok(returned.clone());
            }
            if let Some(error) = message.get("error") {
                return Err(format!("QMP {command}: {error}"));
            }
        }
    }

    /// The guest's `-name`.
    pub async fn name(&mut self) -> Result<String, String> {
        let answer = self.execute("query-name").await?;
        Ok(answer
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned())
    }

    async fn next_message(&mut self) -> Result<Value, String> {
        let line = tokio::time::timeout(ANSWER_TIMEOUT, self.lines.next_line())
            .await
            .map_err(|_| "QMP: no answer in 5 s".to_owned())?
            .map_err(|error| format!("QMP: {error}"))?
            .ok_or("QMP: the socket closed")?;
        serde_json::from_str(&line).map_err(|error| format!("QMP: unreadable message: {error}"))
    }
}

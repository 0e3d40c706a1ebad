//! Readiness: a guest is ready when it answers, not when QEMU runs (a hung guest still reports
//! `running`). A TCP probe needs at least one byte back (slirp accepts a forwarded connection
//! before anything in the guest listens); a serial probe needs its marker on the console.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};

use super::guest::{GUEST_AGENT_FILE, GuestDir, SERIAL_FILE};
use super::replica::Probe;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a TCP probe connects.
pub fn address(probe: &Probe, test: bool, forward_port: u16) -> Option<String> {
    match probe {
        Probe::Tcp {
            address: Some(address),
            port,
            ..
        } if !test => Some(std::net::SocketAddr::new(*address, *port).to_string()),
        Probe::Tcp { .. } => Some(format!("127.0.0.1:{forward_port}")),
        Probe::Serial { .. } | Probe::GuestAgent => None,
    }
}

/// One try: `Some(what answered)` when the guest is ready.
pub async fn once(probe: &Probe, dir: &GuestDir, address: Option<&str>) -> Option<String> {
    match probe {
        Probe::Tcp { send, .. } => {
            let address: SocketAddr = address?.parse().ok()?;
            let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
                .await
                .ok()?
                .ok()?;
            if let Some(send) = send {
                stream.write_all(send.as_bytes()).await.ok()?;
                stream.write_all(b"\n").await.ok()?;
            }
            let mut answer = [0_u8; 256];
            let read = tokio::time::timeout(ANSWER_TIMEOUT, stream.read(&mut answer))
                .await
                .ok()?
                .ok()?;
            (read > 0).then(|| {
                let text = String::from_utf8_lossy(&answer[..read]);
                text.lines().next().unwrap_or_default().trim().to_owned()
            })
        }
        Probe::GuestAgent => guest_ping(&dir.file(GUEST_AGENT_FILE)).await,
        Probe::Serial { marker } => {
            let console = tokio::fs::read(dir.file(SERIAL_FILE)).await.ok()?;
            String::from_utf8_lossy(&console)
                .contains(marker.as_str())
                .then(|| marker.clone())
        }
    }
}

/// For people: what the probe checks.
pub fn describe(probe: &Probe, address: Option<&str>) -> String {
    match (probe, address) {
        (Probe::Tcp { .. }, Some(address)) => format!("TCP probe on {address}"),
        (Probe::Tcp { port, .. }, None) => format!("TCP probe on port {port}"),
        (Probe::Serial { marker }, _) => format!("serial console marker \"{marker}\""),
        (Probe::GuestAgent, _) => "guest agent ping".to_owned(),
    }
}

/// `guest-ping` over the guest agent's socket; `Some` once it returns. QEMU's chardev serves one
/// client at a time, and holds what is written while nothing in the guest reads the port, so an
/// answer may come to a later try: any `return` counts.
async fn guest_ping(socket: &std::path::Path) -> Option<String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(socket))
        .await
        .ok()?
        .ok()?;
    let (reader, mut writer) = stream.into_split();
    writer
        .write_all(b"{\"execute\":\"guest-ping\"}\n")
        .await
        .ok()?;
    let mut lines = BufReader::new(reader).lines();
    let line = tokio::time::timeout(ANSWER_TIMEOUT, lines.next_line())
        .await
        .ok()?
        .ok()??;
    let answer: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    answer
        .get("return")
        .map(|_| "guest-ping returned".to_owned())
}

//! The standby agent: runs on a DR host, connects out to the control plane over HTTP(S) (it
//! listens on nothing), enrolls once with a one-time token, pushes the host's inventory, sends
//! heartbeats, long-polls for commands and executes each operation at most once (a SQLite
//! ledger in the state dir), posting the results back. Delivery is at-least-once both ways, so
//! every duplicate is harmless.
//!
//! The binary calls [`run`], [`operations`] and [`render_operations`].

mod client;
mod driver;
mod ledger;
mod manifest;
mod qemu;
mod run;
mod script;
mod sim;
mod state;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use driver::{
    Cancel, CancelHandle, Driver, DriverError, Finished, Operation, ReplicaEffect, VmTarget,
};
pub use ledger::{Ledger, LedgerEntry};
pub use manifest::{
    Accel, DriverKind, Manifest, Plan, PlanType, QemuSettings, RestorePoints, SimSettings, Vm,
};
pub use qemu::QemuDriver;
pub use sim::{SimDriver, restore_points_at};

/// The agent's version, sent with enrollment, inventory and heartbeats.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The ledger's file in the state dir.
pub const LEDGER_FILE: &str = "ledger.db";
/// The credential's file in the state dir (mode 0600).
pub const CREDENTIAL_FILE: &str = "credential";
/// The enrolled server's identity in the state dir.
pub const SERVER_FILE: &str = "server.json";

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The manifest is unreadable or wrong; the message names the file and the field.
    #[error("{0}")]
    Config(String),
    #[error("enrollment refused by the control plane: {0}")]
    Enrollment(String),
    #[error(
        "the control plane refused this agent's credential (revoked or unknown): ask an \
         administrator for `standby servers reenroll NAME` and start the agent with --enroll TOKEN"
    )]
    Revoked,
    #[error(
        "this agent is not enrolled: its state dir holds no credential; start it once with \
         --enroll TOKEN (a one-time sbe_... token from an administrator)"
    )]
    NotEnrolled,
    #[error("ledger: {0}")]
    Ledger(String),
    #[error("{0}")]
    Http(String),
    #[error("{0}")]
    Io(String),
}

/// How `standby agent run` was started.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The control plane, `http(s)://host:port` (a trailing `/` or `/api/v3` is fine). A
    /// `user:password@` in it is neither logged nor sent: the agent has its own credential.
    pub control_url: String,
    /// The host's manifest (`HOST.toml`).
    pub config: PathBuf,
    /// Created if missing (0700): `credential` (0600), `server.json`, `ledger.db`.
    pub state_dir: PathBuf,
    /// A one-time enrollment token (`sbe_...`), used only while the agent has no credential.
    pub enroll: Option<String>,
    /// A PEM file with an extra root certificate (TLS is always verified).
    pub ca_cert: Option<PathBuf>,
    pub heartbeat: Duration,
    /// How long one long poll for commands waits on the control plane.
    pub poll_wait: Duration,
}

impl RunOptions {
    pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);
    pub const DEFAULT_POLL_WAIT: Duration = Duration::from_secs(20);
}

/// Runs the agent until `shutdown` resolves (then `Ok`) or the agent cannot go on (its
/// credential refused, the ledger failing, a bad manifest). Operations still running at
/// shutdown are abandoned: the ledger makes the next start resume or fail them, never rerun.
pub async fn run(
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    run::run(options, shutdown).await
}

/// The ledger's operations, most recent first (`standby agent operations`). Reads only; safe
/// while the agent runs.
pub async fn operations(state_dir: &Path) -> Result<Vec<LedgerEntry>, AgentError> {
    let path = state_dir.join(LEDGER_FILE);
    if !path.exists() {
        return Err(AgentError::Ledger(format!(
            "{}: no ledger (the agent has not run with this state dir)",
            path.display()
        )));
    }
    let ledger = Ledger::open_existing(&path).await?;
    let entries = ledger.entries().await;
    ledger.close().await;
    entries
}

/// A table of operations for people: id, action, VM, executions, outcome, finished at.
pub fn render_operations(entries: &[LedgerEntry]) -> String {
    ledger::render(entries)
}

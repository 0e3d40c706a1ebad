//! Agent-connected backup servers: their enrollment and credentials, the `agent` connector's
//! durable command queue, and the replica states the agents report. Kept in the same database
//! as the plans but apart from the plan store, as the sim's ledger is: only the agent routes,
//! the `servers` commands and the `agent` connector use it, through [`AgentStore`].

use std::sync::Arc;

use async_trait::async_trait;
use standby_fleet::Fleet;
use standby_fleet::agent::{OperationResult, Outcome, ReplicaReport};
use standby_model::Timestamp;
use uuid::Uuid;

use crate::{ImportSummary, Scope, StoreError};

/// The connector kind of a server whose host runs `standby agent`.
pub const AGENT_CONNECTOR: &str = "agent";

/// Who an agent credential belongs to: one backup server, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentIdentity {
    pub server_uid: Uuid,
    pub server_name: String,
    pub organization_uid: Uuid,
}

/// A backup server as the operator's list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    pub uid: Uuid,
    pub name: String,
    pub organization_uid: Uuid,
    pub organization_name: String,
    pub connector: String,
    /// Only for servers with an agent.
    pub agent: Option<AgentStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    /// An enrollment token is outstanding until then.
    pub enrollment_expires_at: Option<Timestamp>,
    /// When the current credential was issued; `None` before enrollment and after a reenroll.
    pub enrolled_at: Option<Timestamp>,
    pub host_name: String,
    pub agent_version: String,
    pub last_seen: Option<Timestamp>,
}

impl AgentStatus {
    /// Online: enrolled (its credential not revoked) and heard from within `offline_after`.
    pub fn online(&self, now: Timestamp, offline_after: std::time::Duration) -> bool {
        self.enrolled_at.is_some()
            && self.last_seen.is_some_and(|seen| {
                now.ticks() - seen.ticks() <= offline_after.as_micros() as i64 * 10
            })
    }
}

/// The outcome of `remove_server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerRemoval {
    Removed,
    NotFound,
    /// A session runs (or is queued) on these plans of the server.
    PlansRunning(Vec<String>),
}

/// One command of the queue, as the connector reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedCommand {
    pub operation_id: String,
    /// The command as the agent receives it (JSON of `standby_fleet::agent::Command`).
    pub body: String,
    pub queued_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    /// `None` until the agent reports.
    pub outcome: Option<Outcome>,
    pub detail: String,
}

/// A replica's state as its agent reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportedReplica {
    Off,
    Running { test: bool },
}

/// What a command about a VM needs to name it on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmContext {
    pub plan_uid: Uuid,
    pub plan_name: String,
    pub vm_name: String,
}

/// What a script command needs: its plan, and whether the session is a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionContext {
    pub plan_uid: Uuid,
    pub plan_name: String,
    pub test: bool,
}

/// What an inventory push changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InventoryChange {
    pub summary: ImportSummary,
    /// Restore points the host no longer has, removed.
    pub restore_points_removed: u64,
    /// VMs of the reported plans that the host no longer lists and no session ever ran on.
    pub vms_removed: u64,
    /// Plans of the server the push did not name, removed: no session ever ran on them.
    pub plans_removed: Vec<String>,
    /// Plans of the server the push did not name, kept because sessions ran on them (their
    /// history) or run now.
    pub plans_kept: Vec<String>,
}

#[async_trait]
pub trait AgentStore: Send + Sync + 'static {
    /// Creates an agent-connected server with an outstanding enrollment token. `None`: a server
    /// of that name exists already.
    async fn add_agent_server(
        &self,
        name: &str,
        organization: Uuid,
        enrollment_hash: &str,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Uuid>, StoreError>;

    /// Every server in scope, by name.
    async fn servers(&self, scope: Scope) -> Result<Vec<ServerStatus>, StoreError>;

    /// The first `limit` servers a scope's plans are on, by name, UID and name only (a filter's
    /// choices: a large fleet has too many to list, and one more than `limit` says so). For a
    /// company: its own servers and the provider's that host its Tenant plans.
    async fn server_names(
        &self,
        scope: Scope,
        limit: u32,
    ) -> Result<Vec<(Uuid, String)>, StoreError>;

    async fn server(&self, scope: Scope, uid: Uuid) -> Result<Option<ServerStatus>, StoreError>;

    async fn server_by_name(&self, name: &str) -> Result<Option<ServerStatus>, StoreError>;

    /// Revokes the server's credential and sets a new enrollment token. `false`: no agent
    /// server has that UID.
    async fn reenroll(
        &self,
        server: Uuid,
        enrollment_hash: &str,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Removes the server with its plans, VMs, restore points, sessions and commands, unless a
    /// session runs or is queued on one of its plans.
    async fn remove_server(&self, server: Uuid) -> Result<ServerRemoval, StoreError>;

    /// Trades an unexpired, unused enrollment token for a credential (both as hashes). `None`:
    /// the token is unknown, expired or used.
    async fn enroll(
        &self,
        enrollment_hash: &str,
        credential_hash: &str,
        host_name: &str,
        agent_version: &str,
        now: Timestamp,
    ) -> Result<Option<AgentIdentity>, StoreError>;

    /// The server a credential serves.
    async fn authenticate_agent(
        &self,
        credential_hash: &str,
    ) -> Result<Option<AgentIdentity>, StoreError>;

    /// The agent was heard from; its version if it said.
    async fn agent_seen(
        &self,
        server: Uuid,
        agent_version: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    async fn agent_status(&self, server: Uuid) -> Result<Option<AgentStatus>, StoreError>;

    /// A tenant by name: its UID and company.
    async fn tenant_by_name(&self, name: &str) -> Result<Option<(Uuid, Uuid)>, StoreError>;

    /// Upserts the plans, VMs and restore points an agent reported for `server` (the fleet's
    /// records, all of that server; its tenants are created if new), and removes what the host
    /// no longer reports: restore points, and VMs and plans no session ever ran on.
    async fn apply_inventory(
        &self,
        server: Uuid,
        fleet: &Fleet,
    ) -> Result<InventoryChange, StoreError>;

    /// Queues a command once per operation id; answers the command as stored (the first one).
    async fn queue_command(
        &self,
        server: Uuid,
        operation_id: &str,
        body: &str,
        now: Timestamp,
    ) -> Result<QueuedCommand, StoreError>;

    async fn command(
        &self,
        server: Uuid,
        operation_id: &str,
    ) -> Result<Option<QueuedCommand>, StoreError>;

    /// Commands without a final result for the agent to run, oldest first, marked delivered:
    /// those never delivered or delivered long ago and never acknowledged, or with `all` every
    /// one (an agent that just started).
    async fn take_commands(
        &self,
        server: Uuid,
        all: bool,
        limit: u32,
        now: Timestamp,
    ) -> Result<Vec<QueuedCommand>, StoreError>;

    /// Ends a command that was never delivered as cancelled (`true`); `false` when it was
    /// delivered already (the agent must be told) or has ended.
    async fn cancel_undelivered(
        &self,
        server: Uuid,
        operation_id: &str,
        reason: &str,
    ) -> Result<bool, StoreError>;

    /// Stores what the agent reported: a final outcome once (a repeat changes nothing), and the
    /// replicas it names (a newer version only). Answers how many commands it finished.
    async fn record_results(
        &self,
        server: Uuid,
        results: &[OperationResult],
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    async fn record_replicas(
        &self,
        server: Uuid,
        replicas: &[ReplicaReport],
    ) -> Result<(), StoreError>;

    /// The VM's replica as last reported (`Off` if never).
    async fn replica(&self, server: Uuid, vm: Uuid) -> Result<ReportedReplica, StoreError>;

    async fn vm_context(&self, vm: Uuid) -> Result<Option<VmContext>, StoreError>;

    async fn session_context(&self, session: Uuid) -> Result<Option<SessionContext>, StoreError>;

    async fn restore_point_time(&self, point: Uuid) -> Result<Option<Timestamp>, StoreError>;

    /// Notified (all waiters) when a command is queued or a result recorded in this process;
    /// waiters also poll, for the other nodes' writes.
    fn changes(&self) -> Arc<tokio::sync::Notify>;
}

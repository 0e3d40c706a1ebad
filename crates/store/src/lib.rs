//! Standby's persistence: the store's capabilities as traits (plans, auth, audit, idempotency,
//! the job queue, the session log, async actions; [`Store`] is all of them), implemented on
//! SQLite (the embedded default) and PostgreSQL. Handlers never know which backend they run on;
//! the engine sees only the [`EngineStore`] part.

// The SQL modules in `src/sql/` are compiled once per backend on purpose (see `sqlite/mod.rs`).
#![allow(clippy::duplicate_mod)]

pub mod agents;
mod audit;
pub mod catalog;
pub mod copy;
pub mod drills;
pub mod freshness;
mod keys;
pub mod location;
mod migrations;
pub mod notifications;
pub mod postgres;
pub mod retention;
mod rows;
pub mod sessions;
pub mod sim_ledger;
pub mod sqlite;

use async_trait::async_trait;
use standby_fleet::Fleet;
use standby_model::{FailoverPlan, PlanObject, Role, Timestamp, TransitionRefused};
use standby_query::{Filter, Paging, SortOrder};
use uuid::Uuid;

pub use agents::{AGENT_CONNECTOR, AgentStore};
pub use audit::{AuditAction, AuditOutcome};
pub use drills::DrillStore;
pub use location::{Location, open};
pub use notifications::NotificationStore;
pub use postgres::{PgStore, ScratchDatabase};
pub use sessions::*;
pub use sim_ledger::{ReplicaChange, SimLedger, SimOperationRecord, SimOutcome};
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("cannot open the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    /// A stored value the code cannot read back (a bug, or a database edited by hand).
    #[error("corrupt stored value in {table}.{column}: {value}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        value: String,
    },
    /// The request is refused by the plan state machine (HTTP 409, code 1000).
    #[error("{}", .0.describe())]
    Refused(TransitionRefused),
    #[error("{0}")]
    Conflict(String),
    /// A database URL or setting that cannot be used.
    #[error("{0}")]
    Config(String),
    /// An engine write made under a claim that is no longer held: another worker claimed the
    /// job since (its epoch is higher), or the job was requeued or finished. Nothing was written.
    #[error("job {job} is no longer held at epoch {epoch}; the write was refused")]
    Fenced { job: Uuid, epoch: i64 },
    /// A write ran, but the group commit that carried it failed: nothing of it is stored.
    #[error("the write was not committed: {0}")]
    Commit(String),
}

/// At most `max` characters of `text` (for free text from outside kept in a bounded column).
pub(crate) fn bounded(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Which plans a caller may see. Company users see plans on their company's servers and
/// Tenant plans of their company's tenants; provider users see everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    All,
    Organization(Uuid),
}

/// One list request, already parsed and validated.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub scope: Scope,
    /// Only plans (or objects) on this backup server.
    pub server: Option<Uuid>,
    /// Only objects of this plan (objects lists only).
    pub plan: Option<Uuid>,
    pub filter: Filter,
    pub order: SortOrder,
    pub paging: Paging,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Matches before paging.
    pub total: u64,
}

/// A PATCH's effect on the two editable plan settings; `None` leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandChange {
    pub pre_failover_command: Option<String>,
    pub post_failover_command: Option<String>,
}

impl CommandChange {
    /// The plan as it reads once this change is applied (a script is enabled when its command
    /// is not empty, as the store derives it): what a PATCH answers, built before the change
    /// commits so that the answer can be kept in the same transaction.
    pub fn applied_to(&self, plan: &FailoverPlan) -> FailoverPlan {
        let mut changed = plan.clone();
        if let Some(command) = &self.pre_failover_command {
            changed.pre_failover_command = command.clone();
            changed.pre_failover_script_enabled = !command.is_empty();
        }
        if let Some(command) = &self.post_failover_command {
            changed.post_failover_command = command.clone();
            changed.post_failover_script_enabled = !command.is_empty();
        }
        changed
    }
}

/// What `plan_owners` answers for one plan: the names beside it, and what its last run was
/// (the wire's `lastSession` says neither its kind nor when it started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOwner {
    pub server_name: String,
    pub company_name: String,
    pub last_run: Option<(standby_model::SessionKind, Timestamp)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportSummary {
    pub organizations: u64,
    pub servers: u64,
    pub plans: u64,
    pub objects: u64,
    pub restore_points_added: u64,
    pub sessions_added: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub uid: Uuid,
    pub name: String,
    pub organization_uid: Uuid,
    pub role: Role,
    pub password_hash: String,
    pub disabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// SHA-256 of the token, hex.
    pub hash: String,
    pub user_uid: Uuid,
    pub kind: TokenKind,
    pub read_only: bool,
    /// All tokens issued from one login share a family, so a chain can be revoked at once.
    pub family: Uuid,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Who a bearer credential (an access token or an API key) stands for, as of now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub user: UserRecord,
    pub read_only: bool,
    /// The user's organization is of kind provider.
    pub provider_organization: bool,
    /// When an access token stops working; `None` for an API key.
    pub expires_at: Option<Timestamp>,
}

/// A long-lived API key (only its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub hash: String,
    pub user_uid: Uuid,
    pub description: String,
    pub read_only: bool,
    pub created_at: Timestamp,
}

/// The response kept for an `X-Request-id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The answer to a login attempt's reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAttempt {
    /// Counted in the window that ends then; the password may be checked.
    Admitted { window_ends: Timestamp },
    /// The window's attempts are used up: wait this long.
    Blocked { retry_after_seconds: u64 },
}

/// What to do with a request carrying an `X-Request-id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// First time seen (or the earlier record expired): run it, then complete or release.
    Fresh,
    /// Seen with the same request: answer with the stored response, do nothing else.
    Replay(StoredResponse),
    /// The same request is being handled right now.
    InFlight,
    /// The id was used for a different request (or by another user).
    Mismatch,
}

#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub request_id: Uuid,
    pub principal_uid: Uuid,
    /// Hash of method, path, query and body.
    pub fingerprint: String,
}

/// Plans, their VMs (objects) and restore points, and the fleet they are imported from.
#[async_trait]
pub trait PlanStore: Send + Sync {
    /// No plans at all (a fresh installation).
    async fn is_empty(&self) -> Result<bool, StoreError>;

    /// Upserts a fleet in one transaction; see the README for what re-import changes.
    async fn import_fleet(&self, fleet: &Fleet) -> Result<ImportSummary, StoreError>;

    /// Imports a fleet only if the store has no plans yet, atomically even across nodes
    /// (how `--demo` seeds a fresh installation); `None` if it already had plans.
    async fn seed_fleet(&self, fleet: &Fleet) -> Result<Option<ImportSummary>, StoreError>;

    async fn list_plans(&self, query: &ListQuery) -> Result<Page<FailoverPlan>, StoreError>;

    async fn get_plan(&self, scope: Scope, uid: Uuid) -> Result<Option<FailoverPlan>, StoreError>;

    async fn list_objects(&self, query: &ListQuery) -> Result<Page<PlanObject>, StoreError>;

    async fn server_visible(&self, scope: Scope, uid: Uuid) -> Result<bool, StoreError>;

    /// Applies a PATCH made on `plan` as the caller read it in `scope` (that read is the
    /// visibility check): only while the plan is still as read, its commands, status and last
    /// session (else `StoreError::Conflict`), and no session runs (else `StoreError::Refused`);
    /// answers the plan as the change leaves it, `None` if it is gone.
    /// `idempotent_answer`: the `X-Request-id` the PATCH came under and its answer, kept in the
    /// change's transaction, so a retry after a crash between the two replays instead of
    /// waiting out the reservation and patching again.
    async fn update_plan_commands(
        &self,
        scope: Scope,
        plan: &FailoverPlan,
        change: &CommandChange,
        idempotent_answer: Option<&(Uuid, StoredResponse)>,
    ) -> Result<Option<FailoverPlan>, StoreError>;

    /// The plan an object (VM) belongs to.
    async fn object_plan(&self, object: Uuid) -> Result<Option<Uuid>, StoreError>;

    /// A VM's restore points, newest first.
    async fn restore_points(
        &self,
        object: Uuid,
        limit: u32,
        offset: u32,
    ) -> Result<Page<RestorePointView>, StoreError>;

    /// The names a person reads beside each of these plans: its backup server and the company
    /// it belongs to (a Tenant plan's tenant's company, else its server's organization); and
    /// its last run's kind and start.
    async fn plan_owners(
        &self,
        plans: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, PlanOwner>, StoreError>;

    /// A plan's VMs in the order they boot.
    async fn boot_order(&self, plan: Uuid) -> Result<Vec<Uuid>, StoreError>;

    /// A plan's sessions, newest first, with each VM's result.
    async fn session_history(
        &self,
        plan: Uuid,
        limit: u32,
        offset: u32,
    ) -> Result<Page<SessionHistory>, StoreError>;
}

/// Organizations, users and their credentials: passwords, access and refresh tokens, API keys, and
/// the login attempts counted against brute force.
#[async_trait]
pub trait AuthStore: Send + Sync {
    async fn count_users(&self) -> Result<u64, StoreError>;

    async fn create_user(&self, user: &UserRecord) -> Result<(), StoreError>;

    async fn find_user_by_name(&self, name: &str) -> Result<Option<UserRecord>, StoreError>;

    /// The provider organization's UID, if a fleet declared one.
    async fn provider_organization(&self) -> Result<Option<Uuid>, StoreError>;

    /// Creates the provider organization if there is none (fresh installation, no fleet yet).
    async fn ensure_provider_organization(&self, name: &str) -> Result<Uuid, StoreError>;

    async fn list_organizations(
        &self,
    ) -> Result<Vec<standby_fleet::OrganizationRecord>, StoreError>;

    /// The first `limit` companies by name, UID and name only (a filter's choices).
    async fn company_names(&self, limit: u32) -> Result<Vec<(Uuid, String)>, StoreError>;

    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;

    /// Sets a password hash and revokes the user's tokens; `false` if there is no such user.
    async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool, StoreError>;

    /// Disabling revokes every token of the user at once.
    async fn set_disabled(&self, name: &str, disabled: bool) -> Result<bool, StoreError>;

    async fn remove_user(&self, name: &str) -> Result<bool, StoreError>;

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), StoreError>;

    async fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError>;

    /// Revokes one token (a console session at logout); `false` if it was not live.
    async fn revoke_token(&self, hash: &str) -> Result<bool, StoreError>;

    /// The live access token or API key with this hash, its enabled user and whether that user's
    /// organization is the provider's: everything a request's authentication needs, in one query.
    async fn find_credential(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<Credential>, StoreError>;

    /// Revokes a live refresh token and returns it, atomically: a refresh token works once. Using
    /// a spent one again revokes every token of its login chain (reuse means it was stolen).
    async fn consume_refresh_token(
        &self,
        hash: &str,
        now: Timestamp,
    ) -> Result<Option<(TokenRecord, UserRecord)>, StoreError>;

    /// Counts one login attempt against `key` (a user name's or an address's), atomically and
    /// for every node sharing the database: `Admitted` while fewer than `limit` are counted in
    /// the key's current window of `window_seconds`, else `Blocked` until the window ends.
    async fn reserve_login_attempt(
        &self,
        key: &str,
        limit: u32,
        window_seconds: i64,
        now: Timestamp,
    ) -> Result<LoginAttempt, StoreError>;

    /// Gives back an attempt counted in the window ending `window_ends` (the login succeeded;
    /// only failures count). Nothing happens once that window is over.
    async fn refund_login_attempt(
        &self,
        key: &str,
        window_ends: Timestamp,
    ) -> Result<(), StoreError>;
}

/// The audit trail.
#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// Audit records, newest first.
    async fn list_audit(&self, limit: u32, offset: u32) -> Result<Page<AuditEntry>, StoreError>;
}

/// The responses kept for `X-Request-id` retries.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    async fn reserve_request(
        &self,
        key: &IdempotencyKey,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Reservation, StoreError>;

    async fn complete_request(
        &self,
        request_id: Uuid,
        response: &StoredResponse,
    ) -> Result<(), StoreError>;

    /// Forgets a reservation whose request failed on our side, so a retry can run.
    async fn release_request(&self, request_id: Uuid) -> Result<(), StoreError>;
}

/// The queue of session jobs workers claim, with leases fenced by an epoch per claim.
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Claims the oldest ready job, leasing it to `worker` until `lease_until`. The claim raises
    /// the job's epoch: the returned [`Job::fence`] is what this worker's writes must name.
    async fn claim_job(
        &self,
        worker: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Job>, StoreError>;

    /// Extends a held lease and reports whether the user asked the session to stop.
    async fn extend_lease(
        &self,
        fence: Fence,
        lease_until: Timestamp,
    ) -> Result<LeaseRenewal, StoreError>;

    /// Whether `fence` still holds its job, read now (the engine asks right before it sends an
    /// operation to a host, so a worker that lost its job sends nothing).
    async fn holds_job(&self, fence: Fence) -> Result<bool, StoreError>;

    /// Hands a held job back to the queue at once (a graceful shutdown), so the next start or
    /// another node resumes it without waiting for the lease; the attempt is not counted.
    /// `false` if the job was no longer held.
    async fn release_job(&self, fence: Fence, now: Timestamp) -> Result<bool, StoreError>;

    /// Puts a held job back in the queue after an error, to be claimed again no earlier than
    /// `run_at`, keeping `error` as its `last_error`. `false` if the job was no longer held.
    async fn retry_job(
        &self,
        fence: Fence,
        error: &str,
        run_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Puts running jobs back in the queue: those whose lease ended before `expired_before`, or
    /// all of them (`None`, at start-up of a single-node store, where no other worker exists).
    async fn requeue_jobs(
        &self,
        expired_before: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// How many jobs are queued and running (for `/metrics`).
    async fn job_counts(&self) -> Result<JobCounts, StoreError>;
}

/// Failover and undo sessions: how one begins (with its plan's move and its job), what a worker
/// needs to run it, each VM step and log line, and its end. Every write a worker makes names its
/// claim's [`Fence`].
#[async_trait]
pub trait SessionLog: Send + Sync {
    /// Accepts a start or undo: the plan moves to its running status (or the state machine's
    /// refusal comes back as `StoreError::Refused`), and the session, its async action and its
    /// job are written in one transaction. `false`: the plan is not visible in `scope`.
    async fn begin_session(
        &self,
        scope: Scope,
        session: &NewSession,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    async fn session_work(&self, session: Uuid) -> Result<Option<SessionWork>, StoreError>;

    /// The newest restore point of a VM, at or before an instant if one is given.
    async fn newest_restore_point(
        &self,
        object: Uuid,
        at_or_before: Option<Timestamp>,
    ) -> Result<Option<(Uuid, Timestamp)>, StoreError>;

    /// Records that a VM's step started (before the connector is called); idempotent. This and
    /// the other session writes below are fenced: refused with `StoreError::Fenced` unless
    /// `fence` still holds the session's job.
    async fn record_vm_start(
        &self,
        fence: Fence,
        session: Uuid,
        object: Uuid,
        step: &VmStep,
    ) -> Result<(), StoreError>;

    /// Ends a VM's step with its log line, atomically; a second call for the same step does nothing.
    async fn record_vm_end(
        &self,
        fence: Fence,
        session: Uuid,
        step: Uuid,
        status: standby_model::BackupStatus,
        end: Timestamp,
        message: &standby_model::SessionMessage,
    ) -> Result<(), StoreError>;

    async fn append_session_message(
        &self,
        fence: Fence,
        session: Uuid,
        message: &standby_model::SessionMessage,
    ) -> Result<(), StoreError>;

    /// Ends a session: its status, the plan's status, its async action, its job; one transaction.
    async fn finish_session(
        &self,
        fence: Fence,
        session: Uuid,
        end: &SessionEnd,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Asks a running session to stop; `false` if it has already finished.
    async fn request_cancel(&self, session: Uuid) -> Result<bool, StoreError>;

    async fn cancel_requested(&self, session: Uuid) -> Result<bool, StoreError>;
}

/// Recovery targets, and what a run's report reads beyond the session history: one session,
/// its log lines and its operator notes.
#[async_trait]
pub trait ReportStore: Send + Sync {
    /// A plan's targets (both `None` if it has none).
    async fn plan_targets(&self, plan: Uuid) -> Result<standby_model::RecoveryTargets, StoreError>;

    /// Replaces a plan's targets; runs started afterwards are judged against them.
    async fn set_plan_targets(
        &self,
        plan: Uuid,
        targets: &standby_model::RecoveryTargets,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// One session of a plan, as `session_history` shows it; `None` if the plan has no such
    /// session.
    async fn plan_session(
        &self,
        plan: Uuid,
        session: Uuid,
    ) -> Result<Option<SessionHistory>, StoreError>;

    /// A session's log lines, in order.
    async fn session_messages(
        &self,
        session: Uuid,
    ) -> Result<Vec<standby_model::SessionMessage>, StoreError>;

    async fn session_notes(&self, session: Uuid) -> Result<Vec<SessionNote>, StoreError>;

    /// Appends an operator note (at most 4,000 characters are kept) and returns it.
    async fn add_session_note(
        &self,
        session: Uuid,
        author: &str,
        text: &str,
        now: Timestamp,
    ) -> Result<SessionNote, StoreError>;
}

/// The async actions `/asyncActions` shows.
#[async_trait]
pub trait AsyncActions: Send + Sync {
    async fn list_actions(
        &self,
        initiator: Option<Uuid>,
        now: Timestamp,
    ) -> Result<Vec<AsyncActionRecord>, StoreError>;

    async fn get_action(
        &self,
        uid: Uuid,
        now: Timestamp,
    ) -> Result<Option<AsyncActionRecord>, StoreError>;

    /// Drops a finished action's result; `false` if it is still running or unknown.
    async fn forget_action(&self, uid: Uuid, now: Timestamp) -> Result<bool, StoreError>;
}

/// Sessions as the engine sees them: the job queue and the session log, and nothing else.
pub trait EngineStore: JobQueue + SessionLog {}

impl<T: JobQueue + SessionLog + ?Sized> EngineStore for T {}

/// The whole store, as the binary opens it: every capability above, and the store's own life.
#[async_trait]
pub trait Store:
    PlanStore
    + AuthStore
    + AuditLog
    + IdempotencyStore
    + AsyncActions
    + EngineStore
    + ReportStore
    + DrillStore
    + NotificationStore
    + 'static
{
    /// The store answers and its schema is current.
    async fn check_ready(&self) -> Result<(), StoreError>;

    /// No other process can share this store (SQLite): jobs still leased when it opens were
    /// held by a process that died, and can be resumed at once instead of after their lease.
    fn single_node(&self) -> bool;

    /// What changed, by topic (see [`freshness`]): reads note a stamp before they read and keep
    /// their result while it holds; live views wait on [`freshness::Freshness::changes`] instead
    /// of polling the database. It sees every write this process commits at once, and other
    /// processes' writes as the store's change source reports them.
    fn freshness(&self) -> &std::sync::Arc<freshness::Freshness>;

    /// Closes every connection, so that SQLite folds its write-ahead log back into the
    /// database file and removes it. The store answers nothing afterwards.
    async fn close(&self);

    /// Deletes what is past its expiry or its retention (see [`retention`]): expired
    /// idempotency records, tokens, async actions and login attempts, finished jobs, finished
    /// ledger operations and answered agent commands, audit rows and delivered notifications.
    async fn purge_expired(
        &self,
        now: Timestamp,
        retention: &retention::Retention,
    ) -> Result<retention::Purged, StoreError>;

    /// Refreshes the query planner's statistics after a bulk import (PostgreSQL's `ANALYZE`:
    /// without it the planner guesses at table sizes until autovacuum catches up). SQLite's
    /// queries were tuned on its planner without statistics and are left so.
    async fn refresh_statistics(&self) -> Result<(), StoreError>;

    /// Rows in each of [`retention::WATCHED_TABLES`].
    async fn table_rows(&self) -> Result<Vec<(&'static str, u64)>, StoreError>;

    /// The `sim` connector's ledger, replicas and faults, kept in this database but apart from
    /// the plan store (see [`SimLedger`]).
    fn sim_ledger(&self) -> std::sync::Arc<dyn SimLedger>;

    /// Agent-connected servers and the `agent` connector's commands (see [`AgentStore`]).
    fn agents(&self) -> std::sync::Arc<dyn AgentStore>;
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub uid: Uuid,
    pub at: Timestamp,
    /// `None` when nobody was authenticated (a failed login, the command line).
    pub actor_uid: Option<Uuid>,
    pub actor_name: String,
    /// The client's address, or `local` for the command line.
    pub address: String,
    pub action: AuditAction,
    pub target: Option<String>,
    pub outcome: AuditOutcome,
    pub detail: String,
}

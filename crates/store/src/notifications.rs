//! Notifications as the store keeps them: channels (webhooks and email addresses), the outbox
//! that each event is written to in the transaction of what happened, and the deliveries of
//! events to channels with their attempts.

use async_trait::async_trait;
use standby_model::Timestamp;
use uuid::Uuid;

use crate::{Scope, StoreError};

/// A run (failover, test or undo) was accepted.
pub const RUN_STARTED: &str = "run.started";
/// A run ended well (Success or Warning).
pub const RUN_FINISHED: &str = "run.finished";
/// A run ended Failed.
pub const RUN_FAILED: &str = "run.failed";
/// One VM of a run failed.
pub const VM_FAILED: &str = "vm.failed";
/// A finished failover or test missed its RTO or RPO target (derived from `run.finished` and
/// `run.failed` when they are fanned out).
pub const TARGET_MISSED: &str = "target.missed";
/// A drill skipped a plan (not Ready, too large, stopped after failures...).
pub const DRILL_SKIPPED: &str = "drill.skipped";
/// A drill could not undo a test failover: an operator must.
pub const UNDO_OVERDUE: &str = "undo.overdue";
/// An agent's backup server stopped reporting.
pub const SERVER_OFFLINE: &str = "server.offline";

/// Every event a channel may subscribe to.
pub const EVENTS: [&str; 8] = [
    RUN_STARTED,
    RUN_FINISHED,
    RUN_FAILED,
    VM_FAILED,
    TARGET_MISSED,
    DRILL_SKIPPED,
    UNDO_OVERDUE,
    SERVER_OFFLINE,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// An HTTPS (or HTTP) endpoint, each delivery signed with the channel's secret.
    Webhook,
    /// An email address, sent through the server's SMTP relay.
    Email,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Email => "email",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRecord {
    pub uid: Uuid,
    /// Whose events it gets: its creator's scope.
    pub owner: Scope,
    pub owner_organization_uid: Uuid,
    pub kind: ChannelKind,
    /// The URL, or the email address.
    pub target: String,
    /// A webhook's HMAC-SHA256 key; empty for email.
    pub secret: String,
    /// Event names; empty: every event.
    pub events: Vec<String>,
    pub created_by: String,
    pub created_at: Timestamp,
}

impl ChannelRecord {
    pub fn wants(&self, event: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == event)
    }
}

/// An event in the outbox, not yet fanned out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub uid: Uuid,
    pub name: String,
    pub plan_uid: Option<Uuid>,
    pub server_uid: Option<Uuid>,
    /// JSON.
    pub body: String,
    pub created_at: Timestamp,
}

/// A delivery as the fan-out writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// What `X-Standby-Delivery` carries: derived from the event and the channel, so it is the
    /// same on every attempt.
    pub uid: Uuid,
    pub channel_uid: Uuid,
    pub event_name: String,
    /// Exactly the bytes sent (and signed) on every attempt.
    pub body: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Given up on after 24 hours of attempts.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryState> {
        [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Failed,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub uid: Uuid,
    pub channel_uid: Uuid,
    pub event_uid: Uuid,
    pub event_name: String,
    pub body: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_status: Option<u16>,
    pub last_error: String,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered {
        status: Option<u16>,
    },
    /// Tried again at `retry_at`, or given up on when `None`.
    Failed {
        status: Option<u16>,
        error: String,
        retry_at: Option<Timestamp>,
    },
}

#[async_trait]
pub trait NotificationStore: Send + Sync {
    async fn create_channel(&self, channel: &ChannelRecord) -> Result<(), StoreError>;

    /// A company's channels, or every channel (`Scope::All`).
    async fn list_channels(&self, scope: Scope) -> Result<Vec<ChannelRecord>, StoreError>;

    async fn get_channel(
        &self,
        scope: Scope,
        uid: Uuid,
    ) -> Result<Option<ChannelRecord>, StoreError>;

    /// Deletes a channel and its delivery log; `false` if it was gone.
    async fn delete_channel(&self, uid: Uuid) -> Result<bool, StoreError>;

    /// Writes an event to the outbox on its own (when nothing else is written with it).
    async fn record_event(
        &self,
        name: &str,
        plan: Option<Uuid>,
        server: Option<Uuid>,
        body: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// The oldest events not yet fanned out.
    async fn pending_events(&self, limit: u32) -> Result<Vec<OutboxEvent>, StoreError>;

    /// Fans events out, all in one transaction: each is marked dispatched and its deliveries
    /// written only if it was not dispatched yet (another node may have done it). Answers how
    /// many this call dispatched.
    async fn dispatch_events(
        &self,
        events: &[(Uuid, Vec<NewDelivery>)],
        now: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Pending deliveries due at `now`, oldest first.
    async fn due_deliveries(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Claims a due delivery for one attempt (its attempt count goes up and it is not due
    /// again until `lease_until`); `false` if another node claimed it first.
    async fn claim_delivery(
        &self,
        delivery: &DeliveryRecord,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Records how attempt `attempt` ended (ignored if a later attempt was claimed since).
    async fn finish_attempt(
        &self,
        delivery: Uuid,
        attempt: u32,
        outcome: &AttemptOutcome,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// A channel's deliveries, newest first.
    async fn channel_deliveries(
        &self,
        channel: Uuid,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Agent servers not heard from since `cutoff` and not yet told about for this outage:
    /// each is marked told and gets a `server.offline` event, in one transaction per server.
    async fn claim_offline_servers(
        &self,
        cutoff: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<Uuid>, StoreError>;
}

//! The notification dispatcher: every node runs it, once a second.
//!
//! 1. Agent servers not heard from for `agent_offline_after` get a `server.offline` event (once
//!    per outage, claimed by one node).
//! 2. Events in the outbox are fanned out to the channels that want them and may see them (a
//!    company's channels only its plans and servers): marking an event dispatched and writing
//!    its deliveries is one transaction, so each event is fanned out once. A finished failover
//!    or test that missed a target also gives a `target.missed` delivery.
//! 3. Due deliveries are claimed one attempt at a time (a compare-and-set on the attempt count)
//!    and sent: a webhook is POSTed, signed `X-Standby-Signature: sha256=<HMAC-SHA256 of the
//!    body>`, with `X-Standby-Event` and `X-Standby-Delivery` (the same id on every attempt); an
//!    email goes through the SMTP relay. A failure is retried after `notification_retry`,
//!    doubling up to an hour, for 24 hours; then the delivery is `failed`. A node that dies
//!    mid-attempt leaves the delivery claimed for a minute, then another node tries again: a
//!    receiver may see a delivery twice, never not at all while it is retried.

use std::collections::HashMap;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use standby_model::Timestamp;
use standby_store::notifications::{
    AttemptOutcome, ChannelKind, ChannelRecord, DeliveryRecord, NewDelivery, OutboxEvent,
    RUN_FAILED, RUN_FINISHED, TARGET_MISSED,
};
use standby_store::{Scope, StoreError};
use uuid::Uuid;

use crate::AppState;

/// How long a delivery is retried before it is given up on.
pub const RETRY_WINDOW_SECONDS: i64 = 24 * 3600;
/// The longest wait between two attempts.
const MAX_RETRY_SECONDS: i64 = 3600;
/// An attempt's claim: no other node tries the delivery for this long.
const ATTEMPT_LEASE_SECONDS: i64 = 60;
/// A webhook's receiver has this long to answer.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_secs(1);

/// `sha256=<hex>` of the body under the channel's secret: what `X-Standby-Signature` carries.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The dispatcher's HTTP client and SMTP relay.
pub struct Senders {
    http: reqwest::Client,
    smtp: Option<(
        lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
        lettre::message::Mailbox,
    )>,
}

impl Senders {
    pub fn new(state: &AppState) -> Result<Senders, String> {
        // The process's one TLS crypto provider (the binary installs the same one at start);
        // reqwest's builder cannot make an HTTPS client without it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Standby/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("the webhook client: {e}"))?;
        let smtp = match &state.settings.smtp {
            None => None,
            Some(smtp) => {
                let transport =
                    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(&smtp.url)
                        .map_err(|e| format!("the SMTP URL: {e}"))?
                        .timeout(Some(WEBHOOK_TIMEOUT))
                        .build();
                let from = smtp
                    .from
                    .parse()
                    .map_err(|e| format!("the SMTP sender '{}': {e}", smtp.from))?;
                Some((transport, from))
            }
        };
        Ok(Senders { http, smtp })
    }
}

/// Runs the dispatcher until the process ends.
pub async fn run(state: AppState) {
    let senders = match Senders::new(&state) {
        Ok(senders) => senders,
        Err(error) => {
            tracing::error!(%error, "notifications cannot be sent");
            return;
        }
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = once(&state, &senders, Timestamp::now()).await {
            tracing::warn!(%error, "the notification dispatcher's pass failed; it tries again");
        }
    }
}

/// One pass: offline servers, fan-out, deliveries.
pub async fn once(state: &AppState, senders: &Senders, now: Timestamp) -> Result<(), StoreError> {
    let offline_after = state.settings.agent_offline_after.as_secs() as i64;
    state
        .store
        .claim_offline_servers(now.plus_seconds(-offline_after), now)
        .await?;
    fan_out(state, now).await?;
    deliver(state, senders, now).await
}

/// Which channels may see an event: the provider's all, a company's its own plans and servers.
async fn visible(
    state: &AppState,
    owner: Scope,
    event: &OutboxEvent,
    seen: &mut HashMap<(Scope, Uuid), bool>,
) -> Result<bool, StoreError> {
    if owner == Scope::All {
        return Ok(true);
    }
    let (key, is_plan) = match (event.plan_uid, event.server_uid) {
        (Some(plan), _) => (plan, true),
        (None, Some(server)) => (server, false),
        (None, None) => return Ok(false),
    };
    if let Some(known) = seen.get(&(owner, key)) {
        return Ok(*known);
    }
    let answer = if is_plan {
        state.store.get_plan(owner, key).await?.is_some()
    } else {
        state.store.server_visible(owner, key).await?
    };
    seen.insert((owner, key), answer);
    Ok(answer)
}

/// The notifications one outbox event makes: itself, and `target.missed` for a finished
/// failover or test that missed a target. Each with the data a receiver reads.
async fn notifications_of(
    state: &AppState,
    event: &OutboxEvent,
) -> Result<Vec<(String, Value)>, StoreError> {
    let mut data: Value = serde_json::from_str(&event.body).unwrap_or(Value::Null);
    let plan = match event.plan_uid {
        Some(uid) => state.store.get_plan(Scope::All, uid).await?,
        None => None,
    };
    if let (Some(plan), Some(object)) = (&plan, data.as_object_mut()) {
        object.insert("planUid".into(), json!(plan.instance_uid));
        object.insert("planName".into(), json!(plan.name));
    }
    let mut out = vec![(event.name.clone(), data.clone())];
    if event.name == RUN_FINISHED || event.name == RUN_FAILED {
        let session = data["sessionUid"]
            .as_str()
            .and_then(|t| Uuid::parse_str(t).ok());
        if let (Some(plan), Some(session)) = (event.plan_uid, session)
            && let Some(run) = state.store.plan_session(plan, session).await?
            && run.kind != standby_model::SessionKind::Undo
        {
            let measure = crate::reports::measure(&run);
            if measure.missed_a_target() {
                let mut missed = data.clone();
                if let Some(object) = missed.as_object_mut() {
                    object.insert("kind".into(), json!(run.kind.as_str()));
                    object.insert(
                        "targets".into(),
                        json!({
                            "rtoSeconds": run.targets.rto_seconds,
                            "rpoSeconds": run.targets.rpo_seconds,
                        }),
                    );
                    object.insert("rtoSeconds".into(), json!(measure.rto_seconds));
                    object.insert("rtoMet".into(), json!(measure.rto_met));
                    object.insert("worstRpoSeconds".into(), json!(measure.worst_rpo_seconds));
                    object.insert("rpoMet".into(), json!(measure.rpo_met));
                    object.insert("verdict".into(), json!(measure.verdict.as_str()));
                }
                out.push((TARGET_MISSED.to_owned(), missed));
            }
        }
    }
    Ok(out)
}

async fn fan_out(state: &AppState, now: Timestamp) -> Result<(), StoreError> {
    let events = state.store.pending_events(500).await?;
    if events.is_empty() {
        return Ok(());
    }
    let channels: Vec<ChannelRecord> = state.store.list_channels(Scope::All).await?;
    let mut seen = HashMap::new();
    let mut batch = Vec::with_capacity(events.len());
    for event in &events {
        let mut deliveries = Vec::new();
        if !channels.is_empty() {
            for (name, data) in notifications_of(state, event).await? {
                for channel in channels.iter().filter(|c| c.wants(&name)) {
                    if !visible(state, channel.owner, event, &mut seen).await? {
                        continue;
                    }
                    let uid =
                        Uuid::new_v5(&event.uid, format!("{}/{name}", channel.uid).as_bytes());
                    let body = json!({
                        "id": uid,
                        "event": name,
                        "occurredAt": event.created_at,
                        "data": data,
                    });
                    deliveries.push(NewDelivery {
                        uid,
                        channel_uid: channel.uid,
                        event_name: name.clone(),
                        body: body.to_string(),
                    });
                }
            }
        }
        batch.push((event.uid, deliveries));
    }
    // One transaction for the pass: a burst of runs costs one write, not one per event.
    state.store.dispatch_events(&batch, now).await?;
    Ok(())
}

/// The wait before attempt `attempt + 1`, or `None` past the 24-hour window.
fn retry_at(
    state: &AppState,
    delivery: &DeliveryRecord,
    attempt: u32,
    now: Timestamp,
) -> Option<Timestamp> {
    let first = state.settings.notification_retry.as_secs().max(1) as i64;
    let wait = first
        .saturating_mul(1_i64 << attempt.saturating_sub(1).min(20))
        .min(MAX_RETRY_SECONDS);
    let at = now.plus_seconds(wait);
    (at <= delivery.created_at.plus_seconds(RETRY_WINDOW_SECONDS)).then_some(at)
}

async fn deliver(state: &AppState, senders: &Senders, now: Timestamp) -> Result<(), StoreError> {
    let due = state.store.due_deliveries(now, 32).await?;
    if due.is_empty() {
        return Ok(());
    }
    let channels: HashMap<Uuid, ChannelRecord> = state
        .store
        .list_channels(Scope::All)
        .await?
        .into_iter()
        .map(|c| (c.uid, c))
        .collect();
    let mut attempts = Vec::new();
    for delivery in due {
        let Some(channel) = channels.get(&delivery.channel_uid) else {
            continue;
        };
        if !state
            .store
            .claim_delivery(&delivery, now, now.plus_seconds(ATTEMPT_LEASE_SECONDS))
            .await?
        {
            continue;
        }
        attempts.push(async move {
            let attempt = delivery.attempts + 1;
            let outcome = send(senders, channel, &delivery).await;
            let outcome = match outcome {
                Ok(status) => AttemptOutcome::Delivered { status },
                Err((status, error)) => {
                    let retry = retry_at(state, &delivery, attempt, Timestamp::now());
                    tracing::warn!(delivery.uid = %delivery.uid, channel.uid = %channel.uid, event = %delivery.event_name,
                        attempt, %error, retrying = retry.is_some(), "a notification was not delivered");
                    AttemptOutcome::Failed {
                        status,
                        error,
                        retry_at: retry,
                    }
                }
            };
            state
                .store
                .finish_attempt(delivery.uid, attempt, &outcome, Timestamp::now())
                .await
        });
    }
    for result in futures_util::future::join_all(attempts).await {
        result?;
    }
    Ok(())
}

/// One attempt: the receiver's status, or what went wrong.
async fn send(
    senders: &Senders,
    channel: &ChannelRecord,
    delivery: &DeliveryRecord,
) -> Result<Option<u16>, (Option<u16>, String)> {
    match channel.kind {
        ChannelKind::Webhook => {
            let response = senders
                .http
                .post(&channel.target)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("X-Standby-Event", &delivery.event_name)
                .header("X-Standby-Delivery", delivery.uid.to_string())
                .header(
                    "X-Standby-Signature",
                    signature(&channel.secret, delivery.body.as_bytes()),
                )
                .body(delivery.body.clone())
                .send()
                .await
                .map_err(|e| (None, format!("the request failed: {e}")))?;
            let status = response.status().as_u16();
            if response.status().is_success() {
                Ok(Some(status))
            } else {
                Err((Some(status), format!("the receiver answered HTTP {status}")))
            }
        }
        ChannelKind::Email => {
            let Some((transport, from)) = &senders.smtp else {
                return Err((None, "no SMTP relay is configured (--smtp-url)".into()));
            };
            let to = channel
                .target
                .parse()
                .map_err(|e| (None, format!("the address: {e}")))?;
            let body: Value = serde_json::from_str(&delivery.body).unwrap_or(Value::Null);
            let subject = format!(
                "[Standby] {} {}",
                delivery.event_name,
                body["data"]["planName"]
                    .as_str()
                    .or(body["data"]["backupServerName"].as_str())
                    .unwrap_or_default()
            );
            let text = format!(
                "{}\n\nDelivery {}\n\n{}\n",
                subject,
                delivery.uid,
                serde_json::to_string_pretty(&body).unwrap_or_default()
            );
            let message = lettre::Message::builder()
                .from(from.clone())
                .to(to)
                .subject(subject)
                .header(lettre::message::header::ContentType::TEXT_PLAIN)
                .body(text)
                .map_err(|e| (None, format!("the message: {e}")))?;
            use lettre::AsyncTransport;
            transport
                .send(message)
                .await
                .map(|response| Some(response.code().into()))
                .map_err(|e| (None, format!("SMTP: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

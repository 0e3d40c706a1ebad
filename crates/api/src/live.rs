//! Server-sent events that follow the store's change signal: the API's session events (for the
//! CLI's `--wait` and `watch`) and the console's live panels share this loop.
//!
//! A stream waits on the store's changes to what runs show (no polling of the database), lets
//! close changes settle for [`COALESCE`], takes a snapshot (a list of keyed payloads) at most
//! once per [`MIN_INTERVAL`], and sends only the payloads whose text changed since it last sent
//! them, each as one event numbered by the stream (not by the installation's write counter, which
//! would tell a tenant how busy everyone else is). Every connection starts with the whole
//! snapshot, so a client that reconnects (with `Last-Event-ID` or not) can never keep a stale
//! payload. The credential is checked again before every snapshot and at least every
//! [`RECHECK`]: a logout, an expiry, a disabled user or a lost permission ends the stream, and a
//! changed role or company applies to the next snapshot.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;

use standby_store::freshness::{Changes, Topics};

use crate::AppState;
use crate::access::check_read;
use crate::identity::{Principal, authenticate_token};

/// Changes closer together than this are sent as one update.
pub const COALESCE: Duration = Duration::from_millis(150);

/// At most one snapshot per this long, however busy the runs are (a stream wakes only for writes
/// of what runs show: plans, VMs, sessions and their log lines).
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);

/// An idle stream checks its credential this often.
pub const RECHECK: Duration = Duration::from_secs(30);

/// How often an idle stream sends a comment, so proxies keep it open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One payload of a snapshot: its key (what it describes) and its text.
pub type Keyed = (String, String);

/// A snapshot in the making; `None` ends the stream (the subject is gone, or the store failed:
/// the client reconnects and is told why by the first request).
pub type Snapshot = Pin<Box<dyn Future<Output = Option<Vec<Keyed>>> + Send>>;

struct Follow<F> {
    state: AppState,
    credential: String,
    event: &'static str,
    snapshot: F,
    changes: Changes,
    sent: HashMap<String, String>,
    queued: VecDeque<Event>,
    /// Snapshots taken so far: the events' ids.
    taken: u64,
    last: Option<tokio::time::Instant>,
}

impl<F: Fn(Principal) -> Snapshot> Follow<F> {
    /// Queues the events for whatever changed since the last call; `None` ends the stream.
    async fn next_snapshot(&mut self) -> Option<()> {
        if let Some(last) = self.last {
            tokio::select! {
                changed = self.changes.changed() => {
                    changed.ok()?;
                    tokio::time::sleep(COALESCE).await;
                    tokio::time::sleep_until(last + MIN_INTERVAL).await;
                }
                () = tokio::time::sleep(RECHECK) => {}
            }
        }
        self.last = Some(tokio::time::Instant::now());
        self.changes.mark_seen();
        let principal = authenticate_token(&self.state, &self.credential)
            .await
            .ok()?;
        check_read(&principal).ok()?;
        let payloads = (self.snapshot)(principal).await?;
        if payloads
            .iter()
            .any(|(key, text)| self.sent.get(key) != Some(text))
        {
            self.taken += 1;
        }
        for (key, text) in payloads {
            if self.sent.get(&key) != Some(&text) {
                self.queued.push_back(
                    Event::default()
                        .event(self.event)
                        .id(self.taken.to_string())
                        .data(&text),
                );
                self.sent.insert(key, text);
            }
        }
        Some(())
    }
}

/// A stream of `event` events following `snapshot`, for as long as `credential` (an access
/// token, API key or console session) stays valid and may read plans. `snapshot` is given the
/// principal as the credential resolves now, so its scope is always current.
pub fn follow_changes<F>(
    state: AppState,
    credential: String,
    event: &'static str,
    snapshot: F,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>>
where
    F: Fn(Principal) -> Snapshot + Send + 'static,
{
    let follow = Follow {
        changes: state.store.freshness().changes(Topics::RUNS),
        state,
        credential,
        event,
        snapshot,
        sent: HashMap::new(),
        queued: VecDeque::new(),
        taken: 0,
        last: None,
    };
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        loop {
            if let Some(event) = follow.queued.pop_front() {
                return Some((Ok(event), follow));
            }
            follow.next_snapshot().await?;
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

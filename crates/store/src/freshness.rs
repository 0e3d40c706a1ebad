//! What changed, by topic: one counter per group of tables a cached read can show. A read notes
//! the [`Freshness::stamp`] of the topics it shows *before* it reads; a result kept under that
//! stamp is served again only while the stamp is unchanged. Writers advance the topics they wrote
//! *after* they commit, so a reader that saw stamp `s` either read the new data or will see a
//! newer stamp next time: a cached answer is never older than the last write this process
//! finished. A stamp is the sum of its topics' counters: each only grows, so the sum changes
//! exactly when one of them does.
//!
//! A session's log lines are counted apart, per session ([`Freshness::log_mark`]): every VM step
//! writes one, and the plan list shows the log of each plan's last run only, so a page of plans
//! stays valid while the sessions of other plans log their steps.
//!
//! Writes by other processes do not pass through this process. A [`ChangeSource`] reports them:
//! on SQLite, `PRAGMA data_version` on the writer's own connection (it moves only when another
//! connection commits: an admin command on the file), polled every [`WATCH_INTERVAL`]; on
//! PostgreSQL, notifications sent by triggers on the tables (`LISTEN standby_changes`), naming the
//! table and, for log lines, the session, and sent at commit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use uuid::Uuid;

/// How often SQLite's change marker is polled for writes by other processes.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// Counts cached before the cache starts over (a bound on memory, not a target).
const MAX_CACHED_COUNTS: usize = 10_000;

/// Sessions whose log stamps are kept before the map starts over (from a floor that invalidates
/// every mark taken before it).
const MAX_LOGGED_SESSIONS: usize = 100_000;

/// Groups of tables, as reads depend on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Topics(u16);

impl Topics {
    /// Plans, their servers and targets.
    pub const PLANS: Topics = Topics(1);
    /// Organizations and tenants: scoping, and who is the provider.
    pub const ORGANIZATIONS: Topics = Topics(1 << 1);
    /// Plan objects (VMs), their restore points and their restore sessions.
    pub const OBJECTS: Topics = Topics(1 << 2);
    /// Sessions (runs) and their notes.
    pub const SESSIONS: Topics = Topics(1 << 3);
    /// Sessions' log lines (also counted per session, see [`Freshness::log_mark`]).
    pub const SESSION_LOG: Topics = Topics(1 << 4);
    /// Users, tokens, API keys, login attempts.
    pub const AUTH: Topics = Topics(1 << 5);
    /// Jobs, async actions, idempotency keys.
    pub const ENGINE: Topics = Topics(1 << 6);
    /// Agent servers and their command queue.
    pub const AGENTS: Topics = Topics(1 << 7);
    /// Drills and their runs.
    pub const DRILLS: Topics = Topics(1 << 8);
    /// Notification channels, the outbox and deliveries.
    pub const NOTIFICATIONS: Topics = Topics(1 << 9);
    /// The sim connector's ledger, the audit trail, anything else.
    pub const OTHER: Topics = Topics(1 << 10);
    const COUNT: usize = 11;
    pub const ALL: Topics = Topics((1 << Self::COUNT) - 1);
    pub const NONE: Topics = Topics(0);

    /// What a plan read shows (besides its last run's log, checked per session). A plan also
    /// shows its last run's status, end and message, but those are written only with the plan
    /// itself (a run begins and ends in the transaction that moves its plan's status), so a
    /// run's other writes (its job's claim, its phase, a cancel request, a note) leave plan
    /// reads cached.
    pub const PLAN_READ: Topics = Topics(Self::PLANS.0 | Self::ORGANIZATIONS.0);
    /// What a plan object read shows: the VM, its last restore session, and its plan for scope.
    pub const OBJECT_READ: Topics = Topics(Self::PLANS.0 | Self::ORGANIZATIONS.0 | Self::OBJECTS.0);
    /// Who a credential stands for.
    pub const CREDENTIALS: Topics = Topics(Self::AUTH.0 | Self::ORGANIZATIONS.0);
    /// What a run's live view shows.
    pub const RUNS: Topics =
        Topics(Self::PLANS.0 | Self::OBJECTS.0 | Self::SESSIONS.0 | Self::SESSION_LOG.0);

    pub const fn union(self, other: Topics) -> Topics {
        Topics(self.0 | other.0)
    }

    pub const fn contains(self, other: Topics) -> bool {
        self.0 & other.0 == other.0
    }

    fn indexes(self) -> impl Iterator<Item = usize> {
        (0..Self::COUNT).filter(move |i| self.0 & (1 << i) != 0)
    }

    /// The topic a table belongs to (everything, for a table this code does not know: a
    /// conservative answer only costs cache misses).
    pub fn of_table(table: &str) -> Topics {
        match table {
            "plans" | "backup_servers" | "plan_targets" => Self::PLANS,
            "organizations" | "tenants" => Self::ORGANIZATIONS,
            "plan_objects" | "restore_points" | "vm_sessions" => Self::OBJECTS,
            "sessions" | "session_notes" => Self::SESSIONS,
            "session_messages" => Self::SESSION_LOG,
            "users" | "tokens" | "api_keys" | "login_attempts" => Self::AUTH,
            "jobs" | "async_actions" | "idempotency" => Self::ENGINE,
            "agents" | "agent_commands" | "agent_replicas" => Self::AGENTS,
            "drills" | "drill_runs" | "drill_run_plans" => Self::DRILLS,
            "notification_channels" | "notification_events" | "notification_deliveries" => {
                Self::NOTIFICATIONS
            }
            "sim_replicas" | "sim_operations" | "sim_faults" | "audit" => Self::OTHER,
            _ => Self::ALL,
        }
    }
}

impl std::ops::BitOr for Topics {
    type Output = Topics;
    fn bitor(self, other: Topics) -> Topics {
        self.union(other)
    }
}

#[derive(Debug, Default)]
pub struct Freshness {
    counters: [AtomicU64; Topics::COUNT],
    /// Every advance, for those who wait for one (live views filter it by topic).
    changed: tokio::sync::watch::Sender<u64>,
    logs: Mutex<SessionLogs>,
    counts: Mutex<CachedCounts>,
    watcher: Mutex<Option<Watcher>>,
}

/// When each session's log last changed, on one counter.
#[derive(Debug, Default)]
struct SessionLogs {
    counter: u64,
    /// Marks taken before this are stale: the map started over after it.
    floor: u64,
    changed_at: HashMap<Uuid, u64>,
}

/// The polling task, and how to stop it.
#[derive(Debug)]
struct Watcher {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct CachedCounts {
    /// One cell per query and stamp: the first request counts, the others at the same stamp
    /// wait for its answer instead of counting too (32 concurrent counts of 100,000 rows each
    /// would take 2 cores 160 ms).
    totals: HashMap<(String, u64), Arc<tokio::sync::OnceCell<u64>>>,
}

/// What another process changed, as a [`ChangeSource`] saw it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Observed {
    Nothing,
    /// Anything may have changed (the marker moved, or could not be read).
    Everything,
    Topics(Topics),
    /// Log lines of these sessions.
    SessionLogs(Vec<Uuid>),
}

impl Freshness {
    /// The stamp of `topics`: unchanged means nothing they hold changed.
    pub fn stamp(&self, topics: Topics) -> u64 {
        topics
            .indexes()
            .map(|i| self.counters[i].load(Ordering::Acquire))
            .fold(0, u64::wrapping_add)
    }

    /// Called after a write of `topics` commits (or fails: advancing needlessly only costs a
    /// miss).
    pub fn advance(&self, topics: Topics) {
        for i in topics.indexes() {
            self.counters[i].fetch_add(1, Ordering::AcqRel);
        }
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Called after log lines of `sessions` were written (advances [`Topics::SESSION_LOG`] too).
    pub fn log_changed(&self, sessions: &[Uuid]) {
        if let Ok(mut logs) = self.logs.lock() {
            logs.counter += 1;
            let now = logs.counter;
            if logs.changed_at.len() + sessions.len() > MAX_LOGGED_SESSIONS {
                logs.changed_at.clear();
                logs.floor = now;
            }
            for session in sessions {
                logs.changed_at.insert(*session, now);
            }
        }
        self.advance(Topics::SESSION_LOG);
    }

    /// A mark to note before reading session logs.
    pub fn log_mark(&self) -> u64 {
        self.logs.lock().map(|logs| logs.counter).unwrap_or(0)
    }

    /// Whether no log line of `sessions` was written since `mark` was taken.
    pub fn logs_unchanged_since(&self, mark: u64, sessions: &[Uuid]) -> bool {
        let Ok(logs) = self.logs.lock() else {
            return false;
        };
        mark >= logs.floor
            && sessions
                .iter()
                .all(|s| logs.changed_at.get(s).is_none_or(|&at| at <= mark))
    }

    /// Follows the advances of `topics`.
    pub fn changes(self: &Arc<Self>, topics: Topics) -> Changes {
        Changes {
            freshness: self.clone(),
            topics,
            seen: self.stamp(topics),
            receiver: self.changed.subscribe(),
        }
    }

    fn observe(&self, observed: Observed) {
        match observed {
            Observed::Nothing => {}
            Observed::Everything => {
                if let Ok(mut logs) = self.logs.lock() {
                    // Every session's log may have moved: marks taken before now are stale.
                    logs.counter += 1;
                    logs.floor = logs.counter;
                    logs.changed_at.clear();
                }
                self.advance(Topics::ALL);
            }
            Observed::Topics(topics) => self.advance(topics),
            Observed::SessionLogs(sessions) => self.log_changed(&sessions),
        }
    }

    /// The total of this exact query at `stamp`: counted by `count` once, however many requests
    /// ask at the same time.
    pub(crate) async fn count<E, F>(&self, stamp: u64, query: String, count: F) -> Result<u64, E>
    where
        F: Future<Output = Result<u64, E>>,
    {
        let Some(cell) = self.count_cell(stamp, query) else {
            return count.await;
        };
        cell.get_or_try_init(|| count).await.copied()
    }

    fn count_cell(&self, stamp: u64, query: String) -> Option<Arc<tokio::sync::OnceCell<u64>>> {
        let mut counts = self.counts.lock().ok()?;
        if counts.totals.len() >= MAX_CACHED_COUNTS {
            counts.totals.clear();
        }
        // A count at an older stamp of the same query can never be served again.
        Some(counts.totals.entry((query, stamp)).or_default().clone())
    }

    /// Runs `source` and applies what it observes; stops when the store (the last strong
    /// reference) is dropped or [`Freshness::stop_watching`] is called.
    pub(crate) fn watch(self: &Arc<Self>, mut source: impl ChangeSource) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = runtime.spawn(async move {
            loop {
                let observed = tokio::select! {
                    observed = source.next() => observed,
                    _ = &mut stopped => {
                        source.close().await;
                        return;
                    }
                };
                let Some(freshness) = weak.upgrade() else {
                    return;
                };
                freshness.observe(observed);
            }
        });
        if let Ok(mut watcher) = self.watcher.lock() {
            *watcher = Some(Watcher { stop, task });
        }
    }

    /// Stops the watching task and waits until its connection is closed.
    pub(crate) async fn stop_watching(&self) {
        let watcher = self.watcher.lock().ok().and_then(|mut w| w.take());
        if let Some(Watcher { stop, task }) = watcher {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}

/// A receiver of the advances of some topics (see [`Freshness::changes`]).
#[derive(Debug)]
pub struct Changes {
    freshness: Arc<Freshness>,
    topics: Topics,
    seen: u64,
    receiver: tokio::sync::watch::Receiver<u64>,
}

impl Changes {
    /// Waits until one of the topics advanced since the last call (or since this was made);
    /// `Err` when the store is gone.
    pub async fn changed(&mut self) -> Result<(), tokio::sync::watch::error::RecvError> {
        loop {
            let now = self.freshness.stamp(self.topics);
            if now != self.seen {
                self.seen = now;
                return Ok(());
            }
            self.receiver.changed().await?;
        }
    }

    /// Takes what happened so far as seen.
    pub fn mark_seen(&mut self) {
        self.receiver.borrow_and_update();
        self.seen = self.freshness.stamp(self.topics);
    }
}

/// What reports other processes' writes: each call waits for the next observation.
pub(crate) trait ChangeSource: Send + 'static {
    fn next(&mut self) -> impl Future<Output = Observed> + Send + '_;
    /// Releases what the source holds (a connection of its own) before the store closes.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// Reads a notification of the PostgreSQL trigger (`<table> <node>[ <session uid>]`), ignoring
/// this node's own writes (already applied when they committed).
pub(crate) fn parse_notification(payload: &str, own_node: &str) -> Observed {
    let mut parts = payload.split(' ');
    let (Some(table), Some(node)) = (parts.next(), parts.next()) else {
        return Observed::Everything;
    };
    if node == own_node {
        return Observed::Nothing;
    }
    let topics = Topics::of_table(table);
    if topics == Topics::SESSION_LOG {
        return match parts.next().map(Uuid::parse_str) {
            Some(Ok(session)) => Observed::SessionLogs(vec![session]),
            _ => Observed::Topics(topics),
        };
    }
    Observed::Topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn counted(freshness: &Freshness, stamp: u64, query: &str, total: u64) -> u64 {
        freshness
            .count(stamp, query.to_owned(), async { Ok::<_, ()>(total) })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_count_is_served_only_at_its_stamp() {
        let freshness = Freshness::default();
        let s = freshness.stamp(Topics::PLAN_READ);
        assert_eq!(counted(&freshness, s, "q", 7).await, 7);
        assert_eq!(counted(&freshness, s, "q", 8).await, 7, "kept");
        assert_eq!(counted(&freshness, s, "other", 9).await, 9);
        freshness.advance(Topics::PLANS);
        let moved = freshness.stamp(Topics::PLAN_READ);
        assert_ne!(moved, s);
        assert_eq!(counted(&freshness, moved, "q", 10).await, 10);
    }

    #[test]
    fn a_stamp_moves_only_with_its_topics() {
        let freshness = Freshness::default();
        let plans = freshness.stamp(Topics::PLAN_READ);
        let objects = freshness.stamp(Topics::OBJECT_READ);
        let credentials = freshness.stamp(Topics::CREDENTIALS);
        // A VM step: its object, its log line, the job's fence.
        freshness.advance(Topics::OBJECTS | Topics::ENGINE);
        freshness.log_changed(&[Uuid::from_u128(1)]);
        assert_eq!(freshness.stamp(Topics::PLAN_READ), plans);
        assert_eq!(freshness.stamp(Topics::CREDENTIALS), credentials);
        assert_ne!(freshness.stamp(Topics::OBJECT_READ), objects);
        freshness.advance(Topics::ORGANIZATIONS);
        assert_ne!(freshness.stamp(Topics::PLAN_READ), plans);
        assert_ne!(freshness.stamp(Topics::CREDENTIALS), credentials);
    }

    #[test]
    fn a_log_mark_sees_only_its_sessions() {
        let freshness = Freshness::default();
        let (mine, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mark = freshness.log_mark();
        freshness.log_changed(&[other]);
        assert!(freshness.logs_unchanged_since(mark, &[mine]));
        freshness.log_changed(&[mine]);
        assert!(!freshness.logs_unchanged_since(mark, &[mine]));
        let later = freshness.log_mark();
        assert!(freshness.logs_unchanged_since(later, &[mine, other]));
        // Anything changed elsewhere: every mark taken before is stale.
        freshness.observe(Observed::Everything);
        assert!(!freshness.logs_unchanged_since(later, &[]));
        assert!(freshness.logs_unchanged_since(freshness.log_mark(), &[mine]));
    }

    #[test]
    fn a_full_log_map_starts_over_from_a_floor() {
        let freshness = Freshness::default();
        let mark = freshness.log_mark();
        let many: Vec<Uuid> = (0..=MAX_LOGGED_SESSIONS as u128)
            .map(Uuid::from_u128)
            .collect();
        freshness.log_changed(&many[..MAX_LOGGED_SESSIONS]);
        freshness.log_changed(&many[MAX_LOGGED_SESSIONS..]);
        // The map forgot the first sessions; the floor keeps the old mark stale anyway.
        assert!(!freshness.logs_unchanged_since(mark, &[many[0]]));
    }

    #[tokio::test]
    async fn changes_wake_only_for_their_topics() {
        let freshness = Arc::new(Freshness::default());
        let mut runs = freshness.changes(Topics::RUNS);
        freshness.advance(Topics::AGENTS | Topics::NOTIFICATIONS);
        let quiet = tokio::time::timeout(Duration::from_millis(50), runs.changed()).await;
        assert!(quiet.is_err(), "an agent heartbeat woke a run's live view");
        freshness.log_changed(&[Uuid::from_u128(3)]);
        tokio::time::timeout(Duration::from_secs(1), runs.changed())
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn notifications_name_their_table_and_node() {
        let session = Uuid::from_u128(7);
        assert_eq!(
            parse_notification("plans node-a", "node-a"),
            Observed::Nothing
        );
        assert_eq!(
            parse_notification("plans node-b", "node-a"),
            Observed::Topics(Topics::PLANS)
        );
        assert_eq!(
            parse_notification(&format!("session_messages node-b {session}"), "node-a"),
            Observed::SessionLogs(vec![session])
        );
        assert_eq!(
            parse_notification("mystery node-b", "node-a"),
            Observed::Topics(Topics::ALL)
        );
        assert_eq!(
            parse_notification("garbage", "node-a"),
            Observed::Everything
        );
    }

    #[tokio::test]
    async fn concurrent_requests_count_once() {
        let freshness = Freshness::default();
        let runs = AtomicU64::new(0);
        let count = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok::<_, ()>(5)
        };
        let (a, b) = tokio::join!(
            freshness.count(0, "q".into(), count()),
            freshness.count(0, "q".into(), count())
        );
        assert_eq!((a, b), (Ok(5), Ok(5)));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}

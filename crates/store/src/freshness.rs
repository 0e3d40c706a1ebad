//! The data generation: a number that changes whenever something a cached read could show may
//! have changed. Readers note it *before* they read; a result kept under generation `g` is served
//! again only while the generation is still `g`. Writers advance it *after* they commit, so a
//! reader that saw `g` either read the new data or will see `g + 1` next time: a cached answer is
//! never older than the last write this process finished.
//!
//! Writes by other processes (an admin command on the SQLite file, another PostgreSQL node) do
//! not pass through this process; a watcher polls the database's own change marker
//! (`PRAGMA data_version`, `pg_current_wal_lsn()`) every [`WATCH_INTERVAL`] and advances the
//! generation when it moves, so their writes show within that interval.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How often the database's change marker is polled for writes by other processes.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// Counts cached per generation before the cache starts over (a bound on memory, not a target).
const MAX_CACHED_COUNTS: usize = 10_000;

#[derive(Debug, Default)]
pub struct Freshness {
    generation: AtomicU64,
    /// The same number for those who wait for it to move (live views).
    changed: tokio::sync::watch::Sender<u64>,
    counts: Mutex<CachedCounts>,
    watcher: Mutex<Option<Watcher>>,
}

/// The polling task, and how to stop it.
#[derive(Debug)]
struct Watcher {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Default)]
struct CachedCounts {
    generation: u64,
    /// One cell per query: the first request counts, the others at the same generation wait
    /// for its answer instead of counting too (32 concurrent counts of 100,000 rows each
    /// would take 2 cores 160 ms).
    totals: HashMap<String, Arc<tokio::sync::OnceCell<u64>>>,
}

impl Freshness {
    pub fn current(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Called after every write commits (or fails: advancing needlessly only costs a miss).
    pub fn advance(&self) {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.changed.send_replace(generation);
    }

    /// A receiver that sees the generation after each advance.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The total of this exact query at `generation`: counted by `count` once, however many
    /// requests ask at the same time. A count started at an older generation is not kept.
    pub(crate) async fn count<E, F>(
        &self,
        generation: u64,
        query: String,
        count: F,
    ) -> Result<u64, E>
    where
        F: Future<Output = Result<u64, E>>,
    {
        let Some(cell) = self.count_cell(generation, query) else {
            return count.await;
        };
        cell.get_or_try_init(|| count).await.copied()
    }

    fn count_cell(
        &self,
        generation: u64,
        query: String,
    ) -> Option<Arc<tokio::sync::OnceCell<u64>>> {
        let mut counts = self.counts.lock().ok()?;
        if generation < counts.generation {
            return None;
        }
        if generation > counts.generation || counts.totals.len() >= MAX_CACHED_COUNTS {
            counts.totals.clear();
            counts.generation = generation;
        }
        Some(counts.totals.entry(query).or_default().clone())
    }

    /// Polls `marker` every [`WATCH_INTERVAL`] and advances the generation whenever its value
    /// changes; stops when the store (the last strong reference) is dropped. A failing poll
    /// advances too, so that nothing is served from cache on a guess.
    pub(crate) fn watch(self: &Arc<Self>, mut marker: impl ChangeMarker) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = runtime.spawn(async move {
            let mut last: Option<String> = None;
            let mut ticks = tokio::time::interval(WATCH_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = &mut stopped => {
                        marker.close().await;
                        return;
                    }
                }
                let Some(freshness) = weak.upgrade() else {
                    return;
                };
                let seen = marker.read().await;
                if seen.is_none() || seen != last {
                    freshness.advance();
                }
                last = seen;
            }
        });
        if let Ok(mut watcher) = self.watcher.lock() {
            *watcher = Some(Watcher { stop, task });
        }
    }

    /// Stops the polling task and waits until its connection is closed.
    pub(crate) async fn stop_watching(&self) {
        let watcher = self.watcher.lock().ok().and_then(|mut w| w.take());
        if let Some(Watcher { stop, task }) = watcher {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}

/// A value the database changes whenever anyone commits a write; `None` when it cannot be read.
pub(crate) trait ChangeMarker: Send + 'static {
    fn read(&mut self) -> impl Future<Output = Option<String>> + Send + '_;
    /// Releases what the marker holds (a connection of its own) before the store closes.
    fn close(self) -> impl Future<Output = ()> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn counted(freshness: &Freshness, generation: u64, query: &str, total: u64) -> u64 {
        freshness
            .count(generation, query.to_owned(), async { Ok::<_, ()>(total) })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_count_is_served_only_at_its_generation() {
        let freshness = Freshness::default();
        let g = freshness.current();
        assert_eq!(counted(&freshness, g, "q", 7).await, 7);
        assert_eq!(counted(&freshness, g, "q", 8).await, 7, "kept");
        assert_eq!(counted(&freshness, g, "other", 9).await, 9);
        freshness.advance();
        assert_eq!(counted(&freshness, freshness.current(), "q", 10).await, 10);
    }

    #[tokio::test]
    async fn a_count_taken_before_a_newer_write_is_not_kept() {
        let freshness = Freshness::default();
        let old = freshness.current();
        freshness.advance();
        let new = freshness.current();
        assert_eq!(counted(&freshness, new, "q", 1).await, 1);
        assert_eq!(counted(&freshness, old, "q", 2).await, 2, "counted afresh");
        assert_eq!(counted(&freshness, new, "q", 3).await, 1);
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

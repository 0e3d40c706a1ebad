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
    counts: Mutex<CachedCounts>,
}

#[derive(Debug, Default)]
struct CachedCounts {
    generation: u64,
    totals: HashMap<String, u64>,
}

impl Freshness {
    pub fn current(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Called after every write commits (or fails: advancing needlessly only costs a miss).
    pub fn advance(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// A list's total for this exact query, if counted at `generation`.
    pub(crate) fn cached_count(&self, generation: u64, query: &str) -> Option<u64> {
        let counts = self.counts.lock().ok()?;
        if counts.generation != generation {
            return None;
        }
        counts.totals.get(query).copied()
    }

    pub(crate) fn keep_count(&self, generation: u64, query: String, total: u64) {
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        if generation < counts.generation {
            // Counted before a newer write was seen: already stale.
            return;
        }
        if generation > counts.generation || counts.totals.len() >= MAX_CACHED_COUNTS {
            counts.totals.clear();
            counts.generation = generation;
        }
        counts.totals.insert(query, total);
    }

    /// Polls `marker` every [`WATCH_INTERVAL`] and advances the generation whenever its value
    /// changes; stops when the store (the last strong reference) is dropped. A failing poll
    /// advances too, so that nothing is served from cache on a guess.
    pub(crate) fn watch(self: &Arc<Self>, mut marker: impl ChangeMarker) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let mut last: Option<String> = None;
            let mut ticks = tokio::time::interval(WATCH_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
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
    }
}

/// A value the database changes whenever anyone commits a write; `None` when it cannot be read.
pub(crate) trait ChangeMarker: Send + 'static {
    fn read(&mut self) -> impl Future<Output = Option<String>> + Send + '_;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_is_served_only_at_its_generation() {
        let freshness = Freshness::default();
        let g = freshness.current();
        freshness.keep_count(g, "q".into(), 7);
        assert_eq!(freshness.cached_count(g, "q"), Some(7));
        assert_eq!(freshness.cached_count(g, "other"), None);
        freshness.advance();
        assert_eq!(freshness.cached_count(freshness.current(), "q"), None);
    }

    #[test]
    fn a_count_taken_before_a_newer_write_is_not_kept() {
        let freshness = Freshness::default();
        let old = freshness.current();
        freshness.advance();
        let new = freshness.current();
        freshness.keep_count(new, "q".into(), 1);
        freshness.keep_count(old, "q".into(), 2);
        assert_eq!(freshness.cached_count(new, "q"), Some(1));
        assert_eq!(freshness.cached_count(old, "q"), None);
    }
}

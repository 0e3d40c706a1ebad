//! Values kept while what they show is unchanged (`standby_store::freshness`): the serialized
//! bodies of reads, and who a bearer token or API key stands for. An entry is served only while
//! the stamp of the topics it shows is the one it was computed at: a write by this process (a
//! revoked token, a disabled user, a changed plan) shows in the next request, a write by another
//! process as the store's change source reports it. A write of an unrelated table (a VM step, a
//! job's lease, an agent's heartbeat) leaves the plan list cached.
//!
//! The console's hot reads are many operators opening the same first pages; serving those from
//! memory costs two hash lookups instead of an authentication query, a count, a page query and
//! serialization.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use standby_store::freshness::Freshness;
use uuid::Uuid;

/// Values kept each with the stamp it was computed at, up to a total weight.
#[derive(Debug)]
pub struct GenerationCache<V> {
    max_weight: usize,
    kept: Mutex<Kept<V>>,
}

#[derive(Debug)]
struct Kept<V> {
    values: HashMap<String, Entry<V>>,
    weight: usize,
}

#[derive(Debug)]
struct Entry<V> {
    stamp: u64,
    value: V,
    weight: usize,
}

impl<V: Clone> GenerationCache<V> {
    /// A cache of at most `max_weight` (0: keeps nothing).
    pub fn new(max_weight: usize) -> Self {
        GenerationCache {
            max_weight,
            kept: Mutex::new(Kept {
                values: HashMap::new(),
                weight: 0,
            }),
        }
    }

    /// The value kept for `key` if it was computed at `stamp`.
    pub fn get(&self, stamp: u64, key: &str) -> Option<V> {
        let kept = self.kept.lock().ok()?;
        kept.values
            .get(key)
            .filter(|entry| entry.stamp == stamp)
            .map(|entry| entry.value.clone())
    }

    /// Keeps `value`, computed after `stamp` was read. When full, starts over: the hot keys come
    /// back at once, and the bound holds without tracking recency. A value computed at an older
    /// stamp than the one kept is not kept (stamps only grow).
    pub fn keep(&self, stamp: u64, key: String, value: V, weight: usize) {
        if weight > self.max_weight {
            return;
        }
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        if let Some(old) = kept.values.get(&key) {
            if old.stamp > stamp {
                return;
            }
            let old_weight = old.weight;
            kept.weight -= old_weight;
        }
        if kept.weight + weight > self.max_weight {
            kept.values.clear();
            kept.weight = 0;
        }
        kept.weight += weight;
        kept.values.insert(
            key,
            Entry {
                stamp,
                value,
                weight,
            },
        );
    }
}

/// A serialized read, and (for plans) the sessions whose log lines it shows, with the log mark
/// noted before it was read.
#[derive(Debug, Clone)]
pub struct CachedBody {
    pub body: Bytes,
    pub logs: Option<(u64, Arc<[Uuid]>)>,
}

impl CachedBody {
    /// Whether the log lines it shows are still all there are.
    fn logs_unchanged(&self, freshness: &Freshness) -> bool {
        self.logs
            .as_ref()
            .is_none_or(|(mark, sessions)| freshness.logs_unchanged_since(*mark, sessions))
    }
}

type Flight = Arc<tokio::sync::OnceCell<CachedBody>>;

/// Serialized bodies of successful reads, weighed in bytes; a read missing from it is computed
/// once however many requests ask for it at the same stamp.
#[derive(Debug)]
pub struct ResponseCache {
    bodies: GenerationCache<CachedBody>,
    flights: Mutex<HashMap<(String, u64), Flight>>,
}

impl ResponseCache {
    pub fn new(max_bytes: usize) -> Self {
        ResponseCache {
            bodies: GenerationCache::new(max_bytes),
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// The body kept for `key` at `stamp`, unless a session it shows logged a line since.
    pub fn get(&self, freshness: &Freshness, stamp: u64, key: &str) -> Option<Bytes> {
        self.bodies
            .get(stamp, key)
            .filter(|kept| kept.logs_unchanged(freshness))
            .map(|kept| kept.body)
    }

    /// Serves `key` at `stamp`: from the request computing it already, or computed by `read`
    /// (errors are never kept, and the next waiter computes it itself) and kept.
    pub async fn compute<E, F>(&self, stamp: u64, key: String, read: F) -> Result<Bytes, E>
    where
        F: Future<Output = Result<CachedBody, E>>,
    {
        let flight_key = (key, stamp);
        let flight: Flight = match self.flights.lock() {
            Ok(mut flights) => flights.entry(flight_key.clone()).or_default().clone(),
            Err(_) => Flight::default(),
        };
        let computed = flight.get_or_try_init(|| read).await.cloned();
        if let Ok(mut flights) = self.flights.lock()
            && flights
                .get(&flight_key)
                .is_some_and(|current| Arc::ptr_eq(current, &flight))
        {
            flights.remove(&flight_key);
        }
        let computed = computed?;
        let (key, stamp) = flight_key;
        let weight = computed.body.len();
        self.bodies.keep(stamp, key, computed.clone(), weight);
        Ok(computed.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn values_are_served_only_at_their_stamp() {
        let cache = GenerationCache::<u32>::new(10);
        cache.keep(1, "a".into(), 7, 1);
        assert_eq!(cache.get(1, "a"), Some(7));
        assert_eq!(cache.get(2, "a"), None);
        assert_eq!(cache.get(1, "b"), None);
        // Keys at different stamps live side by side (a plan list and a VM list).
        cache.keep(2, "b".into(), 8, 1);
        assert_eq!(cache.get(1, "a"), Some(7));
        assert_eq!(cache.get(2, "b"), Some(8));
        // Computed before stamp 3 was seen: never replaces it.
        cache.keep(3, "a".into(), 9, 1);
        cache.keep(1, "a".into(), 10, 1);
        assert_eq!(cache.get(3, "a"), Some(9));
    }

    #[test]
    fn the_weight_is_bounded() {
        let cache = GenerationCache::<u32>::new(3);
        cache.keep(1, "big".into(), 1, 4);
        assert_eq!(cache.get(1, "big"), None);
        cache.keep(1, "a".into(), 1, 2);
        cache.keep(1, "b".into(), 2, 2);
        assert_eq!(cache.get(1, "a"), None);
        assert_eq!(cache.get(1, "b"), Some(2));
        // Replacing a key replaces its weight.
        cache.keep(2, "b".into(), 3, 3);
        assert_eq!(cache.get(2, "b"), Some(3));
        let nothing = GenerationCache::<u32>::new(0);
        nothing.keep(1, "a".into(), 1, 1);
        assert_eq!(nothing.get(1, "a"), None);
    }

    #[tokio::test]
    async fn a_missing_read_is_computed_once_for_every_waiter() {
        let cache = ResponseCache::new(1 << 20);
        let freshness = Freshness::default();
        let reads = AtomicU32::new(0);
        let read = || async {
            reads.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok::<_, ()>(CachedBody {
                body: Bytes::from_static(b"page"),
                logs: None,
            })
        };
        let (a, b, c) = tokio::join!(
            cache.compute(5, "plans".into(), read()),
            cache.compute(5, "plans".into(), read()),
            cache.compute(5, "plans".into(), read()),
        );
        assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()).0, "page");
        assert_eq!(reads.load(Ordering::SeqCst), 1, "computed by every waiter");
        assert_eq!(
            cache.get(&freshness, 5, "plans").as_deref(),
            Some(&b"page"[..])
        );
        assert_eq!(cache.get(&freshness, 6, "plans"), None);
    }

    #[tokio::test]
    async fn a_page_is_dropped_when_a_session_it_shows_logs_a_line() {
        let cache = ResponseCache::new(1 << 20);
        let freshness = Freshness::default();
        let (shown, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mark = freshness.log_mark();
        let body = cache
            .compute(1, "plans".into(), async {
                Ok::<_, ()>(CachedBody {
                    body: Bytes::from_static(b"page"),
                    logs: Some((mark, Arc::from(vec![shown]))),
                })
            })
            .await
            .unwrap();
        assert_eq!(body, "page");
        freshness.log_changed(&[other]);
        assert!(
            cache.get(&freshness, 1, "plans").is_some(),
            "another run's log"
        );
        freshness.log_changed(&[shown]);
        assert!(
            cache.get(&freshness, 1, "plans").is_none(),
            "its own run's log"
        );
    }

    #[tokio::test]
    async fn errors_are_not_kept() {
        let cache = ResponseCache::new(1 << 20);
        let freshness = Freshness::default();
        let failed = cache
            .compute(1, "plans".into(), async { Err::<CachedBody, _>("down") })
            .await;
        assert_eq!(failed, Err("down"));
        assert!(cache.get(&freshness, 1, "plans").is_none());
    }
}

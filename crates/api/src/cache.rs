//! Values kept per data generation (`standby_store::freshness`): the serialized bodies of reads,
//! and who a bearer token or API key stands for. An entry is served only while the store's data
//! generation is the one it was computed at: a write by this process (a revoked token, a disabled
//! user, a changed plan) shows in the next request, a write by another process (an admin command
//! on the SQLite file, another PostgreSQL node) within the store's change-marker poll (200 ms).
//!
//! The console's hot reads are many operators opening the same first pages; serving those from
//! memory costs two hash lookups instead of an authentication query, a count, a page query and
//! serialization.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;

/// Values kept for one generation, up to a total weight; the first value of a newer generation
/// drops every older one (they can never be served again).
#[derive(Debug)]
pub struct GenerationCache<V> {
    max_weight: usize,
    kept: Mutex<Kept<V>>,
}

#[derive(Debug)]
struct Kept<V> {
    generation: u64,
    values: HashMap<String, V>,
    weight: usize,
}

impl<V: Clone> GenerationCache<V> {
    /// A cache of at most `max_weight` (0: keeps nothing).
    pub fn new(max_weight: usize) -> Self {
        GenerationCache {
            max_weight,
            kept: Mutex::new(Kept {
                generation: 0,
                values: HashMap::new(),
                weight: 0,
            }),
        }
    }

    pub fn get(&self, generation: u64, key: &str) -> Option<V> {
        let kept = self.kept.lock().ok()?;
        if kept.generation != generation {
            return None;
        }
        kept.values.get(key).cloned()
    }

    /// Keeps `value`, computed after `generation` was read. When full, starts over: the hot
    /// keys come back at once, and the bound holds without tracking recency.
    pub fn keep(&self, generation: u64, key: String, value: V, weight: usize) {
        if weight > self.max_weight {
            return;
        }
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        if generation < kept.generation {
            return;
        }
        if generation > kept.generation || kept.weight + weight > self.max_weight {
            kept.values.clear();
            kept.weight = 0;
            kept.generation = generation;
        }
        if kept.values.insert(key, value).is_none() {
            kept.weight += weight;
        }
    }
}

/// Serialized bodies of successful reads, weighed in bytes.
pub type ResponseCache = GenerationCache<Bytes>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_served_only_at_their_generation() {
        let cache = GenerationCache::<u32>::new(10);
        cache.keep(1, "a".into(), 7, 1);
        assert_eq!(cache.get(1, "a"), Some(7));
        assert_eq!(cache.get(2, "a"), None);
        assert_eq!(cache.get(1, "b"), None);
        // Computed before generation 2 was seen: never kept once 2 is.
        cache.keep(2, "b".into(), 8, 1);
        cache.keep(1, "a".into(), 9, 1);
        assert_eq!(cache.get(1, "a"), None);
        assert_eq!(cache.get(2, "b"), Some(8));
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
        let nothing = GenerationCache::<u32>::new(0);
        nothing.keep(1, "a".into(), 1, 1);
        assert_eq!(nothing.get(1, "a"), None);
    }
}

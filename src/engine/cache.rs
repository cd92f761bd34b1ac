//! A small read-through cache that can never keep a stale entry: every invalidation bumps a
//! generation, and an entry computed before the latest invalidation is not stored.
//!
//! Used for token entries (a SQLite read per request otherwise) and compiled ACLs. Invalidation runs
//! after the change has committed, so a reader that loaded the old value either stores it before the
//! invalidation (and it is cleared) or after (and it is refused).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;

/// Entries beyond this are dropped wholesale (bounded memory; a refill costs one read each).
const MAX_ENTRIES: usize = 50_000;

pub struct GenCache<K, V> {
    inner: RwLock<(u64, HashMap<K, V>)>,
}

impl<K: Eq + Hash, V: Clone> Default for GenCache<K, V> {
    fn default() -> Self {
        Self {
            inner: RwLock::new((0, HashMap::new())),
        }
    }
}

impl<K: Eq + Hash, V: Clone> GenCache<K, V> {
    pub fn get(&self, k: &K) -> Option<V> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .get(k)
            .cloned()
    }

    /// Take this before loading a value to store.
    pub fn generation(&self) -> u64 {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).0
    }

    /// Stores `v` only if nothing was invalidated since `generation`.
    pub fn insert_if(&self, generation: u64, k: K, v: V) {
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if g.0 != generation {
            return;
        }
        if g.1.len() >= MAX_ENTRIES {
            g.1.clear();
        }
        g.1.insert(k, v);
    }

    pub fn invalidate(&self) {
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        g.0 += 1;
        g.1.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_loaded_before_an_invalidation_is_not_kept() {
        let c: GenCache<u8, &str> = GenCache::default();
        let g = c.generation();
        c.invalidate();
        c.insert_if(g, 1, "stale");
        assert_eq!(c.get(&1), None);
        let g = c.generation();
        c.insert_if(g, 1, "fresh");
        assert_eq!(c.get(&1), Some("fresh"));
        c.invalidate();
        assert_eq!(c.get(&1), None);
    }
}

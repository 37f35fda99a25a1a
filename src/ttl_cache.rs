//! A small in-process cache of database records that are read on every token request but change
//! rarely (OAuth clients, registered WeChat apps). Entries live a few seconds; changes made
//! through this process invalidate them at once, changes made elsewhere (another instance, the
//! CLI) are seen when the entry expires.
//!
//! A fill races with an invalidation when the record was read before a change and stored after
//! it. Every invalidation therefore bumps a generation, and a fill is stored only if no
//! invalidation happened since its read began ([`TtlCache::generation`] before the read,
//! [`TtlCache::insert`] after it).

use std::collections::HashMap;
use std::sync::RwLock;

/// Past this many entries, expired ones are dropped before a new one is stored; the map only
/// holds records that exist in the database, so it stays small in practice.
const PRUNE_ABOVE: usize = 4096;

struct Entry<V> {
    value: V,
    stored_at: i64,
}

struct Inner<V> {
    entries: HashMap<String, Entry<V>>,
    generation: u64,
}

/// Values by key, each trusted for `ttl` seconds of the caller's clock.
pub struct TtlCache<V> {
    ttl: i64,
    inner: RwLock<Inner<V>>,
}

impl<V: Clone> TtlCache<V> {
    /// An empty cache whose entries live `ttl` seconds.
    pub fn new(ttl: i64) -> Self {
        Self {
            ttl,
            inner: RwLock::new(Inner {
                entries: HashMap::new(),
                generation: 0,
            }),
        }
    }

    fn fresh(&self, stored_at: i64, now: i64) -> bool {
        // A clock that went backwards does not extend an entry's life.
        (0..self.ttl).contains(&(now - stored_at))
    }

    /// The value stored for `key`, if it is still fresh at `now`.
    pub fn get(&self, key: &str, now: i64) -> Option<V> {
        let inner = self.inner.read().ok()?;
        inner
            .entries
            .get(key)
            .filter(|e| self.fresh(e.stored_at, now))
            .map(|e| e.value.clone())
    }

    /// Take this before reading the record that [`TtlCache::insert`] will store.
    pub fn generation(&self) -> u64 {
        self.inner.read().map(|i| i.generation).unwrap_or(u64::MAX)
    }

    /// Store `value` read at `now`, unless something was invalidated since `generation`.
    pub fn insert(&self, key: &str, value: V, now: i64, generation: u64) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= PRUNE_ABOVE {
            let ttl = self.ttl;
            inner
                .entries
                .retain(|_, e| (0..ttl).contains(&(now - e.stored_at)));
            if inner.entries.len() >= PRUNE_ABOVE {
                inner.entries.clear();
            }
        }
        inner.entries.insert(
            key.to_string(),
            Entry {
                value,
                stored_at: now,
            },
        );
    }

    /// Forget `key`, and refuse every fill whose read began before now.
    pub fn invalidate(&self, key: &str) {
        // A poisoned lock only means a panic elsewhere; the map itself is still consistent.
        let mut inner = match self.inner.write() {
            Ok(inner) => inner,
            Err(poisoned) => poisoned.into_inner(),
        };
        inner.generation = inner.generation.wrapping_add(1);
        inner.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = TtlCache::new(5);
        cache.insert("a", 1, 100, cache.generation());
        assert_eq!(cache.get("a", 100), Some(1));
        assert_eq!(cache.get("a", 104), Some(1));
        assert_eq!(cache.get("a", 105), None);
        assert_eq!(cache.get("a", 99), None, "a clock that went back");
    }

    #[test]
    fn invalidation_removes_the_entry_and_refuses_older_fills() {
        let cache = TtlCache::new(5);
        cache.insert("a", 1, 100, cache.generation());
        let before = cache.generation();
        cache.invalidate("a");
        assert_eq!(cache.get("a", 100), None);
        // A read that began before the invalidation must not bring the old record back.
        cache.insert("a", 1, 100, before);
        assert_eq!(cache.get("a", 100), None);
        cache.insert("a", 2, 100, cache.generation());
        assert_eq!(cache.get("a", 100), Some(2));
    }

    #[test]
    fn a_full_cache_drops_expired_entries() {
        let cache = TtlCache::new(5);
        for i in 0..PRUNE_ABOVE {
            cache.insert(&format!("old{i}"), i, 0, cache.generation());
        }
        cache.insert("new", 1, 100, cache.generation());
        assert_eq!(cache.get("new", 100), Some(1));
        assert_eq!(cache.get("old0", 0), None);
    }
}

//! A bounded least-recently-used cache of prepared statements, one per connection.
//!
//! One map from SQL text to (statement, last use). A hit only stamps its
//! entry with the next tick; the least recently used entry is found by a scan
//! when a miss meets a full cache, which is rare next to hits (and bounded
//! by the cache size, a few hundred at most).

use std::collections::HashMap;
use std::sync::Arc;

/// LRU map from SQL text to a prepared statement (generic for tests).
#[derive(Debug)]
pub(crate) struct StmtCache<V> {
    capacity: usize,
    /// foldhash, not SipHash: the key is the statement text the caller
    /// wrote, hashed on every call.
    map: HashMap<Arc<str>, (V, u64), foldhash::fast::RandomState>,
    tick: u64,
}

impl<V: Clone> StmtCache<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            map: HashMap::with_capacity_and_hasher(capacity.min(1024), Default::default()),
            tick: 0,
        }
    }

    /// The statement for `sql`, marked most recently used.
    pub(crate) fn get(&mut self, sql: &str) -> Option<V> {
        self.tick += 1;
        let (value, used) = self.map.get_mut(sql)?;
        *used = self.tick;
        Some(value.clone())
    }

    /// Adds `sql`; returns the entries evicted to make room.
    pub(crate) fn insert(&mut self, sql: &str, value: V) -> Vec<Arc<str>> {
        let mut evicted = Vec::new();
        if self.capacity == 0 {
            return evicted;
        }
        self.tick += 1;
        if let Some(entry) = self.map.get_mut(sql) {
            *entry = (value, self.tick);
            return evicted;
        }
        while self.map.len() >= self.capacity {
            let Some(oldest) = self.least_recent() else {
                break;
            };
            self.map.remove(&oldest);
            evicted.push(oldest);
        }
        self.map.insert(Arc::from(sql), (value, self.tick));
        evicted
    }

    fn least_recent(&self) -> Option<Arc<str>> {
        self.map
            .iter()
            .min_by_key(|(_, (_, used))| *used)
            .map(|(k, _)| Arc::clone(k))
    }

    /// Forgets `sql` (after DDL made its cached plan stale).
    pub(crate) fn remove(&mut self, sql: &str) {
        self.map.remove(sql);
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let mut c = StmtCache::new(2);
        assert!(c.insert("a", 1).is_empty());
        assert!(c.insert("b", 2).is_empty());
        assert_eq!(c.get("a"), Some(1)); // b is now the oldest
        assert_eq!(c.insert("c", 3).len(), 1);
        assert_eq!(c.get("b"), None);
        assert_eq!(c.get("a"), Some(1));
        assert_eq!(c.get("c"), Some(3));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn replace_remove_and_zero_capacity() {
        let mut c = StmtCache::new(2);
        c.insert("a", 1);
        assert!(c.insert("a", 10).is_empty());
        assert_eq!(c.get("a"), Some(10));
        assert_eq!(c.len(), 1);
        c.remove("a");
        assert_eq!(c.get("a"), None);
        let mut off = StmtCache::new(0);
        assert!(off.insert("a", 1).is_empty());
        assert_eq!(off.get("a"), None);
    }

    #[test]
    fn evicts_exactly_what_a_reference_lru_would() {
        // A reference LRU: a list, most recent last.
        let mut reference: Vec<String> = Vec::new();
        let mut c = StmtCache::new(8);
        for i in 0..400u32 {
            // Two hot statements among eleven cold ones: an LRU keeps the
            // hot ones, a FIFO would keep evicting them.
            let k = if i % 3 == 0 {
                format!("hot{}", i % 2)
            } else {
                format!("cold{}", (i * 7) % 11)
            };
            match c.get(&k) {
                Some(_) => {
                    assert!(
                        reference.contains(&k),
                        "{k} cached but evicted by the reference"
                    );
                    reference.retain(|r| *r != k);
                    reference.push(k);
                }
                None => {
                    assert!(
                        !reference.contains(&k),
                        "{k} missing but kept by the reference"
                    );
                    let evicted = c.insert(&k, i).len();
                    let want = usize::from(reference.len() == 8);
                    assert_eq!(evicted, want);
                    if want == 1 {
                        reference.remove(0);
                    }
                    reference.push(k);
                }
            }
            assert_eq!(c.len(), reference.len());
        }
    }
}

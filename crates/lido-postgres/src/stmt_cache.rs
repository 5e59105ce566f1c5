//! A bounded least-recently-used cache of prepared statements, one per connection.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// LRU map from SQL text to a prepared statement (generic for tests).
#[derive(Debug)]
pub(crate) struct StmtCache<V> {
    capacity: usize,
    map: HashMap<Arc<str>, (V, u64)>,
    order: BTreeMap<u64, Arc<str>>,
    tick: u64,
}

impl<V: Clone> StmtCache<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            map: HashMap::with_capacity(capacity.min(1024)),
            order: BTreeMap::new(),
            tick: 0,
        }
    }

    /// The statement for `sql`, marked most recently used.
    pub(crate) fn get(&mut self, sql: &str) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        let (value, used) = self.map.get_mut(sql)?;
        if let Some(key) = self.order.remove(used) {
            self.order.insert(tick, key);
        }
        *used = tick;
        Some(value.clone())
    }

    /// Adds `sql`; returns how many entries were evicted to make room.
    pub(crate) fn insert(&mut self, sql: &str, value: V) -> usize {
        if self.capacity == 0 {
            return 0;
        }
        self.remove(sql);
        let mut evicted = 0;
        while self.map.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&oldest);
            evicted += 1;
        }
        self.tick += 1;
        let key: Arc<str> = Arc::from(sql);
        self.order.insert(self.tick, Arc::clone(&key));
        self.map.insert(key, (value, self.tick));
        evicted
    }

    /// Forgets `sql` (after DDL made its cached plan stale).
    pub(crate) fn remove(&mut self, sql: &str) {
        if let Some((_, used)) = self.map.remove(sql) {
            self.order.remove(&used);
        }
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
        assert_eq!(c.insert("a", 1), 0);
        assert_eq!(c.insert("b", 2), 0);
        assert_eq!(c.get("a"), Some(1)); // b is now the oldest
        assert_eq!(c.insert("c", 3), 1);
        assert_eq!(c.get("b"), None);
        assert_eq!(c.get("a"), Some(1));
        assert_eq!(c.get("c"), Some(3));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn replace_remove_and_zero_capacity() {
        let mut c = StmtCache::new(2);
        c.insert("a", 1);
        assert_eq!(c.insert("a", 10), 0);
        assert_eq!(c.get("a"), Some(10));
        assert_eq!(c.len(), 1);
        c.remove("a");
        assert_eq!(c.get("a"), None);
        let mut off = StmtCache::new(0);
        assert_eq!(off.insert("a", 1), 0);
        assert_eq!(off.get("a"), None);
    }

    #[test]
    fn order_and_map_stay_in_step() {
        let mut c = StmtCache::new(8);
        for i in 0..100 {
            let k = format!("q{}", i % 13);
            if c.get(&k).is_none() {
                c.insert(&k, i);
            }
            assert_eq!(c.map.len(), c.order.len());
            assert!(c.len() <= 8);
        }
    }
}

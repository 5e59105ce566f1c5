//! The idle sweeper: evicts tenants unused for `idle_after` (pool closed,
//! entry dropped) and drops pools that have no connection left (the entry
//! stays, small; a pool also goes the moment its last connection closes,
//! see `Entry::emptied`). Runs every `idle_after / 4`, between 10 ms and 5 s.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::tenants::entry::{empty, unleased, Entry};
use crate::tenants::set::{Inner, PgTenants};
use crate::tenants::settings::TenantKey;

/// Starts the sweeper; it stops when the set is dropped.
pub(crate) fn spawn<K: TenantKey>(inner: &Arc<Inner<K>>, runtime: &tokio::runtime::Handle) {
    let weak = Arc::downgrade(inner);
    let every =
        (inner.settings.idle_after / 4).clamp(Duration::from_millis(10), Duration::from_secs(5));
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(inner) = weak.upgrade() else { return };
            inner.sweep();
        }
    });
}

impl<K: TenantKey> PgTenants<K> {
    /// Runs the idle sweep now (it also runs on its own every
    /// `idle_after / 4`, between 10 ms and 5 s): evicts tenants unused for
    /// `idle_after` and drops pools left without connections. Returns the
    /// tenants evicted.
    pub fn sweep(&self) -> usize {
        self.inner.sweep()
    }
}

impl<K: TenantKey> Inner<K> {
    /// One sweep; returns the tenants evicted.
    pub(crate) fn sweep(&self) -> usize {
        let now = self.now_ms();
        let idle_ms = u64::try_from(self.settings.idle_after.as_millis()).unwrap_or(u64::MAX);
        let entries: Vec<Arc<Entry<K>>> = self.map.read().values().cloned().collect();
        let mut evicted = 0;
        for e in entries {
            // A lease held, or a caller inside get(), counts as use.
            let in_use =
                e.users.load(Ordering::Acquire) > 0 || e.pool().is_some_and(|p| !unleased(&p));
            if in_use {
                e.touch(now);
            } else if e.idle_ms(now) >= idle_ms {
                evicted += usize::from(self.evict(&e));
            } else {
                drop(e.drop_pool_if(|p| e.users.load(Ordering::Acquire) == 0 && empty(p)));
            }
        }
        evicted
    }

    /// Removes `e` from the map if nobody entered it meanwhile, and closes
    /// its pool's idle connections.
    fn evict(&self, e: &Arc<Entry<K>>) -> bool {
        {
            let mut map = self.map.write();
            if e.users.load(Ordering::Acquire) != 0 {
                return false;
            }
            match map.get(&e.key) {
                Some(x) if Arc::ptr_eq(x, e) => drop(map.remove(&e.key)),
                _ => return false,
            }
        }
        self.evicted.fetch_add(1, Ordering::Relaxed);
        if let Some(pool) = e.drop_pool_if(|_| true) {
            pool.core().retain(|_, _| false);
        }
        tracing::debug!(tenant = %e.key, "lido-postgres: idle tenant evicted");
        true
    }
}

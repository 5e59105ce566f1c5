//! One tenant: its gate account, its pool (built on first use, dropped
//! while it has no connection), and its counters. Without a pool an entry
//! is a few hundred bytes (see the `tenants` benchmark).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use crate::conn::pgconn::GatePermit;
use crate::error::PgError;
use crate::manager::ConnectGate;
use crate::pool::{PgPool, PgPooled, PoolError};
use crate::tenants::cap::Gate;
use crate::tenants::error::cap_error;
use crate::tenants::settings::TenantLimits;
use crate::tenants::slot::{Reclaim, Slot};
use futures::future::BoxFuture;

/// Longest last error kept per tenant (characters).
const LAST_ERROR_CHARS: usize = 240;

pub(crate) struct Entry<K> {
    pub(crate) key: K,
    pub(crate) slot: Arc<Slot>,
    pub(crate) max: usize,
    pool: Mutex<Option<PgPool>>,
    /// Callers inside `get()` for this tenant.
    pub(crate) users: AtomicUsize,
    /// Milliseconds since the set's epoch at the last `get()`.
    last_used: AtomicU64,
    pub(crate) gets: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) wait_nanos: AtomicU64,
    last_error: Mutex<Option<Box<str>>>,
    /// The last `get()` failed.
    failing: AtomicBool,
}

impl<K: Send + Sync + 'static> Entry<K> {
    pub(crate) fn new(key: K, limits: TenantLimits, now_ms: u64) -> Arc<Self> {
        Arc::new_cyclic(|me: &Weak<Entry<K>>| {
            let owner: Weak<dyn Reclaim> = me.clone();
            Entry {
                key,
                slot: Arc::new(Slot::new(limits.weight, limits.min, owner)),
                max: limits.max,
                pool: Mutex::new(None),
                users: AtomicUsize::new(0),
                last_used: AtomicU64::new(now_ms),
                gets: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                wait_nanos: AtomicU64::new(0),
                last_error: Mutex::new(None),
                failing: AtomicBool::new(false),
            }
        })
    }
}

impl<K> Entry<K> {
    pub(crate) fn touch(&self, now_ms: u64) {
        self.last_used.fetch_max(now_ms, Ordering::Relaxed);
    }

    pub(crate) fn idle_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.last_used.load(Ordering::Relaxed))
    }

    /// The pool, if built.
    pub(crate) fn pool(&self) -> Option<PgPool> {
        self.pool.lock().clone()
    }

    /// The pool, built by `build` under the entry's lock if there is none
    /// (concurrent first uses build one).
    pub(crate) fn pool_or<E>(
        &self,
        build: impl FnOnce() -> Result<PgPool, E>,
    ) -> Result<PgPool, E> {
        let mut slot = self.pool.lock();
        if let Some(p) = &*slot {
            return Ok(p.clone());
        }
        let p = build()?;
        *slot = Some(p.clone());
        Ok(p)
    }

    /// Drops the pool if `unused` says so (checked under the entry's lock).
    pub(crate) fn drop_pool_if(&self, unused: impl FnOnce(&PgPool) -> bool) -> Option<PgPool> {
        let mut slot = self.pool.lock();
        match &*slot {
            Some(p) if unused(p) => slot.take(),
            _ => None,
        }
    }

    pub(crate) fn record(&self, waited: Duration, result: &Result<PgPooled, PoolError>) {
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.wait_nanos.fetch_add(nanos, Ordering::Relaxed);
        match result {
            Ok(_) => {
                self.gets.fetch_add(1, Ordering::Relaxed);
                self.failing.store(false, Ordering::Relaxed);
            }
            Err(e) => {
                self.failing.store(true, Ordering::Relaxed);
                self.errors.fetch_add(1, Ordering::Relaxed);
                let text: String = e.to_string().chars().take(LAST_ERROR_CHARS).collect();
                *self.last_error.lock() = Some(text.into_boxed_str());
            }
        }
    }

    pub(crate) fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error.lock().as_deref().map(str::to_owned)
    }
}

/// Nothing leased, waiting or connecting.
pub(crate) fn unleased(pool: &PgPool) -> bool {
    let s = pool.status();
    s.in_use == 0 && s.waiters == 0 && s.connecting == 0
}

/// No connection at all, and nobody waiting.
pub(crate) fn empty(pool: &PgPool) -> bool {
    unleased(pool) && pool.status().size == 0
}

impl<K: Send + Sync> Reclaim for Entry<K> {
    /// Drops the pool (some 80 KiB) unless someone is inside `get()`: a
    /// tenant without connections keeps only its entry.
    fn emptied(&self) {
        let unused = |p: &PgPool| self.users.load(Ordering::Acquire) == 0 && empty(p);
        drop(self.drop_pool_if(unused));
    }

    fn close_idle(&self) -> bool {
        let Some(pool) = self.pool() else {
            return false;
        };
        // `retain` lends every idle connection out while it sorts them:
        // not for nothing.
        if pool.status().idle == 0 || self.slot.shed.load(Ordering::Acquire) == 0 {
            return false;
        }
        let mut closed = false;
        pool.core().retain(|_, _| {
            if !closed && self.slot.take_shed() {
                closed = true;
                return false;
            }
            true
        });
        closed
    }
}

/// What a tenant pool's manager calls: the gate with this tenant's account.
pub(crate) struct TenantGate {
    pub(crate) gate: Arc<Gate>,
    pub(crate) slot: Arc<Slot>,
    pub(crate) wait: Duration,
}

impl ConnectGate for TenantGate {
    fn admit(&self) -> BoxFuture<'_, Result<Box<dyn GatePermit>, PgError>> {
        Box::pin(async move {
            match self.gate.acquire(&self.slot, self.wait).await {
                Ok(p) => Ok(Box::new(p) as Box<dyn GatePermit>),
                Err(t) => Err(cap_error(t.cap, t.waited)),
            }
        })
    }
}

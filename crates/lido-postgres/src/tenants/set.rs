//! [`PgTenants`]: the tenant map, `get()`, and building a tenant's pool.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use crate::error::PgBuildError;
use crate::pool::{PgPool, PgPooled, PoolError};
use crate::tenants::cap::Gate;
use crate::tenants::entry::{Entry, TenantGate};
use crate::tenants::error::{is_cap_error, TenantsError};
use crate::tenants::settings::{Settings, TenantKey};

/// Tenant pools under one global cap (see the [module docs](crate::tenants)).
/// Cheap to clone: clones share the tenants.
pub struct PgTenants<K: TenantKey> {
    pub(crate) inner: Arc<Inner<K>>,
}

impl<K: TenantKey> Clone for PgTenants<K> {
    fn clone(&self) -> Self {
        PgTenants {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K: TenantKey> Debug for PgTenants<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (held, waiting) = self.inner.gate.load();
        f.debug_struct("PgTenants")
            .field("cap", &self.inner.gate.cap())
            .field("held", &held)
            .field("waiting", &waiting)
            .field("tenants", &self.len())
            .finish_non_exhaustive()
    }
}

type Map<K> = HashMap<K, Arc<Entry<K>>, foldhash::fast::RandomState>;

pub(crate) struct Inner<K> {
    pub(crate) map: RwLock<Map<K>>,
    pub(crate) gate: Arc<Gate>,
    pub(crate) settings: Settings<K>,
    epoch: Instant,
    pub(crate) evicted: AtomicU64,
    pub(crate) pools_built: AtomicU64,
}

/// A caller inside `get()`: counted in the entry's `users` (the sweeper
/// leaves such a tenant alone).
struct User<K>(Arc<Entry<K>>);

impl<K> Drop for User<K> {
    fn drop(&mut self) {
        self.0.users.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<K: TenantKey> PgTenants<K> {
    pub(crate) fn start(settings: Settings<K>) -> Self {
        let inner = Arc::new(Inner {
            map: RwLock::new(Map::default()),
            gate: Gate::new(settings.cap, settings.min_hold),
            settings,
            epoch: Instant::now(),
            evicted: AtomicU64::new(0),
            pools_built: AtomicU64::new(0),
        });
        PgTenants { inner }
    }

    /// Leases a connection of `tenant`'s pool, building the pool on first
    /// use. Waits up to the pool's `acquire_timeout`; when the global cap
    /// kept it waiting that long, fails with [`TenantsError::CapReached`].
    pub async fn get(&self, tenant: &K) -> Result<PgPooled, TenantsError> {
        let user = self.inner.enter(tenant);
        let pool = self.inner.pool_for(&user.0)?;
        let mark = user.0.slot.queue_mark();
        let started = Instant::now();
        let result = pool.get().await;
        let waited = started.elapsed();
        user.0.touch(self.inner.now_ms());
        user.0.record(waited, &result);
        result.map_err(|e| {
            // Timed out while a connect of this tenant waited at the cap
            // (still waiting, or it left the queue meanwhile).
            let at_gate = e.is_timeout() && user.0.slot.queued_since(mark);
            self.inner.pool_error(&user.0, e, waited, at_gate)
        })
    }

    /// `tenant`'s pool, built if needed (for calls such as
    /// [`PgPool::transaction_with_retry`]). Its connects go through the
    /// global cap; hold it only for the call: a tenant evicted meanwhile
    /// gets a new pool, and connections of the old one are not reclaimed
    /// while idle.
    pub fn pool(&self, tenant: &K) -> Result<PgPool, TenantsError> {
        let user = self.inner.enter(tenant);
        self.inner.pool_for(&user.0)
    }

    /// Makes `tenant` known without building its pool (its limits are
    /// resolved now); it is evicted like any other after `idle_after`.
    pub fn register(&self, tenant: &K) {
        drop(self.inner.enter(tenant));
    }

    /// Tenants alive (with or without a pool).
    pub fn len(&self) -> usize {
        self.inner.map.read().len()
    }

    /// Whether no tenant is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The global cap.
    pub fn cap(&self) -> usize {
        self.inner.gate.cap()
    }

    /// Server connections held now (open or opening), across tenants.
    pub fn held(&self) -> usize {
        self.inner.gate.load().0
    }

    /// Closes every tenant's pool (waiting up to `deadline` each for leases
    /// to come back) and drops every tenant.
    pub async fn close(&self, deadline: Duration) {
        let entries: Vec<_> = self.inner.map.write().drain().map(|(_, e)| e).collect();
        for e in entries {
            if let Some(p) = e.drop_pool_if(|_| true) {
                p.close(deadline).await;
            }
        }
    }
}

impl<K: TenantKey> Inner<K> {
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The tenant's entry (created if new), counted as used.
    fn enter(&self, key: &K) -> User<K> {
        let now = self.now_ms();
        let found = self.map.read().get(key).map(|e| {
            e.users.fetch_add(1, Ordering::AcqRel);
            Arc::clone(e)
        });
        let entry = match found {
            Some(e) => e,
            None => {
                let mut map = self.map.write();
                let e = map.entry(key.clone()).or_insert_with(|| {
                    let limits = (self.settings.limits)(key).sane();
                    Entry::new(key.clone(), limits, now)
                });
                e.users.fetch_add(1, Ordering::AcqRel);
                Arc::clone(e)
            }
        };
        entry.touch(now);
        User(entry)
    }

    fn pool_for(&self, e: &Arc<Entry<K>>) -> Result<PgPool, TenantsError> {
        e.pool_or(|| self.build_pool(e))
            .map_err(|source| TenantsError::Build {
                tenant: e.key.to_string(),
                source,
            })
    }

    fn build_pool(&self, e: &Arc<Entry<K>>) -> Result<PgPool, PgBuildError> {
        let template = self.settings.template.clone();
        let mut b = (self.settings.configure)(&e.key, template).max_size(e.max);
        let core = b.core_config_mut();
        core.min_idle = core.min_idle.min(e.max);
        core.core_size = core.core_size.map(|c| c.min(e.max));
        let wait = core.acquire_timeout;
        core.connect_timeout = core.connect_timeout.saturating_add(wait);
        let gate = TenantGate {
            gate: Arc::clone(&self.gate),
            slot: Arc::clone(&e.slot),
            wait,
        };
        let pool = b.gate(Arc::new(gate)).build_lazy()?;
        self.pools_built.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(tenant = %e.key, "lido-postgres: tenant pool built");
        Ok(pool)
    }

    fn pool_error(
        &self,
        e: &Entry<K>,
        err: PoolError,
        waited: Duration,
        at_gate: bool,
    ) -> TenantsError {
        if at_gate || err.backend().is_some_and(is_cap_error) {
            return TenantsError::CapReached {
                tenant: e.key.to_string(),
                cap: self.gate.cap(),
                waited,
            };
        }
        TenantsError::Pool {
            tenant: e.key.to_string(),
            source: err,
        }
    }
}

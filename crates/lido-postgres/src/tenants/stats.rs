//! [`TenantsSnapshot`]: the set's totals and per-tenant figures, with
//! bounded cardinality (the top N tenants by use, the rest as `other`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::tenants::entry::Entry;
use crate::tenants::set::{Inner, PgTenants};
use crate::tenants::settings::TenantKey;

/// One tenant's figures (or, for [`TenantsSnapshot::other`], the sum over
/// the tenants not in the top N).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantStats {
    /// The tenant's key as `Display` shows it; `other` for the rest.
    pub tenant: String,
    /// Tenants summed here (1 for a named tenant).
    pub tenants: usize,
    /// Server connections held (open or opening) under the cap.
    pub held: usize,
    /// Connections leased now.
    pub in_use: usize,
    /// Idle connections.
    pub idle: usize,
    /// Connects waiting at the global cap.
    pub waiting: usize,
    /// Callers inside `get()`.
    pub callers: usize,
    /// Successful `get()` calls.
    pub gets: u64,
    /// Failed `get()` calls.
    pub errors: u64,
    /// Time spent in `get()`, summed.
    pub acquire_wait: Duration,
    /// Since the last `get()` (the least of them for `other`).
    pub idle_for: Duration,
    /// Whether the last `get()` succeeded (for `other`: every tenant's did).
    pub healthy: bool,
    /// The last `get()` error, cut to 240 characters (none for `other`).
    pub last_error: Option<String>,
    /// Connections guaranteed when the cap is reached.
    pub min: usize,
    /// The tenant pool's `max_size`.
    pub max: usize,
    /// Share weight.
    pub weight: u32,
}

/// The tenant set at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantsSnapshot {
    /// The global cap.
    pub cap: usize,
    /// Server connections held across tenants (never above `cap`).
    pub held: usize,
    /// Connects waiting at the cap.
    pub waiting: usize,
    /// Tenants alive.
    pub tenants: usize,
    /// Tenants with a pool built now.
    pub pools: usize,
    /// Tenants evicted after `idle_after`.
    pub evicted: u64,
    /// Tenant pools built (first use, or again after an eviction or after
    /// the pool emptied).
    pub pools_built: u64,
    /// Connects that had to wait at the cap.
    pub cap_waits: u64,
    /// Time connects waited at the cap, summed.
    pub cap_wait: Duration,
    /// Connects that got no permit in time.
    pub cap_timeouts: u64,
    /// Connections closed to hand their permit to another tenant.
    pub reclaimed: u64,
    /// The top N tenants by successful `get()` calls, most first.
    pub top: Vec<TenantStats>,
    /// The other tenants, summed.
    pub other: TenantStats,
}

impl<K: TenantKey> PgTenants<K> {
    /// The totals and the top N tenants (see [`TenantsSnapshot`]).
    pub fn snapshot(&self) -> TenantsSnapshot {
        self.inner.snapshot()
    }
}

impl<K: TenantKey> Inner<K> {
    fn snapshot(&self) -> TenantsSnapshot {
        let now = self.now_ms();
        let mut entries: Vec<Arc<Entry<K>>> = self.map.read().values().cloned().collect();
        let n = self.settings.top_n.min(entries.len());
        let by_use = |a: &Arc<Entry<K>>, b: &Arc<Entry<K>>| {
            let (ga, gb) = (
                a.gets.load(Ordering::Relaxed),
                b.gets.load(Ordering::Relaxed),
            );
            gb.cmp(&ga)
        };
        if n > 0 && n < entries.len() {
            entries.select_nth_unstable_by(n - 1, by_use);
        }
        let (top, rest) = entries.split_at_mut(n);
        top.sort_by(by_use);
        let mut pools = 0;
        let mut stat = |e: &Entry<K>| {
            let s = tenant_stats(e, now);
            pools += usize::from(e.pool().is_some());
            s
        };
        let top: Vec<TenantStats> = top.iter().map(|e| stat(e)).collect();
        let mut other = TenantStats {
            tenant: "other".into(),
            healthy: true,
            idle_for: Duration::MAX,
            ..TenantStats::default()
        };
        for e in rest.iter() {
            add(&mut other, &stat(e));
        }
        if other.tenants == 0 {
            other.idle_for = Duration::ZERO;
        }
        let (held, waiting) = self.gate.load();
        let c = &self.gate.counters;
        TenantsSnapshot {
            cap: self.gate.cap(),
            held,
            waiting,
            tenants: entries.len(),
            pools,
            evicted: self.evicted.load(Ordering::Relaxed),
            pools_built: self.pools_built.load(Ordering::Relaxed),
            cap_waits: c.waited.load(Ordering::Relaxed),
            cap_wait: Duration::from_nanos(c.wait_nanos.load(Ordering::Relaxed)),
            cap_timeouts: c.timeouts.load(Ordering::Relaxed),
            reclaimed: c.reclaims.load(Ordering::Relaxed),
            top,
            other,
        }
    }
}

fn tenant_stats<K: TenantKey>(e: &Entry<K>, now_ms: u64) -> TenantStats {
    let status = e.pool().map(|p| p.status());
    let last_error = e.last_error();
    TenantStats {
        tenant: e.key.to_string(),
        tenants: 1,
        held: e.slot.held(),
        in_use: status.as_ref().map_or(0, |s| s.in_use),
        idle: status.as_ref().map_or(0, |s| s.idle),
        waiting: e.slot.waiting(),
        callers: e.users.load(Ordering::Relaxed),
        gets: e.gets.load(Ordering::Relaxed),
        errors: e.errors.load(Ordering::Relaxed),
        acquire_wait: Duration::from_nanos(e.wait_nanos.load(Ordering::Relaxed)),
        idle_for: Duration::from_millis(e.idle_ms(now_ms)),
        healthy: !e.failing(),
        last_error,
        min: e.slot.min,
        max: e.max,
        weight: e.slot.weight,
    }
}

fn add(sum: &mut TenantStats, s: &TenantStats) {
    sum.tenants += 1;
    sum.held += s.held;
    sum.in_use += s.in_use;
    sum.idle += s.idle;
    sum.waiting += s.waiting;
    sum.callers += s.callers;
    sum.gets += s.gets;
    sum.errors += s.errors;
    sum.acquire_wait += s.acquire_wait;
    sum.idle_for = sum.idle_for.min(s.idle_for);
    sum.healthy &= s.healthy;
    sum.min += s.min;
    sum.max += s.max;
    sum.weight = sum.weight.saturating_add(s.weight);
}

//! lido-http integration (feature `http`): [`TenantsMetrics`] exports a
//! tenant set's totals and its top N tenants (the rest as `other`), so the
//! series stay bounded however many tenants there are.
//!
//! ```no_run
//! # fn f(tenants: lido_postgres::tenants::PgTenants<String>) -> Result<(), Box<dyn std::error::Error>> {
//! use lido_postgres::tenants::TenantsMetrics;
//! let metrics = lido_http::Metrics::builder()
//!     .extension(TenantsMetrics::new(&tenants))
//!     .build()?;
//! assert!(metrics.encode()?.contains("lido_tenants_cap"));
//! # Ok(()) }
//! ```

use lido_http::{MetricSink, MetricsExtension};

use crate::tenants::set::PgTenants;
use crate::tenants::settings::TenantKey;

/// Metric family names [`TenantsMetrics`] writes (counters get `_total`).
pub mod names {
    /// Gauge: the global cap.
    pub const CAP: &str = "lido_tenants_cap";
    /// Gauge: server connections held across tenants.
    pub const HELD: &str = "lido_tenants_connections";
    /// Gauge: connects waiting at the cap.
    pub const WAITING: &str = "lido_tenants_waiting";
    /// Gauge: tenants alive.
    pub const ALIVE: &str = "lido_tenants_alive";
    /// Counter, `event`: evicted, pools_built, cap_waits, cap_timeouts, reclaimed.
    pub const EVENTS: &str = "lido_tenants_events";
    /// Gauge, `tenant` (top N, then `other`): connections held.
    pub const TENANT_HELD: &str = "lido_tenant_connections";
    /// Gauge, `tenant`: connects waiting at the cap.
    pub const TENANT_WAITING: &str = "lido_tenant_waiting";
    /// Gauge, `tenant`: successful `get()` calls (a gauge: tenants move
    /// between the top N and `other`).
    pub const TENANT_GETS: &str = "lido_tenant_gets";
    /// Gauge, `tenant`: failed `get()` calls.
    pub const TENANT_ERRORS: &str = "lido_tenant_errors";
    /// Gauge, `tenant`: 1 while the last `get()` succeeded.
    pub const TENANT_HEALTHY: &str = "lido_tenant_healthy";
}

/// A tenant set's metrics, read at scrape time.
#[derive(Debug, Clone)]
pub struct TenantsMetrics<K: TenantKey> {
    tenants: PgTenants<K>,
}

impl<K: TenantKey> TenantsMetrics<K> {
    /// The metrics of `tenants`.
    pub fn new(tenants: &PgTenants<K>) -> Self {
        TenantsMetrics {
            tenants: tenants.clone(),
        }
    }
}

impl<K: TenantKey> MetricsExtension for TenantsMetrics<K> {
    fn collect(&self, sink: &mut MetricSink<'_>) {
        let s = self.tenants.snapshot();
        sink.gauge(
            names::CAP,
            "The global cap on server connections.",
            &[],
            s.cap as f64,
        );
        sink.gauge(
            names::HELD,
            "Server connections held across tenants.",
            &[],
            s.held as f64,
        );
        sink.gauge(
            names::WAITING,
            "Connects waiting at the global cap.",
            &[],
            s.waiting as f64,
        );
        sink.gauge(names::ALIVE, "Tenants alive.", &[], s.tenants as f64);
        let help = "Tenant set events (evicted, pools_built, cap_waits, cap_timeouts, reclaimed).";
        for (event, n) in [
            ("evicted", s.evicted),
            ("pools_built", s.pools_built),
            ("cap_waits", s.cap_waits),
            ("cap_timeouts", s.cap_timeouts),
            ("reclaimed", s.reclaimed),
        ] {
            sink.counter(names::EVENTS, help, &[("event", event)], n);
        }
        for t in s.top.iter().chain(std::iter::once(&s.other)) {
            let l = [("tenant", t.tenant.as_str())];
            sink.gauge(
                names::TENANT_HELD,
                "Server connections a tenant holds.",
                &l,
                t.held as f64,
            );
            sink.gauge(
                names::TENANT_WAITING,
                "A tenant's connects waiting at the cap.",
                &l,
                t.waiting as f64,
            );
            sink.gauge(
                names::TENANT_GETS,
                "A tenant's successful get() calls.",
                &l,
                t.gets as f64,
            );
            sink.gauge(
                names::TENANT_ERRORS,
                "A tenant's failed get() calls.",
                &l,
                t.errors as f64,
            );
            let up = if t.healthy { 1.0 } else { 0.0 };
            sink.gauge(
                names::TENANT_HEALTHY,
                "1 while a tenant's last get() succeeded.",
                &l,
                up,
            );
        }
    }
}

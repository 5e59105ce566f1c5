//! [`PgTenantsBuilder`]: the template, the tenants' overrides and limits,
//! the global cap, idle eviction and the metrics' top N.

use std::sync::Arc;
use std::time::Duration;

use crate::config::pgconfig::PgConfig;
use crate::pool::PgPool;
use crate::tenants::error::TenantsError;
use crate::tenants::evict;
use crate::tenants::set::PgTenants;
use crate::tenants::settings::{Settings, TenantKey, TenantLimits};

/// The default [`PgTenantsBuilder::idle_after`].
pub const DEFAULT_IDLE_AFTER: Duration = Duration::from_secs(60);

/// The default [`PgTenantsBuilder::min_hold`].
pub const DEFAULT_MIN_HOLD: Duration = Duration::from_millis(100);

/// The default [`PgTenantsBuilder::top_n`].
pub const DEFAULT_TOP_N: usize = 10;

/// Configures a [`PgTenants`]; start with [`PgTenants::builder`].
pub struct PgTenantsBuilder<K> {
    settings: Settings<K>,
}

impl<K> std::fmt::Debug for PgTenantsBuilder<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.settings;
        f.debug_struct("PgTenantsBuilder")
            .field("template", &s.template)
            .field("cap", &s.cap)
            .field("idle_after", &s.idle_after)
            .field("top_n", &s.top_n)
            .finish_non_exhaustive()
    }
}

impl<K: TenantKey> PgTenantsBuilder<K> {
    pub(crate) fn new(template: PgConfig) -> Self {
        let default = TenantLimits::default();
        PgTenantsBuilder {
            settings: Settings {
                template,
                cap: 90,
                configure: Arc::new(|_, c| PgPool::builder(c)),
                limits: Arc::new(move |_| default),
                idle_after: DEFAULT_IDLE_AFTER,
                min_hold: DEFAULT_MIN_HOLD,
                top_n: DEFAULT_TOP_N,
            },
        }
    }

    /// Most server connections open at once across every tenant (default
    /// 90: below PostgreSQL's default `max_connections` of 100, leaving
    /// room for superuser and maintenance sessions). Never exceeded.
    pub fn global_cap(mut self, n: usize) -> Self {
        self.settings.cap = n;
        self
    }

    /// The same limits for every tenant (default: min 0, max 10, weight 1).
    pub fn limits(mut self, limits: TenantLimits) -> Self {
        self.settings.limits = Arc::new(move |_| limits);
        self
    }

    /// Limits per tenant, asked once when a tenant is first used (and again
    /// after it was evicted).
    pub fn limits_for<F>(mut self, f: F) -> Self
    where
        F: Fn(&K) -> TenantLimits + Send + Sync + 'static,
    {
        self.settings.limits = Arc::new(f);
        self
    }

    /// A tenant's pool from the template: change what makes the tenant
    /// (`dbname`, `user` and `password`, or a `search_path` with
    /// [`PgPoolBuilder::search_path`](crate::PgPoolBuilder::search_path)) and return `PgPool::builder(config)`
    /// with any pool settings. lido then sets `max_size` to the tenant's
    /// [`TenantLimits::max`] and routes every connect through the global
    /// cap; a connect waits for a share at most the pool's
    /// `acquire_timeout` (added to its `connect_timeout`). Default:
    /// `PgPool::builder(config)` as it is.
    pub fn configure<F>(mut self, f: F) -> Self
    where
        F: Fn(&K, PgConfig) -> crate::builder::PgPoolBuilder + Send + Sync + 'static,
    {
        self.settings.configure = Arc::new(f);
        self
    }

    /// A tenant unused this long (no `get()`, nothing leased) has its pool
    /// closed and its entry dropped (default 60 s). A tenant's pool is also
    /// dropped, entry kept, whenever it has no connection left.
    pub fn idle_after(mut self, d: Duration) -> Self {
        self.settings.idle_after = d;
        self
    }

    /// While tenants take turns at the cap, a busy connection is asked back
    /// from its tenant only once this long (default 100 ms) has passed
    /// since its first lease: each connect buys some work, not one call. Idle connections are taken back at once whatever their age.
    pub fn min_hold(mut self, d: Duration) -> Self {
        self.settings.min_hold = d;
        self
    }

    /// Tenants named in [`TenantsSnapshot::top`](crate::tenants::TenantsSnapshot::top)
    /// and in metrics, by use; the rest are summed as `other` (default 10).
    pub fn top_n(mut self, n: usize) -> Self {
        self.settings.top_n = n;
        self
    }

    /// Builds the set and starts its idle sweeper; no connection is opened.
    /// Needs a Tokio runtime.
    pub fn build(self) -> Result<PgTenants<K>, TenantsError> {
        let s = &self.settings;
        if s.cap == 0 {
            return Err(TenantsError::Settings(
                "global_cap must be at least 1".into(),
            ));
        }
        if s.idle_after.is_zero() {
            return Err(TenantsError::Settings(
                "idle_after must be above zero".into(),
            ));
        }
        s.template
            .validate()
            .map_err(|e| TenantsError::Settings(format!("template: {e}")))?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| TenantsError::NoRuntime)?;
        let tenants = PgTenants::start(self.settings);
        evict::spawn(&tenants.inner, &runtime);
        Ok(tenants)
    }
}

impl<K: TenantKey> PgTenants<K> {
    /// Starts configuring a tenant set from a template configuration.
    pub fn builder(template: PgConfig) -> PgTenantsBuilder<K> {
        PgTenantsBuilder::new(template)
    }
}

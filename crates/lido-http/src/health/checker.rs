//! [`HealthChecker`]: runs every check of every registered pool, plus the
//! custom ones, concurrently; and the one-shot [`health`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::backend::{run_backend, BackendCheck, CheckContext};
use super::checks::{self, Snapshot};
use super::config::HealthConfig;
use super::custom::{run_custom, HealthCheck};
use super::report::{Check, HealthReport};
use super::window::{Counters, Delta, Sample, Window};
use crate::source::{NamedPool, PingFailure, PingFailureKind, PoolSource};

/// The `componentId` [`health`] gives its pool.
pub const DEFAULT_POOL_NAME: &str = "default";

/// Checks a single pool once and reports, the backend's checks included.
/// Error rates and timeouts count since the pool started (a
/// [`HealthChecker`] or [`HealthMonitor`](crate::HealthMonitor) keeps sliding
/// windows instead). [`HealthExt`](crate::HealthExt) offers it as
/// `pool.health().await`.
///
/// ```
/// use lido_core::{Manager, Pool};
/// use lido_http::{health, HealthConfig, Status};
/// # struct Nop;
/// # impl Manager for Nop {
/// #     type Connection = ();
/// #     type Error = std::io::Error;
/// #     async fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
/// #     async fn check(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Pool::builder(Nop).max_size(4).build().await?;
/// let report = health(&pool, &HealthConfig::default()).await;
/// assert_eq!(report.status, Status::Pass, "{}", report.summary());
/// # Ok(()) }
/// ```
pub async fn health<P: PoolSource>(pool: &P, cfg: &HealthConfig) -> HealthReport {
    let started = Instant::now();
    let backend = pool.backend_checks();
    let checks = check_pool(DEFAULT_POOL_NAME, pool, &backend, cfg, None).await;
    HealthReport::new(checks, started.elapsed(), cfg.service.clone())
}

/// Pings `pool` under the health check's own timeout; also returns how long it ran.
async fn ping(pool: &dyn PoolSource, limit: Duration) -> (Result<Duration, PingFailure>, Duration) {
    let started = Instant::now();
    let r = match tokio::time::timeout(limit, pool.ping()).await {
        Ok(r) => r,
        Err(_) => Err(PingFailure::new(
            PingFailureKind::HealthTimeout,
            format!("no answer within {limit:?} (ping_timeout)"),
        )),
    };
    (r, started.elapsed())
}

/// Every built-in and backend check of one pool, run concurrently; `window`
/// keeps the baseline between rounds.
async fn check_pool(
    name: &str,
    pool: &dyn PoolSource,
    backend: &[Arc<dyn BackendCheck>],
    cfg: &HealthConfig,
    window: Option<&Mutex<Window>>,
) -> Vec<Check> {
    let snap = Snapshot::take(pool);
    let current = Sample {
        core: Counters::read(pool.stats()),
        backend: backend.iter().map(|c| c.counters()).collect(),
    };
    let delta = match window {
        Some(w) => w.lock().advance(Instant::now(), current),
        None => Delta::since_start(current),
    };
    let extra = backend.iter().zip(&delta.backend).map(|(c, grown)| {
        let ctx = CheckContext {
            config: cfg,
            grown,
            covers: delta.covers,
        };
        run_backend(&**c, ctx, name)
    });
    let ((rtt, waited), extra) = futures::join!(ping(pool, cfg.ping_timeout), join_all(extra));
    if let Err(e) = &rtt {
        tracing::debug!(pool = name, error = %e, "lido: health ping failed");
    }
    let ping_obs = checks::response_time(cfg, rtt, waited, pool.status());
    let mut out = checks::pool_checks(name, pool, cfg, &snap, &delta, ping_obs);
    out.extend(extra);
    out
}

/// Runs the checks of several named pools and custom checks, keeping a
/// sliding window per pool between rounds.
///
/// ```
/// use lido_core::{Manager, Pool};
/// use lido_http::{FnCheck, HealthChecker, Observation, Status};
/// # struct Nop;
/// # impl Manager for Nop {
/// #     type Connection = ();
/// #     type Error = std::io::Error;
/// #     async fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
/// #     async fn check(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let primary = Pool::builder(Nop).build().await?;
/// let replica = Pool::builder(Nop).build().await?;
/// let checker = HealthChecker::default()
///     .pool("primary", primary)
///     .pool("replica", replica)
///     .check(FnCheck::new("queue:depth", || async {
///         Ok::<_, std::io::Error>(Observation::pass().value(3, "jobs"))
///     }));
/// let report = checker.run().await;
/// assert_eq!(report.status, Status::Pass);
/// assert_eq!(report.checks_for("database:responseTime").count(), 2);
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct HealthChecker {
    cfg: HealthConfig,
    pools: Vec<NamedPool>,
    custom: Vec<Arc<dyn HealthCheck>>,
    /// One per pool, in registration order.
    windows: Vec<Mutex<Window>>,
}

impl HealthChecker {
    /// A checker with `cfg` and nothing registered.
    pub fn new(cfg: HealthConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    /// Registers a pool under `name` (its `componentId` and `pool` label).
    pub fn pool(self, name: impl Into<Arc<str>>, pool: impl PoolSource) -> Self {
        self.named(NamedPool::new(name, pool))
    }

    /// Registers an already named pool (with its checks and metric extensions).
    /// Names should be unique: a [`HealthMonitor`](crate::HealthMonitor)
    /// refuses two pools under one name.
    pub fn named(mut self, pool: NamedPool) -> Self {
        if self.has_pool(pool.name()) {
            tracing::warn!(
                pool = pool.name(),
                "lido: two pools registered under one name; their checks share a componentId"
            );
        }
        self.windows.push(Mutex::new(Window::new(self.cfg.window)));
        self.pools.push(pool);
        self
    }

    /// Whether a pool is registered under `name`.
    pub fn has_pool(&self, name: &str) -> bool {
        self.pools.iter().any(|p| p.name() == name)
    }

    /// The first name two registered pools share, if any.
    pub fn duplicate_name(&self) -> Option<&str> {
        crate::source::duplicate_name(&self.pools)
    }

    /// Adds a custom check.
    pub fn check(mut self, check: impl HealthCheck) -> Self {
        self.custom.push(Arc::new(check));
        self
    }

    /// Replaces the configuration (windows restart).
    pub fn config(mut self, cfg: HealthConfig) -> Self {
        for w in &mut self.windows {
            *w = Mutex::new(Window::new(cfg.window));
        }
        self.cfg = cfg;
        self
    }

    /// The configuration.
    pub fn health_config(&self) -> &HealthConfig {
        &self.cfg
    }

    /// The registered pools.
    pub fn pools(&self) -> &[NamedPool] {
        &self.pools
    }

    /// The longest any check of a round may take.
    pub fn longest_timeout(&self) -> Duration {
        let cfg = &self.cfg;
        let custom = self
            .custom
            .iter()
            .map(|c| c.timeout().unwrap_or(cfg.check_timeout));
        let backend = self
            .pools
            .iter()
            .flat_map(|p| p.checks().iter().map(|c| c.timeout(cfg)));
        custom.chain(backend).fold(cfg.ping_timeout, Duration::max)
    }

    /// Runs one round: every pool's checks and the custom checks, concurrently.
    pub async fn run(&self) -> HealthReport {
        let started = Instant::now();
        let pools = self.pools.iter().zip(&self.windows).map(|(p, window)| {
            check_pool(p.name(), p.source(), p.checks(), &self.cfg, Some(window))
        });
        let custom = self
            .custom
            .iter()
            .map(|c| run_custom(&**c, self.cfg.check_timeout));
        let (pools, custom) = futures::join!(join_all(pools), join_all(custom));
        let mut checks: Vec<Check> = pools.into_iter().flatten().collect();
        checks.extend(custom);
        HealthReport::new(checks, started.elapsed(), self.cfg.service.clone())
    }
}

impl fmt::Debug for HealthChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthChecker")
            .field("cfg", &self.cfg)
            .field("pools", &self.pools)
            .field(
                "custom",
                &self.custom.iter().map(|c| c.key()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

//! [`HealthChecker`]: runs every check of every registered pool, plus the
//! custom ones, concurrently; and the one-shot [`health`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::checks::{self, Snapshot};
use super::config::HealthConfig;
use super::custom::{run_custom, HealthCheck};
use super::report::{Check, HealthReport, Observation};
use super::window::{Counters, Delta, Window};
use crate::source::{NamedPool, PingFailure, PingFailureKind, PoolSource};

/// The `componentId` [`health`] gives its pool.
pub const DEFAULT_POOL_NAME: &str = "default";

/// Checks a single pool once and reports. Error rates and timeouts count
/// since the pool started (a [`HealthChecker`] or [`HealthMonitor`](crate::HealthMonitor)
/// keeps sliding windows instead).
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
    let checks = check_pool(DEFAULT_POOL_NAME, pool, cfg, None).await;
    HealthReport::new(checks, started.elapsed(), cfg.service.clone())
}

/// Pings `pool` under the health check's own timeout.
async fn ping(pool: &dyn PoolSource, limit: Duration) -> Result<Duration, PingFailure> {
    match tokio::time::timeout(limit, pool.ping()).await {
        Ok(r) => r,
        Err(_) => Err(PingFailure::new(
            PingFailureKind::HealthTimeout,
            format!("no answer within {limit:?} (ping_timeout)"),
        )),
    }
}

/// Every built-in check of one pool; `window` keeps the baseline between rounds.
async fn check_pool(
    name: &str,
    pool: &dyn PoolSource,
    cfg: &HealthConfig,
    window: Option<&Mutex<Window>>,
) -> Vec<Check> {
    let snap = Snapshot::take(pool);
    let current = Counters::read(pool.stats());
    let delta = match window {
        Some(w) => w.lock().advance(Instant::now(), current),
        None => Delta {
            counts: current,
            covers: None,
        },
    };
    let rtt = ping(pool, cfg.ping_timeout).await;
    if let Err(e) = &rtt {
        tracing::debug!(pool = name, error = %e, "lido: health ping failed");
    }
    let ping_obs: Observation = checks::response_time(cfg, rtt, pool.status());
    checks::pool_checks(name, pool, cfg, &snap, &delta, ping_obs)
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
    windows: HashMap<Arc<str>, Mutex<Window>>,
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

    /// Registers an already named pool (with its metric extensions).
    pub fn named(mut self, pool: NamedPool) -> Self {
        let name: Arc<str> = Arc::from(pool.name());
        if self.windows.contains_key(&name) {
            tracing::warn!(pool = %name, "lido: two pools registered under one name; their checks share a componentId");
        }
        self.windows
            .insert(name, Mutex::new(Window::new(self.cfg.window)));
        self.pools.push(pool);
        self
    }

    /// Adds a custom check.
    pub fn check(mut self, check: impl HealthCheck) -> Self {
        self.custom.push(Arc::new(check));
        self
    }

    /// Replaces the configuration (windows restart).
    pub fn config(mut self, cfg: HealthConfig) -> Self {
        for w in self.windows.values_mut() {
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
        let custom = self
            .custom
            .iter()
            .map(|c| c.timeout().unwrap_or(self.cfg.check_timeout));
        custom.fold(self.cfg.ping_timeout, Duration::max)
    }

    /// Runs one round: every pool's checks and the custom checks, concurrently.
    pub async fn run(&self) -> HealthReport {
        let started = Instant::now();
        let pools = self.pools.iter().map(|p| {
            let window = self.windows.get(p.name());
            check_pool(p.name(), p.source(), &self.cfg, window)
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

//! Checks a backend adds to its pool's built-in ones ([`BackendCheck`]):
//! PostgreSQL's query error rate, SQLite's writer lane. They run with the
//! pool's checks in every round, each under its own timeout, and may judge
//! counters of their own over the health window.

use std::time::Duration;

use super::config::{HealthConfig, Threshold};
use super::custom::bounded;
use super::judge::{rate, window_text};
use super::report::{Check, Observation};
use crate::future::BoxFuture;

/// A check that comes with a pool: a backend returns its checks from
/// [`PoolSource::backend_checks`](crate::PoolSource::backend_checks), and
/// every [`NamedPool`](crate::NamedPool) of that pool runs them with the
/// built-in ones (the `componentId` is the pool's name).
///
/// A check that judges a rate returns its cumulative counters from
/// [`counters`](Self::counters); the checker keeps them in the pool's
/// sliding window and hands [`check`](Self::check) their growth over it.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use lido_http::{error_rate, BackendCheck, BoxFuture, CheckContext, Observation};
///
/// /// Failed jobs as a share of jobs run.
/// struct JobErrors { run: AtomicU64, failed: AtomicU64 }
///
/// impl BackendCheck for JobErrors {
///     fn key(&self) -> &str { "jobs:errorRate" }
///     fn counters(&self) -> Vec<u64> {
///         vec![self.run.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed)]
///     }
///     fn check<'a>(&'a self, ctx: CheckContext<'a>) -> BoxFuture<'a, Observation> {
///         let (run, failed) = (ctx.counter(0), ctx.counter(1));
///         let cfg = ctx.config;
///         Box::pin(async move {
///             error_rate(cfg.query_error_percent, cfg.min_samples, failed, run, "jobs", &ctx)
///         })
///     }
/// }
/// ```
pub trait BackendCheck: Send + Sync + 'static {
    /// The `checks` key, `component:measurement`.
    fn key(&self) -> &str;

    /// `componentType`: `datastore` (the default), `component` or `system`.
    fn component_type(&self) -> &str {
        "datastore"
    }

    /// Longest the check may take (default [`HealthConfig::check_timeout`]).
    fn timeout(&self, cfg: &HealthConfig) -> Duration {
        cfg.check_timeout
    }

    /// Cumulative counters judged over the window (none by default).
    fn counters(&self) -> Vec<u64> {
        Vec::new()
    }

    /// Runs the check.
    fn check<'a>(&'a self, ctx: CheckContext<'a>) -> BoxFuture<'a, Observation>;
}

/// What a [`BackendCheck`] is given: the configuration and how much its
/// [`counters`](BackendCheck::counters) grew over the health window.
#[derive(Debug, Clone, Copy)]
pub struct CheckContext<'a> {
    /// Thresholds and timeouts.
    pub config: &'a HealthConfig,
    /// Growth of each counter, in the order `counters()` returned them.
    pub grown: &'a [u64],
    /// How long the growth covers; `None` when it counts since the pool
    /// started (the one-shot [`health`](crate::health()), or a first round).
    pub covers: Option<Duration>,
}

impl CheckContext<'_> {
    /// Growth of counter `i` (0 when the check returned fewer).
    pub fn counter(&self, i: usize) -> u64 {
        self.grown.get(i).copied().unwrap_or(0)
    }

    /// "in the last 60 s", or "since the pool started".
    pub fn window_text(&self) -> String {
        window_text(self.covers)
    }
}

/// A windowed error rate judged against `threshold` in percent: passes
/// (with the rate shown) while fewer than `min_samples` attempts ran.
///
/// ```
/// use lido_http::{error_rate, CheckContext, HealthConfig, Status, Threshold};
/// let cfg = HealthConfig::default();
/// let ctx = CheckContext { config: &cfg, grown: &[], covers: Some(std::time::Duration::from_secs(60)) };
/// let t = Threshold::new(Some(5.0), Some(50.0));
/// let o = error_rate(t, 10, 3, 20, "statements", &ctx);
/// assert_eq!(o.status, Status::Warn);
/// assert_eq!(o.output, "3 of 20 statements failed in the last 60 s (>= 5)");
/// assert_eq!(error_rate(t, 10, 3, 5, "statements", &ctx).status, Status::Pass);
/// ```
pub fn error_rate(
    threshold: Threshold,
    min_samples: u64,
    failed: u64,
    total: u64,
    what: &str,
    ctx: &CheckContext<'_>,
) -> Observation {
    rate(threshold, min_samples, failed, total, what, ctx.covers)
}

/// Runs `check` under its timeout; a panic or a timeout fails it.
pub(crate) async fn run_backend(
    check: &dyn BackendCheck,
    ctx: CheckContext<'_>,
    component_id: &str,
) -> Check {
    let obs = bounded(check.check(ctx), check.timeout(ctx.config)).await;
    obs.into_check(check.key(), Some(component_id), check.component_type())
}

//! [`HealthMonitor`]: a background loop that runs the checks every interval
//! and keeps the last report, so probes are answered from memory.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_core::BreakerState;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::checker::HealthChecker;
use super::checks::{self, keys, Snapshot};
use super::config::{HealthConfig, Limits, Threshold};
use super::custom::HealthCheck;
use super::judge::ms;
use super::report::{Check, HealthReport, Observation, Probe};
use super::status::Status;
use crate::source::{NamedPool, PoolSource};

/// Why a monitor could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorError {
    /// `spawn` was called outside a tokio runtime.
    #[error(
        "HealthMonitor::spawn needs a tokio runtime: call it inside #[tokio::main] or a Runtime"
    )]
    NoRuntime,
    /// The interval was zero.
    #[error("the health check interval must be greater than zero")]
    ZeroInterval,
    /// Two pools were registered under one name (their metric series and
    /// health checks would collide).
    #[error("two pools are registered under the name {name:?}: give each pool its own name")]
    DuplicatePool {
        /// The shared name.
        name: String,
    },
}

struct Shared {
    checker: HealthChecker,
    interval: Duration,
    started: Instant,
    /// Milliseconds after `started` of the loop's last beat.
    beat_ms: AtomicU64,
    last: watch::Sender<Option<Arc<HealthReport>>>,
}

impl Shared {
    fn beat(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.beat_ms.store(ms, Ordering::Relaxed);
    }

    fn loop_age(&self) -> Duration {
        let beat = Duration::from_millis(self.beat_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(beat)
    }

    /// How long the loop may stay silent before liveness fails.
    fn loop_limit(&self) -> Duration {
        let n = self.checker.health_config().liveness_intervals.max(1);
        self.interval * n + self.checker.longest_timeout()
    }

    async fn round(&self) -> Arc<HealthReport> {
        self.beat();
        let report = Arc::new(self.checker.run().await);
        self.beat();
        let before = self.last.borrow().as_ref().map(|r| r.status);
        log_change(before, &report);
        self.last.send_replace(Some(Arc::clone(&report)));
        report
    }
}

fn log_change(before: Option<Status>, report: &HealthReport) {
    if before == Some(report.status) {
        return;
    }
    let summary = report.summary();
    match report.status {
        Status::Pass => tracing::info!(status = %report.status, "lido: health pass"),
        Status::Warn => tracing::warn!(status = %report.status, %summary, "lido: health degraded"),
        Status::Fail => tracing::error!(status = %report.status, %summary, "lido: health failing"),
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the health checks on a background task every `interval` and answers
/// `/health`, liveness and readiness from the last report: a probe storm adds
/// no database load. Cheap to clone; the task stops when the last clone drops.
///
/// ```
/// use std::time::Duration;
/// use lido_core::{Manager, Pool};
/// use lido_http::{HealthMonitor, Status};
/// # struct Nop;
/// # impl Manager for Nop {
/// #     type Connection = ();
/// #     type Error = std::io::Error;
/// #     async fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
/// #     async fn check(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Pool::builder(Nop).build().await?;
/// let monitor = HealthMonitor::builder()
///     .pool("primary", pool.clone())
///     .interval(Duration::from_secs(5))
///     .spawn()?;
/// let report = monitor.refresh().await;
/// assert_eq!(report.status, Status::Pass);
/// assert_eq!(monitor.readiness().status, Status::Pass);
/// assert_eq!(monitor.liveness().status, Status::Pass);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HealthMonitor {
    shared: Arc<Shared>,
    _task: Arc<AbortOnDrop>,
}

/// Configures a [`HealthMonitor`].
#[derive(Debug, Default)]
pub struct HealthMonitorBuilder {
    checker: HealthChecker,
    interval: Option<Duration>,
}

impl HealthMonitorBuilder {
    /// Registers a pool under `name`.
    pub fn pool(mut self, name: impl Into<Arc<str>>, pool: impl PoolSource) -> Self {
        self.checker = self.checker.pool(name, pool);
        self
    }

    /// Registers an already named pool (with its metric extensions).
    pub fn named(mut self, pool: NamedPool) -> Self {
        self.checker = self.checker.named(pool);
        self
    }

    /// Adds a custom check.
    pub fn check(mut self, check: impl HealthCheck) -> Self {
        self.checker = self.checker.check(check);
        self
    }

    /// Sets thresholds and timeouts.
    pub fn config(mut self, cfg: HealthConfig) -> Self {
        self.checker = self.checker.config(cfg);
        self
    }

    /// How often the checks run (default 5 s).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// Starts the loop; its first round runs at once.
    pub fn spawn(self) -> Result<HealthMonitor, MonitorError> {
        HealthMonitor::spawn(
            self.checker,
            self.interval.unwrap_or(Duration::from_secs(5)),
        )
    }
}

impl HealthMonitor {
    /// Starts configuring a monitor.
    pub fn builder() -> HealthMonitorBuilder {
        HealthMonitorBuilder::default()
    }

    /// Runs `checker` every `interval` on a background task (first round at once).
    pub fn spawn(checker: HealthChecker, interval: Duration) -> Result<Self, MonitorError> {
        if interval.is_zero() {
            return Err(MonitorError::ZeroInterval);
        }
        if let Some(name) = checker.duplicate_name() {
            return Err(MonitorError::DuplicatePool {
                name: name.to_owned(),
            });
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| MonitorError::NoRuntime)?;
        let shared = Arc::new(Shared {
            checker,
            interval,
            started: Instant::now(),
            beat_ms: AtomicU64::new(0),
            last: watch::Sender::new(None),
        });
        let task = runtime.spawn(run_loop(Arc::clone(&shared)));
        Ok(Self {
            shared,
            _task: Arc::new(AbortOnDrop(task)),
        })
    }

    /// The last report (`None` until the first round finished).
    pub fn report(&self) -> Option<Arc<HealthReport>> {
        self.shared.last.borrow().clone()
    }

    /// Waits for the next report (each change is seen once).
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<HealthReport>>> {
        self.shared.last.subscribe()
    }

    /// Runs a round now (outside the schedule) and stores its report.
    pub async fn refresh(&self) -> Arc<HealthReport> {
        self.shared.round().await
    }

    /// The registered pools.
    pub fn pools(&self) -> &[NamedPool] {
        self.shared.checker.pools()
    }

    /// The health configuration.
    pub fn config(&self) -> &HealthConfig {
        self.shared.checker.health_config()
    }

    /// The interval between rounds.
    pub fn interval(&self) -> Duration {
        self.shared.interval
    }

    /// Time since the loop last started or finished a round.
    pub fn loop_age(&self) -> Duration {
        self.shared.loop_age()
    }

    /// Liveness: the pools' own machinery and this loop are alive. Never
    /// fails because a database is down (so Kubernetes does not restart a
    /// process that only waits for its database).
    pub fn liveness(&self) -> Probe {
        let cfg = self.config();
        let mut out: Vec<Check> = self
            .pools()
            .iter()
            .map(|p| {
                let snap = Snapshot::take_cheap(p.source());
                let limit = checks::maintenance_limit(cfg, p.source());
                checks::maintenance(limit, &snap, Status::Fail).into_check(
                    keys::MAINTENANCE,
                    Some(p.name()),
                    "system",
                )
            })
            .collect();
        out.push(self.loop_check());
        Probe::new(out)
    }

    fn loop_check(&self) -> Check {
        let (age, limit) = (self.loop_age(), self.shared.loop_limit());
        let (v, max) = (ms(age), ms(limit));
        let t = Threshold::new(None, Some(max));
        let why = if t.judge(v) == Status::Pass {
            format!("health loop ran {v} ms ago (limit {max} ms)")
        } else {
            format!("health loop silent for {v} ms (limit {max} ms): wedged or stopped")
        };
        Observation::judged(v, "ms", t, why).into_check(keys::HEALTH_LOOP, None, "system")
    }

    /// Readiness: this instance can serve now. Fails while any pool is
    /// closed, its breaker is open or its backend says the database cannot
    /// serve ([`PoolSource::unavailable`]: read live, not from the last
    /// report, so a server that stopped answering shows within the
    /// backend's detection time), before the first report, when the last
    /// report is stale, or when it failed.
    pub fn readiness(&self) -> Probe {
        let mut out: Vec<Check> = self.pools().iter().map(pool_ready).collect();
        out.push(self.report_ready());
        Probe::new(out)
    }

    fn report_ready(&self) -> Check {
        let (age, limit) = (self.loop_age(), self.shared.loop_limit());
        let stale = Threshold::new(None, Some(ms(limit)));
        let o = match self.report() {
            None => Observation::fail("no health report yet"),
            Some(_) if age >= limit => Observation::fail(format!(
                "the last health report is stale ({} ms old, limit {} ms): the health loop stopped",
                ms(age),
                ms(limit)
            )),
            Some(r) if r.status == Status::Fail => Observation::fail(r.summary()),
            Some(r) if r.status == Status::Warn => {
                Observation::pass().output(format!("serving, degraded: {}", r.summary()))
            }
            Some(_) => Observation::pass().output("last health report passed"),
        };
        o.value(ms(age), "ms")
            .threshold(stale)
            .into_check("health:report", None, "system")
    }
}

fn pool_ready(p: &NamedPool) -> Check {
    let src = p.source();
    let state = src.breaker_state();
    let o = if src.is_closed() {
        Observation::fail("pool closed")
    } else if let Some(why) = src.unavailable() {
        Observation::fail(why)
    } else if state == BreakerState::Open {
        Observation::fail("circuit breaker open: the database keeps refusing connects")
    } else {
        Observation::pass().output(format!("pool open, circuit breaker {state}"))
    };
    o.value(state.as_str(), "state")
        .threshold(Limits::states(None, Some(BreakerState::Open.as_str())))
        .into_check("pool:ready", Some(p.name()), "component")
}

async fn run_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        shared.round().await;
    }
}

impl fmt::Debug for HealthMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthMonitor")
            .field("interval", &self.shared.interval)
            .field("checker", &self.shared.checker)
            .field("status", &self.report().map(|r| r.status))
            .finish()
    }
}

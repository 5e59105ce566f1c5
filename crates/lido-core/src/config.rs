//! Pool settings ([`Config`]) and their validation into [`BuildError`].

use std::time::Duration;

use crate::adaptive::AdaptiveConfig;
use crate::error::BuildError;
use crate::lanes::LaneLimits;

/// Which idle connection a caller gets when several are free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum ReuseOrder {
    /// Most recently returned first: keeps a small hot set busy and lets the
    /// rest reach `idle_timeout` (the default).
    #[default]
    Lifo,
    /// Least recently returned first: spreads use evenly over all connections.
    Fifo,
}

/// Connect retry: capped, full-jitter exponential backoff.
///
/// Attempt `n` (from 1) that fails with a transient error sleeps a random
/// duration in `[0, min(cap, base * 2^(n-1))]` before the next attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct RetryConfig {
    /// First backoff ceiling.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub base: Duration,
    /// Largest backoff ceiling.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub cap: Duration,
    /// Attempts per connect before the failure is reported (1 = no retry).
    pub max_attempts: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(25),
            cap: Duration::from_secs(2),
            max_attempts: 4,
        }
    }
}

/// Circuit breaker around connecting.
///
/// Closed → open after `consecutive_failures` failed connects in a row, or when
/// at least `min_calls` connects in the last `window` failed at a rate of
/// `failure_rate` or more. While open, `get()` fails at once unless an idle
/// connection is available. After `open_for` (less a random part of up to a
/// quarter, so pools do not probe in step) the next connect wanted — a
/// caller's `get()`, or maintenance topping up `min_idle` — turns it
/// half-open and `half_open_trials` connects go through; one success closes
/// it, a failure opens it again. The default period is short (30 ms): while
/// the database is down the pool probes it a few dozen times a second in
/// all, not once per caller, and serves again within about one period of it
/// coming back.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct BreakerConfig {
    /// Set to `false` to never open.
    pub enabled: bool,
    /// Consecutive connect failures that open the breaker.
    pub consecutive_failures: u32,
    /// Failure ratio (0.0–1.0] over `window` that opens the breaker.
    pub failure_rate: f64,
    /// Fewest connects in `window` before `failure_rate` applies.
    pub min_calls: u32,
    /// Sliding window for `failure_rate`.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub window: Duration,
    /// How long the breaker stays open before a trial connect (jittered down
    /// by up to a quarter; default 30 ms).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub open_for: Duration,
    /// Trial connects allowed at once while half-open.
    pub half_open_trials: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            consecutive_failures: 5,
            failure_rate: 0.5,
            min_calls: 20,
            window: Duration::from_secs(10),
            open_for: Duration::from_millis(30),
            half_open_trials: 1,
        }
    }
}

/// Every pool setting, with production defaults. Validate with [`Config::validate`]
/// or let [`PoolBuilder`](crate::PoolBuilder) do it.
///
/// ```
/// use std::time::Duration;
/// let cfg = lido_core::Config {
///     max_size: 16,
///     min_idle: 2,
///     acquire_timeout: Duration::from_secs(5),
///     ..Default::default()
/// };
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct Config {
    /// Most connections open at once (idle + in use + being created).
    pub max_size: usize,
    /// Idle connections kept ready; the maintenance task tops the pool up to it.
    pub min_idle: usize,
    /// Connections above this count are closed on return when nobody waits
    /// (SQLAlchemy's `pool_size` with `max_overflow = max_size - core_size`).
    /// `None` keeps every connection up to `max_size`.
    pub core_size: Option<usize>,
    /// Longest a `get()` waits, connecting and validating included. Never infinite.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub acquire_timeout: Duration,
    /// Longest one connect attempt may take.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub connect_timeout: Duration,
    /// Connections older than this are closed (on return or by maintenance).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max_lifetime: Option<Duration>,
    /// Fraction (0.0–0.5) of `max_lifetime` subtracted at random per
    /// connection, so connections opened together do not expire together.
    pub lifetime_jitter: f64,
    /// Idle connections above `min_idle` are closed after this long unused.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub idle_timeout: Option<Duration>,
    /// Connections idle longer than this are validated with `check` on checkout.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub validation_bypass: Duration,
    /// Idle connections unused for this long are pinged by the maintenance
    /// task, so firewalls and servers do not drop them silently.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub keepalive: Option<Duration>,
    /// Longest a `check` or `reset` may take before the connection is discarded.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub check_timeout: Duration,
    /// How often the maintenance task runs.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub maintenance_interval: Duration,
    /// Leases held longer than this are reported once as possible leaks, with
    /// the call site of the `get()` that took them (`None`: no leak detection).
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub leak_threshold: Option<Duration>,
    /// Also capture a backtrace at every checkout for leak reports (costly; off by default).
    pub leak_backtrace: bool,
    /// Leases held longer than this are closed instead of reused when they come back.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub max_lease: Option<Duration>,
    /// Which idle connection is handed out first.
    pub reuse_order: ReuseOrder,
    /// Record the acquire-wait, hold-time and connect-time histograms (on by
    /// default; the counters are always kept). Off only to measure what they cost.
    pub statistics: bool,
    /// Connect retry policy.
    pub retry: RetryConfig,
    /// Circuit breaker policy.
    pub breaker: BreakerConfig,
    /// Capacity per priority lane (off by default).
    pub lanes: LaneLimits,
    /// Adaptive sizing: keep the pool's target size between `min` and `max`
    /// from its own signals (off by default; needs `statistics`).
    pub adaptive: Option<AdaptiveConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_size: 10,
            min_idle: 0,
            core_size: None,
            acquire_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            lifetime_jitter: 0.1,
            idle_timeout: Some(Duration::from_secs(10 * 60)),
            validation_bypass: Duration::from_millis(500),
            keepalive: None,
            check_timeout: Duration::from_secs(5),
            maintenance_interval: Duration::from_secs(1),
            leak_threshold: Some(Duration::from_secs(30)),
            leak_backtrace: false,
            max_lease: None,
            reuse_order: ReuseOrder::Lifo,
            statistics: true,
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
            lanes: LaneLimits::default(),
            adaptive: None,
        }
    }
}

fn positive(field: &'static str, d: Duration) -> Result<(), BuildError> {
    if d.is_zero() {
        return Err(BuildError::ZeroDuration { field });
    }
    Ok(())
}

impl Config {
    /// Checks every setting and says which one is wrong and how to fix it.
    pub fn validate(&self) -> Result<(), BuildError> {
        if self.max_size == 0 {
            return Err(BuildError::ZeroMaxSize);
        }
        if self.min_idle > self.max_size {
            return Err(BuildError::MinIdleAboveMax {
                min_idle: self.min_idle,
                max_size: self.max_size,
            });
        }
        if let Some(core) = self.core_size {
            if core == 0 || core > self.max_size || core < self.min_idle {
                return Err(BuildError::CoreSize {
                    core_size: core,
                    min_idle: self.min_idle,
                    max_size: self.max_size,
                });
            }
        }
        self.lanes.validate(self.max_size)?;
        positive("acquire_timeout", self.acquire_timeout)?;
        positive("connect_timeout", self.connect_timeout)?;
        positive("check_timeout", self.check_timeout)?;
        positive("maintenance_interval", self.maintenance_interval)?;
        for (field, d) in [
            ("max_lifetime", self.max_lifetime),
            ("idle_timeout", self.idle_timeout),
            ("keepalive", self.keepalive),
            ("leak_threshold", self.leak_threshold),
            ("max_lease", self.max_lease),
        ] {
            if let Some(d) = d {
                positive(field, d)?;
            }
        }
        if !(0.0..=0.5).contains(&self.lifetime_jitter) {
            return Err(BuildError::OutOfRange {
                field: "lifetime_jitter",
                value: self.lifetime_jitter,
                range: "0.0 to 0.5",
            });
        }
        self.validate_retry()?;
        self.validate_breaker()?;
        self.validate_adaptive()
    }

    fn validate_adaptive(&self) -> Result<(), BuildError> {
        let Some(a) = &self.adaptive else {
            return Ok(());
        };
        a.validate(self.max_size, self.min_idle)?;
        if !self.statistics {
            return Err(BuildError::Adaptive(
                "needs statistics on: it reads the hold and wait time histograms".into(),
            ));
        }
        // Lane limits must leave every lane a connection at the smallest target too.
        self.lanes.validate(a.min)
    }

    fn validate_retry(&self) -> Result<(), BuildError> {
        positive("retry.base", self.retry.base)?;
        positive("retry.cap", self.retry.cap)?;
        if self.retry.max_attempts == 0 {
            return Err(BuildError::ZeroAttempts);
        }
        if self.retry.cap < self.retry.base {
            return Err(BuildError::BackoffCapBelowBase);
        }
        Ok(())
    }

    fn validate_breaker(&self) -> Result<(), BuildError> {
        let b = &self.breaker;
        if !b.enabled {
            return Ok(());
        }
        positive("breaker.window", b.window)?;
        positive("breaker.open_for", b.open_for)?;
        if b.consecutive_failures == 0 || b.half_open_trials == 0 {
            return Err(BuildError::OutOfRange {
                field: "breaker.consecutive_failures / breaker.half_open_trials",
                value: 0.0,
                range: "1 or more",
            });
        }
        if !(b.failure_rate > 0.0 && b.failure_rate <= 1.0) {
            return Err(BuildError::OutOfRange {
                field: "breaker.failure_rate",
                value: b.failure_rate,
                range: "above 0.0, at most 1.0",
            });
        }
        Ok(())
    }

    /// The core size in effect (`core_size` or `max_size`).
    pub(crate) fn core(&self) -> usize {
        self.core_size.unwrap_or(self.max_size)
    }
}

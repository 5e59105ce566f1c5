//! The built-in checks of one pool: connectivity and latency, saturation,
//! error rates over a window, circuit breaker, leaks, maintenance.

use std::time::Duration;

use lido_core::{BreakerConfig, BreakerState, LeakReport, Status as PoolStatus};

use super::config::{HealthConfig, Limits, Threshold};
use super::judge::{count, level, ms, percent, rate, window_text};
use super::report::{Check, Observation};
use super::status::Status;
use super::window::Delta;
use crate::source::{PingFailure, PingFailureKind, PoolSource};

/// `checks` keys of the built-in checks.
pub mod keys {
    /// Connectivity and ping round trip (`datastore`).
    pub const RESPONSE_TIME: &str = "database:responseTime";
    /// Connections in use as a share of `max_size`.
    pub const UTILIZATION: &str = "connections:utilization";
    /// Callers waiting for a connection.
    pub const WAITERS: &str = "connections:waiters";
    /// `get()` timeouts within the window.
    pub const ACQUIRE_TIMEOUTS: &str = "connections:acquireTimeouts";
    /// Failed connects within the window.
    pub const CONNECT_ERRORS: &str = "connections:connectErrorRate";
    /// Failed `get()` calls within the window.
    pub const GET_ERRORS: &str = "connections:getErrorRate";
    /// Failed statements within the window (backends that count them:
    /// lido-postgres, feature `http`).
    pub const QUERY_ERRORS: &str = "database:queryErrorRate";
    /// Circuit breaker state.
    pub const BREAKER: &str = "circuitBreaker:state";
    /// Leases held past `leak_threshold`.
    pub const LEAKS: &str = "connections:leaks";
    /// Time since the pool's maintenance task ran.
    pub const MAINTENANCE: &str = "maintenance:age";
    /// Time since the health loop ran (liveness only).
    pub const HEALTH_LOOP: &str = "healthLoop:age";
}

/// What a pool looked like when its round started.
pub(crate) struct Snapshot {
    pub status: PoolStatus,
    pub breaker: BreakerState,
    pub leaks: Vec<LeakReport>,
    pub maintenance_age: Duration,
    pub closed: bool,
}

impl Snapshot {
    pub fn take(pool: &dyn PoolSource) -> Self {
        Self {
            status: pool.status(),
            breaker: pool.breaker_state(),
            leaks: pool.leaks(),
            maintenance_age: pool.maintenance_age(),
            closed: pool.is_closed(),
        }
    }

    /// Without leaks (for liveness probes: no allocation).
    pub fn take_cheap(pool: &dyn PoolSource) -> Self {
        Self {
            status: pool.status(),
            breaker: pool.breaker_state(),
            leaks: Vec::new(),
            maintenance_age: pool.maintenance_age(),
            closed: pool.is_closed(),
        }
    }
}

/// Connectivity and round trip from a ping's outcome; `waited` is how long
/// the ping ran (the value of a failed one).
pub(crate) fn response_time(
    cfg: &HealthConfig,
    ping: Result<Duration, PingFailure>,
    waited: Duration,
    after: PoolStatus,
) -> Observation {
    let t = cfg.latency_ms;
    match ping {
        Ok(rtt) => {
            let v = ms(rtt);
            let s = t.judge(v);
            Observation::judged(v, "ms", t, format!("ping answered in {v} ms{}", level(&t, s)))
        }
        Err(e) if saturated(&e, after) => Observation::warn(format!(
            "could not lease a connection to ping within {} ms: pool saturated ({} of {} in use, {} waiting); database not tested",
            ms(waited), after.in_use, after.max_size, after.waiters
        ))
        .value(ms(waited), "ms")
        .threshold(t),
        Err(e) => Observation::fail(format!("ping failed after {} ms: {}", ms(waited), e.message))
            .value(ms(waited), "ms")
            .threshold(t),
    }
}

/// A lease timeout while every connection is busy says nothing about the database.
fn saturated(e: &PingFailure, s: PoolStatus) -> bool {
    let lease_wait = matches!(
        e.kind,
        PingFailureKind::AcquireTimeout | PingFailureKind::HealthTimeout
    );
    lease_wait && s.in_use >= s.max_size
}

pub(crate) fn utilization(cfg: &HealthConfig, s: &PoolStatus) -> Observation {
    let v = percent(s.in_use as u64, s.max_size as u64);
    let t = cfg.utilization_percent;
    let why = format!(
        "{} of {} connections in use, {} idle{}",
        s.in_use,
        s.max_size,
        s.idle,
        level(&t, t.judge(v))
    );
    Observation::judged(v, "percent", t, why)
}

pub(crate) fn waiters(cfg: &HealthConfig, s: &PoolStatus) -> Observation {
    let t = cfg.waiters;
    let v = s.waiters as f64;
    let why = format!(
        "{} callers waiting for a connection{}",
        s.waiters,
        level(&t, t.judge(v))
    );
    count(s.waiters as u64, "callers", t, why)
}

pub(crate) fn acquire_timeouts(cfg: &HealthConfig, d: &Delta) -> Observation {
    let t = cfg.acquire_timeouts;
    let n = d.counts.acquire_timeouts;
    let why = format!(
        "{n} get() calls timed out {}{}",
        window_text(d.covers),
        level(&t, t.judge(n as f64))
    );
    count(n, "count", t, why)
}

pub(crate) fn connect_errors(cfg: &HealthConfig, d: &Delta) -> Observation {
    let c = &d.counts;
    let (t, min) = (cfg.connect_error_percent, cfg.min_samples);
    rate(
        t,
        min,
        c.connect_failures,
        c.connects(),
        "connects",
        d.covers,
    )
}

pub(crate) fn get_errors(cfg: &HealthConfig, d: &Delta) -> Observation {
    let c = &d.counts;
    let (t, min) = (cfg.get_error_percent, cfg.min_samples);
    rate(t, min, c.get_failures(), c.gets(), "get() calls", d.covers)
}

pub(crate) fn breaker(state: BreakerState, cfg: &BreakerConfig) -> Observation {
    let rule = if cfg.enabled {
        format!(
            "opens after {} consecutive connect failures or {:.0} % of {} connects in {:?}, for {:?}",
            cfg.consecutive_failures,
            cfg.failure_rate * 100.0,
            cfg.min_calls,
            cfg.window,
            cfg.open_for
        )
    } else {
        "disabled: never opens".to_owned()
    };
    let (status, what) = match state {
        BreakerState::Closed => (Status::Pass, "closed: connects flow normally"),
        BreakerState::HalfOpen => (
            Status::Warn,
            "half-open: trial connects decide whether the database is back",
        ),
        BreakerState::Open => (
            Status::Fail,
            "open: connects kept failing; get() fails fast unless a connection is idle",
        ),
    };
    let limits = Limits::states(
        Some(BreakerState::HalfOpen.as_str()),
        Some(BreakerState::Open.as_str()),
    );
    Observation::with(status, format!("{what} ({rule})"))
        .value(state.as_str(), "state")
        .threshold(limits)
}

pub(crate) fn leaks(
    cfg: &HealthConfig,
    threshold: Option<Duration>,
    snap: &Snapshot,
    d: &Delta,
) -> Observation {
    let t = cfg.leaks;
    let Some(limit) = threshold else {
        return Observation::pass()
            .value(0, "leases")
            .threshold(t)
            .output("leak detection off (leak_threshold unset)");
    };
    let n = snap.leaks.len();
    let mut why = format!(
        "{n} leases held past leak_threshold {limit:?}; {} reported {}",
        d.counts.leaks,
        window_text(d.covers)
    );
    let mut longest: Vec<&LeakReport> = snap.leaks.iter().collect();
    longest.sort_by_key(|l| std::cmp::Reverse(l.held));
    for leak in longest.iter().take(3) {
        why.push_str(&format!(
            "; conn {} held {:.1} s, taken at {}",
            leak.conn_id,
            leak.held.as_secs_f64(),
            leak.location
        ));
    }
    count(n as u64, "leases", t, why)
}

/// How long the pool's maintenance task may stay silent before liveness fails.
pub(crate) fn maintenance_limit(cfg: &HealthConfig, pool: &dyn PoolSource) -> Duration {
    let c = pool.config();
    c.maintenance_interval * cfg.liveness_intervals.max(1) + c.check_timeout
}

/// Warns in the report (fails in liveness) when maintenance stopped ticking.
pub(crate) fn maintenance(limit: Duration, snap: &Snapshot, bad: Status) -> Observation {
    let (age, max) = (ms(snap.maintenance_age), ms(limit));
    let t = match bad {
        Status::Fail => Threshold::new(None, Some(max)),
        _ => Threshold::new(Some(max), None),
    };
    if snap.closed {
        return Observation::pass()
            .value(age, "ms")
            .threshold(t)
            .output("pool closed: maintenance stopped on purpose");
    }
    let why = if t.judge(age) == Status::Pass {
        format!("maintenance ran {age} ms ago (limit {max} ms)")
    } else {
        format!("maintenance task silent for {age} ms (limit {max} ms): wedged or stopped")
    };
    Observation::judged(age, "ms", t, why)
}

/// The built-in checks of one pool, in report order.
pub(crate) fn pool_checks(
    name: &str,
    pool: &dyn PoolSource,
    cfg: &HealthConfig,
    snap: &Snapshot,
    delta: &Delta,
    ping: Observation,
) -> Vec<Check> {
    let s = &snap.status;
    let limit = maintenance_limit(cfg, pool);
    let id = Some(name);
    vec![
        ping.into_check(keys::RESPONSE_TIME, id, "datastore"),
        utilization(cfg, s).into_check(keys::UTILIZATION, id, "component"),
        waiters(cfg, s).into_check(keys::WAITERS, id, "component"),
        acquire_timeouts(cfg, delta).into_check(keys::ACQUIRE_TIMEOUTS, id, "component"),
        connect_errors(cfg, delta).into_check(keys::CONNECT_ERRORS, id, "datastore"),
        get_errors(cfg, delta).into_check(keys::GET_ERRORS, id, "component"),
        breaker(snap.breaker, &pool.config().breaker).into_check(keys::BREAKER, id, "component"),
        leaks(cfg, pool.config().leak_threshold, snap, delta).into_check(
            keys::LEAKS,
            id,
            "component",
        ),
        maintenance(limit, snap, Status::Warn).into_check(keys::MAINTENANCE, id, "system"),
    ]
}

//! The pool core's metric families, read from `status()` and `stats()` at scrape time.

use lido_core::{BreakerState, CloseReason, Priority};

use super::sink::MetricSink;
use crate::source::PoolSource;

/// Metric family names written for every pool (each sample labelled `pool`).
pub mod names {
    /// Gauge, `state` = `idle` | `in_use`.
    pub const CONNECTIONS: &str = "lido_pool_connections";
    /// Gauge: current `max_size`.
    pub const MAX: &str = "lido_pool_connections_max";
    /// Gauge: connections the pool may have open now (adaptive sizing's
    /// target, never above `max_size`; `max_size` when adaptive sizing is off).
    pub const TARGET: &str = "lido_pool_target_size";
    /// Counter: changes adaptive sizing made to the target size.
    pub const TARGET_CHANGES: &str = "lido_pool_target_size_changes";
    /// Gauge, `lane` = `critical` | `normal` | `background`: leases held per priority lane.
    pub const IN_USE_BY_LANE: &str = "lido_pool_connections_in_use_by_lane";
    /// Gauge: configured `min_idle`.
    pub const MIN_IDLE: &str = "lido_pool_connections_min_idle";
    /// Gauge: callers waiting for a connection.
    pub const WAITERS: &str = "lido_pool_waiters";
    /// Gauge: connects in flight.
    pub const CONNECTING: &str = "lido_pool_connecting";
    /// Histogram: time `get()` waited.
    pub const ACQUIRE_WAIT: &str = "lido_pool_acquire_wait_seconds";
    /// Histogram: time connections were held by callers.
    pub const HOLD: &str = "lido_pool_connection_hold_seconds";
    /// Histogram: time successful connects took.
    pub const CONNECT: &str = "lido_pool_connect_seconds";
    /// Counter, `outcome` = `direct` | `waited` | `timeout` | `error`.
    pub const ACQUIRES: &str = "lido_pool_acquires";
    /// Counter: `get()` calls past `acquire_timeout`.
    pub const ACQUIRE_TIMEOUTS: &str = "lido_pool_acquire_timeouts";
    /// Counter: connections opened.
    pub const CREATED: &str = "lido_pool_connections_created";
    /// Counter, `reason` = every `CloseReason`.
    pub const CLOSED: &str = "lido_pool_connections_closed";
    /// Counter: failed connect attempts.
    pub const CONNECT_ERRORS: &str = "lido_pool_connect_errors";
    /// Gauge, `state` = `closed` | `open` | `half_open`: 1 for the current state.
    pub const BREAKER_STATE: &str = "lido_pool_breaker_state";
    /// Counter, `to` = `open` | `half_open` | `closed`.
    pub const BREAKER_TRANSITIONS: &str = "lido_pool_breaker_transitions";
    /// Counter: leases reported as possible leaks.
    pub const LEAKS: &str = "lido_pool_leaks";
    /// Gauge: leases held past `leak_threshold` now.
    pub const LEAKED: &str = "lido_pool_leased_past_threshold";
    /// Gauge: seconds since the maintenance task ran.
    pub const MAINTENANCE_AGE: &str = "lido_pool_maintenance_age_seconds";
    /// Gauge: 1 once the pool is closed.
    pub const POOL_CLOSED: &str = "lido_pool_closed";
}

const BREAKER_STATES: [BreakerState; 3] = [
    BreakerState::Closed,
    BreakerState::Open,
    BreakerState::HalfOpen,
];

fn gauges(p: &dyn PoolSource, s: &mut MetricSink<'_>) {
    let st = p.status();
    let help = "Open connections by state.";
    s.gauge(
        names::CONNECTIONS,
        help,
        &[("state", "idle")],
        st.idle as f64,
    );
    s.gauge(
        names::CONNECTIONS,
        help,
        &[("state", "in_use")],
        st.in_use as f64,
    );
    s.gauge(
        names::MAX,
        "Most connections open at once (max_size).",
        &[],
        st.max_size as f64,
    );
    s.gauge(
        names::TARGET,
        "Connections the pool may have open now: adaptive sizing's target, else max_size.",
        &[],
        st.target_size as f64,
    );
    for lane in Priority::ALL {
        let help = "Leases held now, by priority lane.";
        let held = st.in_use_by_lane[lane as usize] as f64;
        s.gauge(
            names::IN_USE_BY_LANE,
            help,
            &[("lane", lane_name(lane))],
            held,
        );
    }
    s.gauge(
        names::MIN_IDLE,
        "Idle connections kept ready (min_idle).",
        &[],
        st.min_idle as f64,
    );
    s.gauge(
        names::WAITERS,
        "Callers waiting for a connection.",
        &[],
        st.waiters as f64,
    );
    s.gauge(
        names::CONNECTING,
        "Connects in flight.",
        &[],
        st.connecting as f64,
    );
    let age = p.maintenance_age().as_secs_f64();
    s.gauge(
        names::MAINTENANCE_AGE,
        "Time since the pool's maintenance task last ran.",
        &[],
        age,
    );
    let closed = f64::from(u8::from(p.is_closed()));
    s.gauge(
        names::POOL_CLOSED,
        "1 once the pool was closed.",
        &[],
        closed,
    );
    let leaked = p.leaks().len() as f64;
    s.gauge(
        names::LEAKED,
        "Leases held past leak_threshold right now.",
        &[],
        leaked,
    );
}

/// The `lane` label of a priority lane.
fn lane_name(lane: Priority) -> &'static str {
    match lane {
        Priority::Critical => "critical",
        Priority::Normal => "normal",
        Priority::Background => "background",
    }
}

fn histograms(p: &dyn PoolSource, s: &mut MetricSink<'_>) {
    let st = p.stats();
    s.duration_histogram(
        names::ACQUIRE_WAIT,
        "Time get() waited for a connection.",
        &[],
        &st.acquire_wait,
    );
    s.duration_histogram(
        names::HOLD,
        "Time connections were held by callers.",
        &[],
        &st.hold_time,
    );
    s.duration_histogram(
        names::CONNECT,
        "Time successful connects took.",
        &[],
        &st.connect_time,
    );
}

fn counters(p: &dyn PoolSource, s: &mut MetricSink<'_>) {
    let st = p.stats();
    let help = "get() calls by outcome.";
    for (outcome, n) in [
        ("direct", st.gets_direct()),
        ("waited", st.gets_waited()),
        ("timeout", st.acquire_timeouts()),
        ("error", st.get_errors()),
    ] {
        s.counter(names::ACQUIRES, help, &[("outcome", outcome)], n);
    }
    let timeouts = st.acquire_timeouts();
    s.counter(
        names::ACQUIRE_TIMEOUTS,
        "get() calls past acquire_timeout.",
        &[],
        timeouts,
    );
    s.counter(names::CREATED, "Connections opened.", &[], st.created());
    for r in CloseReason::ALL {
        let help = "Connections closed, by reason.";
        s.counter(names::CLOSED, help, &[("reason", r.as_str())], st.closed(r));
    }
    let errors = st.connect_failures();
    s.counter(
        names::CONNECT_ERRORS,
        "Connect attempts that failed.",
        &[],
        errors,
    );
    s.counter(
        names::TARGET_CHANGES,
        "Changes adaptive sizing made to the target size.",
        &[],
        st.target_changes(),
    );
    s.counter(
        names::LEAKS,
        "Leases reported as possible leaks.",
        &[],
        st.leaks(),
    );
}

fn breaker(p: &dyn PoolSource, s: &mut MetricSink<'_>) {
    let now = p.breaker_state();
    for state in BREAKER_STATES {
        let v = f64::from(u8::from(state == now));
        let help = "Circuit breaker state: 1 for the current one.";
        s.gauge(names::BREAKER_STATE, help, &[("state", state.as_str())], v);
    }
    let st = p.stats();
    let help = "Circuit breaker transitions, by state entered.";
    for (to, n) in [
        ("open", st.breaker_opened()),
        ("half_open", st.breaker_half_opened()),
        ("closed", st.breaker_closed()),
    ] {
        s.counter(names::BREAKER_TRANSITIONS, help, &[("to", to)], n);
    }
}

/// Writes every core family of `pool` into `sink`.
pub(crate) fn write(pool: &dyn PoolSource, sink: &mut MetricSink<'_>) {
    gauges(pool, sink);
    histograms(pool, sink);
    counters(pool, sink);
    breaker(pool, sink);
}

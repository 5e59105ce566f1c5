//! One pool read once a second: the gauges as they are, the counters as
//! per-second rates (deltas from the previous reading) and the percentiles
//! over that second (the difference of two histogram snapshots).

use std::collections::BTreeMap;
use std::time::Duration;

use lido_core::{BreakerState, HistogramSnapshot};
use lido_http::NamedPool;
use lido_postgres::{Operation, PgPool};
use serde::Serialize;

/// A pool the sampler reads, with its PostgreSQL handle when it has one
/// (for statement, class and error-class counters).
#[derive(Clone)]
pub struct Target {
    /// The pool as the health monitor knows it.
    pub pool: NamedPool,
    /// The same pool as a `PgPool` (PostgreSQL pools only).
    pub pg: Option<PgPool>,
    /// `postgres`, `sqlite`, `cluster` or `node` (a cluster's node pool).
    pub kind: &'static str,
}

/// Cumulative counters and histograms at one instant.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    leases: u64,
    acquire_errors: u64,
    acquire_timeouts: u64,
    created: u64,
    connect_failures: u64,
    queries: u64,
    query_errors: u64,
    slow: u64,
    query_timeouts: u64,
    near_timeouts: u64,
    errors_by_class: BTreeMap<String, u64>,
    wait: Option<HistogramSnapshot>,
    hold: Option<HistogramSnapshot>,
    query: Vec<HistogramSnapshot>,
}

/// One second of one pool, as `/dashboard/series` serves it. Times in
/// milliseconds, rates per second; `null` where the backend has no such
/// counter (SQLite has no per-statement counters).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    /// Unix time of the reading, milliseconds.
    pub t: u64,
    /// Leases held now.
    pub in_use: usize,
    /// Idle connections.
    pub idle: usize,
    /// Current `max_size`.
    pub max: usize,
    /// Connections the pool may open now (adaptive target or max).
    pub target: usize,
    /// Callers waiting for a connection.
    pub waiters: usize,
    /// Connects in flight.
    pub connecting: usize,
    /// Acquire wait over the last second, 50th percentile (ms).
    pub wait_p50_ms: f64,
    /// Acquire wait over the last second, 99th percentile (ms).
    pub wait_p99_ms: f64,
    /// Connections opened per second.
    pub connects: f64,
    /// Failed connects per second.
    pub connect_failures: f64,
    /// `closed`, `open` or `half_open`.
    pub breaker: &'static str,
    /// Leases handed out per second.
    pub leases: f64,
    /// Lease hold time over the last second, 95th percentile (ms).
    pub hold_p95_ms: f64,
    /// Lease hold time over the last second, 99th percentile (ms).
    pub hold_p99_ms: f64,
    /// Statements per second (PostgreSQL).
    pub qps: Option<f64>,
    /// Statement latency over the last second, 95th percentile (ms).
    pub lat_p95_ms: Option<f64>,
    /// Statement latency over the last second, 99th percentile (ms).
    pub lat_p99_ms: Option<f64>,
    /// Failures per second: failed acquires, plus failed statements (PostgreSQL).
    pub errors: f64,
    /// Failures over attempts (statements or leases, plus failed acquires) in the second, 0–1.
    pub error_rate: f64,
    /// Failed statements per second by error class (PostgreSQL).
    pub errors_by_class: BTreeMap<String, f64>,
    /// Slow statements per second (PostgreSQL, slow-query log on).
    pub slow: Option<f64>,
    /// Acquire timeouts plus statement timeouts per second.
    pub timeouts: f64,
    /// Statements that finished close to their class deadline, per second.
    pub near_timeouts: Option<f64>,
    /// Leases held past the leak threshold now.
    pub leaks: usize,
    /// The pool's health verdict at this second: `pass`, `warn` or `fail`.
    pub health: &'static str,
}

/// Reads `target`'s counters now.
pub fn totals(target: &Target) -> Totals {
    let stats = target.pool.source().stats();
    let mut t = Totals {
        leases: stats.gets_direct() + stats.gets_waited(),
        acquire_errors: stats.get_errors(),
        acquire_timeouts: stats.acquire_timeouts(),
        created: stats.created(),
        connect_failures: stats.connect_failures(),
        wait: Some(stats.acquire_wait.snapshot()),
        hold: Some(stats.hold_time.snapshot()),
        ..Totals::default()
    };
    if let Some(pg) = &target.pg {
        let s = pg.pg_stats();
        t.queries = s.queries();
        t.query_errors = s.query_errors();
        t.slow = s.slow_queries();
        t.query_timeouts = s.query_timeouts();
        t.errors_by_class = s.errors_by_class().into_iter().collect();
        t.near_timeouts = pg.class_stats().iter().map(|c| c.near_timeouts).sum();
        t.query = [Operation::Query, Operation::Execute]
            .into_iter()
            .map(|op| s.duration(op).snapshot())
            .collect();
    }
    t
}

/// The point for the second between `before` and `now` (`secs` apart).
pub fn point(target: &Target, before: &Totals, now: &Totals, secs: f64, t: u64) -> Point {
    let source = target.pool.source();
    let status = source.status();
    let rate = |a: u64, b: u64| per_second(a, b, secs);
    let pg = target.pg.is_some();
    // Failed acquires (a database that is down) count as errors for
    // both; PostgreSQL adds failed statements, out of statements run.
    let d = |a: u64, b: u64| b.saturating_sub(a);
    let failed_gets = d(before.acquire_errors, now.acquire_errors);
    let (failed, work) = if pg {
        let failed_queries = d(before.query_errors, now.query_errors);
        let queries = d(before.queries, now.queries);
        (failed_queries + failed_gets, queries + failed_gets)
    } else {
        (failed_gets, d(before.leases, now.leases) + failed_gets)
    };
    let errors = if secs > 0.0 {
        round3(failed as f64 / secs)
    } else {
        0.0
    };
    let query = |q: f64| pg.then(|| window_quantile(&before.query, &now.query, q));
    Point {
        t,
        in_use: status.in_use,
        idle: status.idle,
        max: status.max_size,
        target: status.target_size,
        waiters: status.waiters,
        connecting: status.connecting,
        wait_p50_ms: window_quantile(opt(&before.wait), opt(&now.wait), 0.50),
        wait_p99_ms: window_quantile(opt(&before.wait), opt(&now.wait), 0.99),
        connects: rate(before.created, now.created),
        connect_failures: rate(before.connect_failures, now.connect_failures),
        breaker: breaker_name(source.breaker_state()),
        leases: rate(before.leases, now.leases),
        hold_p95_ms: window_quantile(opt(&before.hold), opt(&now.hold), 0.95),
        hold_p99_ms: window_quantile(opt(&before.hold), opt(&now.hold), 0.99),
        qps: pg.then(|| rate(before.queries, now.queries)),
        lat_p95_ms: query(0.95),
        lat_p99_ms: query(0.99),
        errors,
        error_rate: share(failed, work),
        errors_by_class: class_rates(&before.errors_by_class, &now.errors_by_class, secs),
        slow: pg.then(|| rate(before.slow, now.slow)),
        timeouts: rate(
            before.acquire_timeouts + before.query_timeouts,
            now.acquire_timeouts + now.query_timeouts,
        ),
        near_timeouts: pg.then(|| rate(before.near_timeouts, now.near_timeouts)),
        leaks: source.leaks().len(),
        health: "pass",
    }
}

/// `part / whole`, 0 for an empty whole, at most 1.
fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        round3((part as f64 / whole as f64).min(1.0))
    }
}

fn opt(s: &Option<HistogramSnapshot>) -> &[HistogramSnapshot] {
    s.as_slice()
}

/// `closed`, `open` or `half_open`.
pub fn breaker_name(state: BreakerState) -> &'static str {
    match state {
        BreakerState::Closed => "closed",
        BreakerState::Open => "open",
        BreakerState::HalfOpen => "half_open",
    }
}

fn per_second(before: u64, now: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        return 0.0;
    }
    round3(now.saturating_sub(before) as f64 / secs)
}

fn class_rates(
    before: &BTreeMap<String, u64>,
    now: &BTreeMap<String, u64>,
    secs: f64,
) -> BTreeMap<String, f64> {
    now.iter()
        .map(|(class, n)| {
            let b = before.get(class).copied().unwrap_or(0);
            (class.clone(), per_second(b, *n, secs))
        })
        .filter(|(_, r)| *r > 0.0)
        .collect()
}

/// The `q` quantile (ms) of the samples recorded between two sets of
/// snapshots (summed bucket by bucket): a bucket's upper bound, 0 when the
/// window is empty.
pub fn window_quantile(before: &[HistogramSnapshot], now: &[HistogramSnapshot], q: f64) -> f64 {
    let mut buckets: BTreeMap<Duration, i128> = BTreeMap::new();
    for s in now {
        for (bound, n) in &s.buckets {
            *buckets.entry(*bound).or_default() += i128::from(*n);
        }
    }
    for s in before {
        for (bound, n) in &s.buckets {
            *buckets.entry(*bound).or_default() -= i128::from(*n);
        }
    }
    let total: i128 = buckets.values().filter(|n| **n > 0).sum();
    if total == 0 {
        return 0.0;
    }
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as i128).max(1);
    let mut seen = 0;
    for (bound, n) in &buckets {
        seen += (*n).max(0);
        if seen >= rank {
            return ms(*bound);
        }
    }
    0.0
}

/// Milliseconds to the microsecond.
pub fn ms(d: Duration) -> f64 {
    round3(d.as_secs_f64() * 1e3)
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;
    use lido_core::Histogram;

    #[test]
    fn quantiles_cover_only_the_window() {
        let h = Histogram::default();
        for _ in 0..100 {
            h.record(Duration::from_millis(100));
        }
        let before = vec![h.snapshot()];
        for _ in 0..100 {
            h.record(Duration::from_millis(1));
        }
        let now = vec![h.snapshot()];
        let p99 = window_quantile(&before, &now, 0.99);
        assert!(p99 > 0.9 && p99 < 1.2, "{p99}");
        assert_eq!(window_quantile(&now, &now, 0.99), 0.0);
        assert_eq!(window_quantile(&[], &[], 0.5), 0.0);
    }

    #[test]
    fn rates_are_per_second_and_never_negative() {
        assert_eq!(per_second(10, 30, 2.0), 10.0);
        assert_eq!(per_second(30, 10, 1.0), 0.0);
        assert_eq!(per_second(0, 5, 0.0), 0.0);
        let before = BTreeMap::from([("23".to_owned(), 1)]);
        let now = BTreeMap::from([("23".to_owned(), 3), ("timeout".to_owned(), 0)]);
        assert_eq!(
            class_rates(&before, &now, 1.0),
            BTreeMap::from([("23".to_owned(), 2.0)])
        );
    }
}

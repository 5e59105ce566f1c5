//! The benchmark's table, recommendation and JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// Measurements at one pool size.
#[derive(Debug, Clone, Serialize)]
pub struct SizeResult {
    /// Pool size.
    pub size: usize,
    /// Completed operations per second.
    pub ops_per_sec: f64,
    /// Median operation latency (acquire + statement).
    #[serde(serialize_with = "micros")]
    pub p50: Duration,
    /// 95th percentile latency.
    #[serde(serialize_with = "micros")]
    pub p95: Duration,
    /// 99th percentile latency.
    #[serde(serialize_with = "micros")]
    pub p99: Duration,
    /// 99th percentile of the time spent waiting for a connection.
    #[serde(serialize_with = "micros")]
    pub acquire_wait_p99: Duration,
    /// Acquire timeouts.
    pub timeouts: u64,
    /// Other failed operations.
    pub errors: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The advice: the smallest size within `tolerance` of the best throughput.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    /// Recommended pool size.
    pub size: usize,
    /// The size with the highest throughput.
    pub best_size: usize,
    /// Why, in one paragraph.
    pub reason: String,
}

/// Picks the smallest size whose throughput is within `tolerance` (e.g. 0.05) of the best
/// and that had no errors or timeouts.
pub fn recommend(results: &[SizeResult], tolerance: f64) -> Option<Recommendation> {
    let clean = |r: &&SizeResult| r.errors == 0 && r.timeouts == 0 && r.ops_per_sec > 0.0;
    let best = results
        .iter()
        .filter(clean)
        .max_by(|a, b| a.ops_per_sec.total_cmp(&b.ops_per_sec))?;
    let floor = best.ops_per_sec * (1.0 - tolerance);
    let pick = results
        .iter()
        .filter(clean)
        .filter(|r| r.ops_per_sec >= floor)
        .min_by_key(|r| r.size)?;
    let share = 100.0 * pick.ops_per_sec / best.ops_per_sec;
    let reason = if pick.size == best.size {
        format!(
            "size {} gave the highest throughput ({:.0} ops/s) and no smaller size came within {:.0}% of it",
            best.size,
            best.ops_per_sec,
            tolerance * 100.0
        )
    } else {
        format!(
            "size {} reaches {share:.1}% of the best throughput (size {}, {:.0} ops/s) with {} fewer connections; \
             larger pools add connections the database must serve without adding throughput \
             (p99 {:?} at size {} vs {:?} at size {})",
            pick.size,
            best.size,
            best.ops_per_sec,
            best.size - pick.size,
            pick.p99,
            pick.size,
            best.p99,
            best.size
        )
    };
    Some(Recommendation {
        size: pick.size,
        best_size: best.size,
        reason,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// The human-readable table.
pub fn table(results: &[SizeResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>5} {:>12} {:>9} {:>9} {:>9} {:>12} {:>9} {:>7}",
        "size", "ops/s", "p50 ms", "p95 ms", "p99 ms", "acq p99 ms", "timeouts", "errors"
    );
    for r in results {
        let _ = writeln!(
            out,
            "{:>5} {:>12.0} {:>9} {:>9} {:>9} {:>12} {:>9} {:>7}",
            r.size,
            r.ops_per_sec,
            ms(r.p50),
            ms(r.p95),
            ms(r.p99),
            ms(r.acquire_wait_p99),
            r.timeouts,
            r.errors
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(size: usize, ops: f64) -> SizeResult {
        SizeResult {
            size,
            ops_per_sec: ops,
            p50: Duration::from_micros(100),
            p95: Duration::from_micros(200),
            p99: Duration::from_micros(300),
            acquire_wait_p99: Duration::ZERO,
            timeouts: 0,
            errors: 0,
            first_error: None,
        }
    }

    #[test]
    fn picks_smallest_within_tolerance() {
        let res = vec![
            r(1, 500.0),
            r(2, 900.0),
            r(4, 980.0),
            r(8, 1000.0),
            r(16, 990.0),
        ];
        let rec = recommend(&res, 0.05).expect("some");
        assert_eq!((rec.size, rec.best_size), (4, 8));
        assert!(rec.reason.contains("98.0%"));
    }

    #[test]
    fn ignores_sizes_with_errors() {
        let mut bad = r(1, 2000.0);
        bad.errors = 3;
        let rec = recommend(&[bad, r(2, 1000.0)], 0.05).expect("some");
        assert_eq!(rec.size, 2);
        assert!(recommend(&[], 0.05).is_none());
    }

    #[test]
    fn table_has_a_row_per_size() {
        let t = table(&[r(1, 10.0), r(2, 20.0)]);
        assert_eq!(t.lines().count(), 3);
        assert!(t.contains("acq p99 ms"));
    }
}

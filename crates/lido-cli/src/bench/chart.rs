//! What the bench charts draw: one point per measured pool size, the
//! recommended size, and the words around them. The SVG file
//! ([`super::chart_svg`]) and the terminal chart ([`super::chart_term`]) both
//! draw a [`ChartData`].

use super::report::{Recommendation, SizeResult};

/// One measured pool size.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartPoint {
    /// Pool size.
    pub size: usize,
    /// Completed operations per second.
    pub ops_per_sec: f64,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: f64,
    /// Failed operations plus acquire timeouts at this size.
    pub failures: u64,
}

/// Everything a chart shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartData {
    /// What was measured (the target's description, password-free).
    pub target: String,
    /// The workload in one line ("64 tasks, 10% writes, 5s per size").
    pub workload: String,
    /// What the x axis counts ("connections", "read connections").
    pub size_unit: String,
    /// The points, in the order measured.
    pub points: Vec<ChartPoint>,
    /// The recommended size, if there is one.
    pub recommended: Option<usize>,
}

impl ChartData {
    /// The chart of a sweep's `results`.
    pub fn from_results(
        target: String,
        workload: String,
        size_unit: &str,
        results: &[SizeResult],
        recommendation: Option<&Recommendation>,
    ) -> Self {
        let points = results
            .iter()
            .map(|r| ChartPoint {
                size: r.size,
                ops_per_sec: r.ops_per_sec,
                p99_ms: r.p99.as_secs_f64() * 1000.0,
                failures: r.errors + r.timeouts,
            })
            .collect();
        Self {
            target,
            workload,
            size_unit: size_unit.to_owned(),
            points,
            recommended: recommendation.map(|r| r.size),
        }
    }

    /// The highest throughput (0 with no points).
    pub fn max_ops(&self) -> f64 {
        self.points
            .iter()
            .map(|p| p.ops_per_sec)
            .fold(0.0, f64::max)
    }

    /// The highest p99 in ms (0 with no points).
    pub fn max_p99_ms(&self) -> f64 {
        self.points.iter().map(|p| p.p99_ms).fold(0.0, f64::max)
    }
}

/// `12345` as `12,345`.
pub fn thousands(v: f64) -> String {
    let n = v.max(0.0).round() as u64;
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A latency in ms with sensible decimals (`0.123`, `1.23`, `12.3`, `123`).
pub fn millis(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234.0), "1,234");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(millis(0.1234), "0.123");
        assert_eq!(millis(1.234), "1.23");
        assert_eq!(millis(12.34), "12.3");
        assert_eq!(millis(123.4), "123");
    }
}

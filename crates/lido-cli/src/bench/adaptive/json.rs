//! `lido bench --adaptive --json`: the comparison as one JSON document
//! (format 1; latencies in microseconds, like the plain sweep's `--json`).

use serde::Serialize;

use super::drive::WindowStats;
use super::report::{self, Adaptive, Fixed};

/// Throughput, p99 and errors of one measured window.
#[derive(Debug, Serialize)]
pub struct Stats {
    ops_per_sec: f64,
    p99: u64,
    errors: u64,
}

impl From<WindowStats> for Stats {
    fn from(s: WindowStats) -> Self {
        Self {
            ops_per_sec: s.ops_per_sec,
            p99: u64::try_from(s.p99.as_micros()).unwrap_or(u64::MAX),
            errors: s.errors,
        }
    }
}

/// One fixed size in one phase.
#[derive(Debug, Serialize)]
pub struct FixedJson {
    size: usize,
    #[serde(flatten)]
    stats: Stats,
}

/// The adaptive pool in one phase.
#[derive(Debug, Serialize)]
pub struct AdaptiveJson {
    /// The target it settled at.
    settled: usize,
    /// Seconds after the phase change until it stayed in its band (`null`: never).
    converged_after_s: Option<f64>,
    /// The targets it went through, in order.
    path: Vec<usize>,
    /// Measured from convergence (or the last third) to the phase's end.
    #[serde(flatten)]
    stats: Stats,
}

/// One phase: the fixed-size curve, the best of it, the adaptive pool and the verdict.
#[derive(Debug, Serialize)]
pub struct PhaseJson {
    name: &'static str,
    description: String,
    fixed: Vec<FixedJson>,
    /// The fixed size with the highest throughput and no errors (`null`: none).
    best_size: Option<usize>,
    adaptive: AdaptiveJson,
    /// Adaptive throughput over the best fixed size's.
    ops_ratio: Option<f64>,
    /// Adaptive p99 over the best fixed size's.
    p99_ratio: Option<f64>,
    /// Whether the adaptive pool met every goal in this phase.
    goal_met: bool,
}

impl PhaseJson {
    /// A phase's row.
    pub fn new(
        name: &'static str,
        description: String,
        curve: &[Fixed],
        adaptive: &Adaptive,
    ) -> Self {
        let best = report::best(curve);
        let verdict = best.map(|b| report::verdict(&b, adaptive));
        Self {
            name,
            description,
            fixed: curve
                .iter()
                .map(|f| FixedJson {
                    size: f.size,
                    stats: f.stats.into(),
                })
                .collect(),
            best_size: best.map(|b| b.size),
            adaptive: AdaptiveJson {
                settled: adaptive.settled,
                converged_after_s: adaptive.converged_after,
                path: adaptive.path.clone(),
                stats: adaptive.stats.into(),
            },
            ops_ratio: verdict.map(|v| v.0),
            p99_ratio: verdict.map(|v| v.1),
            goal_met: verdict.is_some_and(|v| v.2),
        }
    }
}

/// The goals each phase is judged by.
#[derive(Debug, Serialize)]
pub struct Goals {
    ops_share: f64,
    p99_ratio: f64,
    converge_within_s: f64,
}

/// The whole `--adaptive --json` document.
#[derive(Debug, Serialize)]
pub struct AdaptiveReport {
    /// Document format.
    pub format: u32,
    /// Always `"adaptive"`.
    pub mode: &'static str,
    /// The database, password left out.
    pub target: String,
    /// Client tasks.
    pub tasks: usize,
    /// Fixed sizes' warm-up.
    pub warmup_ms: u128,
    /// Fixed sizes' measured window.
    pub duration_ms: u128,
    /// The adaptive pool's time per phase.
    pub phase_duration_ms: u128,
    /// Adaptive sizing's sampling interval.
    pub interval_ms: u128,
    /// The fixed sizes compared.
    pub sizes: Vec<usize>,
    /// Unit of every `p99`.
    pub latency_unit: &'static str,
    /// What "met" means.
    pub goals: Goals,
    /// One entry per phase, in order.
    pub phases: Vec<PhaseJson>,
}

/// The goals from [`report`]'s constants.
pub fn goals() -> Goals {
    Goals {
        ops_share: report::OPS_GOAL,
        p99_ratio: report::P99_GOAL,
        converge_within_s: report::CONVERGE_GOAL.as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn stats(ops: f64, p99_ms: u64, errors: u64) -> WindowStats {
        WindowStats {
            ops_per_sec: ops,
            p99: Duration::from_millis(p99_ms),
            errors,
        }
    }

    fn adaptive() -> Adaptive {
        Adaptive {
            converged_after: Some(1.5),
            settled: 4,
            path: vec![1, 2, 4],
            stats: stats(950.0, 11, 0),
        }
    }

    #[test]
    fn a_phase_carries_its_curve_best_and_verdict_in_microseconds() {
        let curve = [
            Fixed {
                size: 1,
                stats: stats(400.0, 30, 0),
            },
            Fixed {
                size: 4,
                stats: stats(1000.0, 10, 0),
            },
        ];
        let v = serde_json::to_value(PhaseJson::new("cpu", "q".into(), &curve, &adaptive()))
            .expect("json");
        assert_eq!(v["best_size"], 4);
        assert_eq!(v["fixed"][1]["p99"], 10_000);
        assert_eq!(v["adaptive"]["path"], serde_json::json!([1, 2, 4]));
        assert_eq!(v["adaptive"]["p99"], 11_000);
        assert_eq!(v["goal_met"], true);
        assert!(v["ops_ratio"]
            .as_f64()
            .is_some_and(|r| (r - 0.95).abs() < 1e-9));
    }

    #[test]
    fn no_clean_fixed_size_means_no_best_and_no_goal() {
        let curve = [Fixed {
            size: 1,
            stats: stats(400.0, 30, 2),
        }];
        let v = serde_json::to_value(PhaseJson::new("locks", "q".into(), &curve, &adaptive()))
            .expect("json");
        assert!(v["best_size"].is_null() && v["ops_ratio"].is_null());
        assert_eq!(v["goal_met"], false);
    }
}

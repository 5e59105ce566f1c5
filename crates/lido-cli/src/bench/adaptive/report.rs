//! The `--adaptive` report: each phase's fixed-size curve, then the best
//! fixed size beside the adaptive pool after it converged.

use std::fmt::Write as _;
use std::time::Duration;

use super::drive::WindowStats;

/// Throughput the adaptive pool must reach, as a share of the best fixed size's.
pub const OPS_GOAL: f64 = 0.90;
/// Its p99 may be at most this many times the best fixed size's.
pub const P99_GOAL: f64 = 1.2;
/// Within this long of each phase change.
pub const CONVERGE_GOAL: Duration = Duration::from_secs(30);
/// Sampling intervals a one-step probe of adaptive sizing lasts at most
/// (a cool-down interval, then three measurements of two intervals each),
/// plus one for the step back: excursions above the band no longer than
/// this do not count against convergence.
pub const PROBE_INTERVALS: f64 = 8.0;

/// One fixed size in one phase.
#[derive(Debug, Clone, Copy)]
pub struct Fixed {
    /// Pool size.
    pub size: usize,
    /// What it did in the measured window.
    pub stats: WindowStats,
}

/// The adaptive pool in one phase.
#[derive(Debug, Clone)]
pub struct Adaptive {
    /// Seconds after the phase began until the target stayed in its band.
    pub converged_after: Option<f64>,
    /// The target it settled at (median over the last third of the phase).
    pub settled: usize,
    /// The targets it went through, in order (repeats dropped).
    pub path: Vec<usize>,
    /// Throughput and p99 from convergence to the end of the phase.
    pub stats: WindowStats,
}

/// The size with the highest throughput among those without errors.
pub fn best(curve: &[Fixed]) -> Option<Fixed> {
    curve
        .iter()
        .filter(|f| f.stats.errors == 0 && f.stats.ops_per_sec > 0.0)
        .max_by(|a, b| a.stats.ops_per_sec.total_cmp(&b.stats.ops_per_sec))
        .copied()
}

/// Convergence of a phase's `(seconds after phase start, target)` trace:
/// the settled target (median of the last third) and when the target last
/// came back into the band around it (±25%, at least ±1), not counting
/// probes (at most `probe_secs` above the band); `None` if it ends outside.
pub fn convergence(trace: &[(f64, usize)], probe_secs: f64) -> (Option<f64>, usize) {
    let Some(&(end, _)) = trace.last() else {
        return (None, 0);
    };
    let mut tail: Vec<usize> = trace
        .iter()
        .filter(|(t, _)| *t >= end * 2.0 / 3.0)
        .map(|(_, n)| *n)
        .collect();
    tail.sort_unstable();
    let settled = tail[tail.len() / 2];
    let slack = (settled / 4).max(1);
    let band = settled.saturating_sub(slack)..=settled + slack;
    let start = trace[0].0;
    let mut converged = Some(start);
    // Since when the target is out of the band, and whether only above it.
    let mut out_since: Option<(f64, bool)> = None;
    for &(t, n) in trace {
        if band.contains(&n) {
            if let Some((since, above)) = out_since.take() {
                let probe = above && t - since <= probe_secs && since > start;
                if !probe {
                    converged = Some(t);
                }
            }
        } else {
            let above = n > *band.end();
            out_since = match out_since {
                None => Some((t, above)),
                Some((since, was)) => Some((since, was && above)),
            };
        }
    }
    if let Some((since, above)) = out_since {
        if !above || end - since > probe_secs {
            converged = None; // out of band at the end, and not a probe
        }
    }
    (converged.map(|t| t - start), settled)
}

/// The targets in order, repeats dropped.
pub fn path(trace: &[(f64, usize)]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for &(_, n) in trace {
        if out.last() != Some(&n) {
            out.push(n);
        }
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// One phase's fixed-size curve.
pub fn curve_table(curve: &[Fixed]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>6} {:>10} {:>9} {:>7}",
        "size", "ops/s", "p99 ms", "errors"
    );
    for f in curve {
        let s = f.stats;
        let _ = writeln!(
            out,
            "{:>6} {:>10.0} {:>9} {:>7}",
            f.size,
            s.ops_per_sec,
            ms(s.p99),
            s.errors
        );
    }
    out
}

/// Whether the adaptive pool met the goals against `best`.
pub fn verdict(best: &Fixed, a: &Adaptive) -> (f64, f64, bool) {
    let ops = a.stats.ops_per_sec / best.stats.ops_per_sec;
    let p99 = a.stats.p99.as_secs_f64() / best.stats.p99.as_secs_f64().max(1e-9);
    let fast = a
        .converged_after
        .is_some_and(|t| t <= CONVERGE_GOAL.as_secs_f64());
    (
        ops,
        p99,
        ops >= OPS_GOAL && p99 <= P99_GOAL && fast && a.stats.errors == 0,
    )
}

/// The side-by-side table: a row per phase.
pub fn side_by_side(rows: &[(&str, Option<Fixed>, Adaptive)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<6} {:>5} {:>10} {:>9} | {:>6} {:>10} {:>9} {:>9} {:>9} {:>10} {:>7}",
        "phase",
        "best",
        "ops/s",
        "p99 ms",
        "target",
        "ops/s",
        "p99 ms",
        "ops ratio",
        "p99 ratio",
        "converged",
        "goal"
    );
    for (phase, best, a) in rows {
        let conv = a
            .converged_after
            .map_or("never".to_string(), |t| format!("{t:.1}s"));
        let Some(best) = best else {
            let _ = writeln!(out, "{phase:<6} no fixed size ran without errors");
            continue;
        };
        let (ops, p99, met) = verdict(best, a);
        let _ = writeln!(
            out,
            "{:<6} {:>5} {:>10.0} {:>9} | {:>6} {:>10.0} {:>9} {:>9.2} {:>9.2} {:>10} {:>7}",
            phase,
            best.size,
            best.stats.ops_per_sec,
            ms(best.stats.p99),
            a.settled,
            a.stats.ops_per_sec,
            ms(a.stats.p99),
            ops,
            p99,
            conv,
            if met { "met" } else { "MISSED" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(points: &[(f64, usize)]) -> Vec<(f64, usize)> {
        let mut out = Vec::new();
        for w in points.windows(2) {
            let (from, n) = w[0];
            let mut t = from;
            while t < w[1].0 {
                out.push((t, n));
                t += 0.1;
            }
        }
        out.push(*points.last().expect("points"));
        out
    }

    #[test]
    fn convergence_ignores_short_probes() {
        // 1 -> 2 -> 4 -> 8 by 3 s, a 0.6 s probe to 12 at 15 s, done at 30 s.
        let t = trace(&[
            (0.0, 1),
            (1.0, 2),
            (2.0, 4),
            (3.0, 8),
            (15.0, 12),
            (15.6, 8),
            (30.0, 8),
        ]);
        let (at, settled) = convergence(&t, 1.0);
        assert_eq!(settled, 8);
        let at = at.expect("converged");
        assert!((2.9..3.2).contains(&at), "{at}");
        assert_eq!(path(&t), vec![1, 2, 4, 8, 12, 8]);
    }

    #[test]
    fn a_short_dip_counts() {
        let t = trace(&[(0.0, 4), (0.5, 2), (1.0, 3), (1.5, 4), (10.0, 4)]);
        let (at, settled) = convergence(&t, 1.0);
        assert_eq!(settled, 4);
        assert!(at.is_some_and(|a| (0.9..1.1).contains(&a)), "{at:?}");
    }

    #[test]
    fn a_long_excursion_moves_convergence_and_ending_outside_means_never() {
        let t = trace(&[(0.0, 8), (10.0, 20), (14.0, 8), (30.0, 8)]);
        let (at, _) = convergence(&t, 1.0);
        assert!(at.is_some_and(|a| (13.9..14.2).contains(&a)), "{at:?}");
        let t = trace(&[(0.0, 8), (28.0, 30), (30.0, 30)]);
        assert_eq!(convergence(&t, 1.0).0, None, "still moving at the end");
        let t = trace(&[(0.0, 8), (29.5, 12), (30.0, 12)]);
        assert_eq!(convergence(&t, 1.0).0, Some(0.0), "a probe at the end");
    }

    #[test]
    fn verdict_applies_the_goals() {
        let stats = |ops, p99| WindowStats {
            ops_per_sec: ops,
            p99: Duration::from_millis(p99),
            errors: 0,
        };
        let best = Fixed {
            size: 4,
            stats: stats(1000.0, 10),
        };
        let a = |ops, p99, at| Adaptive {
            converged_after: at,
            settled: 5,
            path: vec![1, 5],
            stats: stats(ops, p99),
        };
        assert!(verdict(&best, &a(950.0, 11, Some(5.0))).2);
        assert!(!verdict(&best, &a(850.0, 11, Some(5.0))).2, "throughput");
        assert!(!verdict(&best, &a(950.0, 13, Some(5.0))).2, "p99");
        assert!(!verdict(&best, &a(950.0, 11, Some(31.0))).2, "too slow");
        assert!(!verdict(&best, &a(950.0, 11, None)).2, "never");
        let table = side_by_side(&[("cpu", Some(best), a(950.0, 11, Some(5.0)))]);
        assert!(table.contains("met") && table.contains("0.95"), "{table}");
    }
}

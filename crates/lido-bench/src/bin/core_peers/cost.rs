//! What lido's default observability costs: lido (defaults: wait/hold/connect
//! histograms, counters, leak detection) against lido-bare (histograms and
//! leak detection off), cell by cell, from the same run.

use crate::report::{ops, Row};

/// Prints the throughput lost to the defaults, per cell and overall.
pub fn observability_cost(rows: &[Row], lido: usize, bare: usize) {
    println!();
    println!(
        "## observability cost (lido defaults vs lido-bare: statistics and leak detection off)"
    );
    println!(
        "#  cost = 1 - lido ops/s ÷ lido-bare ops/s (negative: within noise, lido was faster)"
    );
    let mut logs = Vec::new();
    let mut worst: Option<(&Row, f64)> = None;
    for r in rows {
        let (on, off) = (r.ops[lido], r.ops[bare]);
        if !(on.is_finite() && off.is_finite() && off > 0.0) {
            continue;
        }
        let cost = 1.0 - on / off;
        logs.push((on / off).ln());
        println!(
            "  hold={:<5} size={:>2} tasks={:>4}: lido {} vs bare {}: cost {:+.1}%",
            r.hold,
            r.size,
            r.tasks,
            ops(on),
            ops(off),
            cost * 100.0
        );
        if worst.is_none_or(|(_, w)| cost > w) {
            worst = Some((r, cost));
        }
    }
    if logs.is_empty() {
        return;
    }
    let mean = (logs.iter().sum::<f64>() / logs.len() as f64).exp();
    println!(
        "  over {} cells: geometric-mean cost {:+.1}%",
        logs.len(),
        (1.0 - mean) * 100.0
    );
    if let Some((r, w)) = worst {
        println!(
            "  worst cell: hold={} size={} tasks={}: {:+.1}%",
            r.hold,
            r.size,
            r.tasks,
            w * 100.0
        );
    }
}

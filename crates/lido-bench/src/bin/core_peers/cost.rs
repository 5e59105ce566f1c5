//! What lido's default observability costs, cell by cell, from the same run:
//! the statistics (lido vs lido-nostats: the wait/hold/connect histograms;
//! the counters stay) and leak detection (lido-nostats vs lido-bare).

use crate::report::{ops, Row};

/// Prints the throughput the `on` column loses against the `off` column,
/// per cell and overall; `names` are the two columns' names.
pub fn observability_cost(rows: &[Row], on: usize, off: usize, what: &str, names: (&str, &str)) {
    let (on_name, off_name) = names;
    println!();
    println!("## cost of {what} ({on_name} vs {off_name})");
    println!(
        "#  cost = 1 - {on_name} ops/s ÷ {off_name} ops/s (negative: within noise, {on_name} was faster)"
    );
    let mut logs = Vec::new();
    let mut worst: Option<(&Row, f64)> = None;
    for r in rows {
        let (a, b) = (r.ops[on], r.ops[off]);
        if !(a.is_finite() && b.is_finite() && b > 0.0) {
            continue;
        }
        let cost = 1.0 - a / b;
        logs.push((a / b).ln());
        println!(
            "  hold={:<5} size={:>2} tasks={:>4}: {} vs {}: cost {:+.1}%",
            r.hold,
            r.size,
            r.tasks,
            ops(a),
            ops(b),
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

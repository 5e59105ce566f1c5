//! Formatting, the summary against the targets, and the fairness table.

use std::time::Duration;

use crate::args::{Args, Hold, Kind};
use crate::measure::fairness_kind;

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn ops(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else {
        format!("{:.0}k", x / 1e3)
    }
}

fn us(d: Duration) -> String {
    let us = d.as_micros();
    if us >= 10_000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{us}µs")
    }
}

pub struct Row {
    pub hold: Hold,
    pub size: usize,
    pub tasks: usize,
    /// Median ops/s per pool, in `Args::pools` order (NaN when not run or failed).
    pub ops: Vec<f64>,
    /// Each repetition's ops/s per pool, in `Args::pools` order, then in
    /// repetition order (NaN where a run failed). Repetition `i` of every
    /// pool ran back to back, so their ratio is a side-by-side figure.
    pub reps: Vec<Vec<f64>>,
}

impl Row {
    pub fn new(hold: Hold, size: usize, tasks: usize, reps: Vec<Vec<f64>>) -> Self {
        let ops = reps.iter().cloned().map(median).collect();
        Self {
            hold,
            size,
            tasks,
            ops,
            reps,
        }
    }

    /// Pool `a` ÷ pool `b` in each repetition (NaN where either failed).
    pub fn rep_ratios(&self, a: usize, b: usize) -> Vec<f64> {
        self.reps[a]
            .iter()
            .zip(&self.reps[b])
            .map(|(x, y)| x / y)
            .collect()
    }

    /// The median over repetitions of pool `a` ÷ pool `b`.
    pub fn ratio(&self, a: usize, b: usize) -> f64 {
        let rs: Vec<f64> = self
            .rep_ratios(a, b)
            .into_iter()
            .filter(|r| r.is_finite())
            .collect();
        median(rs)
    }

    /// Every repetition's figures: each pool's ops/s, then lido ÷ each peer.
    pub fn reps_line(
        &self,
        names: &[&str],
        lido: Option<usize>,
        peers: &[(usize, Kind)],
    ) -> String {
        let mut line = String::from("      each rep:");
        for (i, name) in names.iter().enumerate() {
            let v: Vec<String> = self.reps[i].iter().map(|x| ops(*x)).collect();
            line.push_str(&format!(" {name} {} |", v.join(" ")));
        }
        if let Some(li) = lido {
            for (pi, k) in peers {
                let v: Vec<String> = self
                    .rep_ratios(li, *pi)
                    .iter()
                    .map(|r| fmt_ratio(*r))
                    .collect();
                line.push_str(&format!(" lido/{} {} |", k.name(), v.join(" ")));
            }
        }
        line.trim_end_matches(" |").to_owned()
    }
}

/// A ratio with two decimals ("-" when there is none).
pub fn fmt_ratio(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2}")
    } else {
        "-".into()
    }
}

pub fn summary(rows: &[Row], lido_ix: Option<usize>, peers: &[(usize, Kind)]) {
    let Some(li) = lido_ix else {
        println!("## summary: lido not selected, no ratios");
        return;
    };
    println!("## summary");
    let holds: Vec<Hold> = {
        let mut h: Vec<Hold> = rows.iter().map(|r| r.hold).collect();
        h.dedup();
        h
    };
    for hold in holds {
        let mut line = format!("  hold={hold}: geometric mean of lido/peer over cells:");
        for (pi, k) in peers {
            let logs: Vec<f64> = rows
                .iter()
                .filter(|r| r.hold == hold)
                .map(|r| r.ratio(li, *pi))
                .filter(|x| x.is_finite() && *x > 0.0)
                .map(f64::ln)
                .collect();
            if !logs.is_empty() {
                let g = (logs.iter().sum::<f64>() / logs.len() as f64).exp();
                line.push_str(&format!(" {}={g:.2}", k.name()));
            }
        }
        println!("{line}");
    }

    let mut behind = Vec::new();
    for r in rows {
        let best = peers
            .iter()
            .filter(|(pi, _)| r.ops[*pi].is_finite())
            .max_by(|a, b| r.ops[a.0].total_cmp(&r.ops[b.0]));
        if let Some((pi, k)) = best {
            if r.ratio(li, *pi) < 1.0 {
                behind.push(format!(
                    "    hold={:<5} size={:>2} tasks={:>4}: lido {} < {} {} (lido/{} = {})",
                    r.hold,
                    r.size,
                    r.tasks,
                    ops(r.ops[li]),
                    k.name(),
                    ops(r.ops[*pi]),
                    k.name(),
                    fmt_ratio(r.ratio(li, *pi))
                ));
            }
        }
    }
    println!(
        "  cells where lido < best peer: {} of {}",
        behind.len(),
        rows.len()
    );
    for b in &behind {
        println!("{b}");
    }

    if let Some((di, _)) = peers.iter().find(|(_, k)| *k == Kind::Deadpool) {
        let contended: Vec<&Row> = rows.iter().filter(|r| r.tasks > r.size).collect();
        let slow: Vec<&&Row> = contended
            .iter()
            .filter(|r| r.ratio(li, *di) < 1.5)
            .collect();
        println!(
            "  cells where tasks > size and lido < 1.5x deadpool: {} of {}",
            slow.len(),
            contended.len()
        );
        for r in slow {
            println!(
                "    hold={:<5} size={:>2} tasks={:>4}: lido {} vs deadpool {} (lido/deadpool = {})",
                r.hold,
                r.size,
                r.tasks,
                ops(r.ops[li]),
                ops(r.ops[*di]),
                fmt_ratio(r.ratio(li, *di))
            );
        }
    }
}

pub async fn fairness_report(args: &Args, kinds: &[Kind], total: u64) {
    println!();
    println!(
        "## FIFO fairness (tasks > size; {total} gets per cell drawn from a shared budget; \
         each guard held across one yield; informational, nothing asserted)"
    );
    println!(
        "#  per-task completed gets: min / median / max, max÷min, Jain index (1.0 = perfectly even); \
         get() wait: p50 / p99 / p99.9 / max"
    );
    let header = format!(
        "{:<8} {:>4} {:>5} {:>8} {:>8} {:>8} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8}",
        "pool",
        "size",
        "tasks",
        "min",
        "median",
        "max",
        "max÷min",
        "jain",
        "p50",
        "p99",
        "p99.9",
        "max"
    );
    println!("{header}");
    println!("{}", "-".repeat(header.chars().count()));
    for &size in &args.sizes {
        for &tasks in &args.tasks {
            if tasks <= size {
                continue;
            }
            for &kind in kinds {
                match fairness_kind(kind, size, tasks, total).await {
                    Ok(f) => {
                        let mut c = f.counts.clone();
                        c.sort_unstable();
                        let (min, max) = (c[0], c[c.len() - 1]);
                        let med = c[c.len() / 2];
                        let sum: f64 = c.iter().map(|&x| x as f64).sum();
                        let sq: f64 = c.iter().map(|&x| (x as f64) * (x as f64)).sum();
                        let jain = if sq > 0.0 {
                            sum * sum / (c.len() as f64 * sq)
                        } else {
                            f64::NAN
                        };
                        let spread = if min > 0 {
                            format!("{:.2}", max as f64 / min as f64)
                        } else {
                            "inf".into()
                        };
                        let mut line = format!(
                            "{:<8} {:>4} {:>5} {:>8} {:>8} {:>8} {:>7} {:>6.3} {:>8} {:>8} {:>8} {:>8}",
                            kind.name(),
                            size,
                            tasks,
                            min,
                            med,
                            max,
                            spread,
                            jain,
                            us(f.waits.quantile(0.5)),
                            us(f.waits.quantile(0.99)),
                            us(f.waits.quantile(0.999)),
                            us(f.waits.max())
                        );
                        if f.failed > 0 {
                            line.push_str(&format!("  ({} failed gets)", f.failed));
                        }
                        println!("{line}");
                    }
                    Err(e) => println!("{:<8} {:>4} {:>5}  error: {e}", kind.name(), size, tasks),
                }
            }
        }
    }
}

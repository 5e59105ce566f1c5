//! Runs the workload at each pool size for a fixed duration and measures it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

use super::report::SizeResult;
use super::target::{BenchPool, BenchTarget, OpError};

/// How to run the sweep.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Pool sizes to try.
    pub sizes: Vec<usize>,
    /// Concurrent client tasks.
    pub tasks: usize,
    /// Measured time per size.
    pub duration: Duration,
    /// Fraction of operations that write (0.0–1.0).
    pub write_ratio: f64,
    /// Show a progress bar.
    pub progress: bool,
}

#[derive(Default)]
struct TaskOutcome {
    ops: u64,
    timeouts: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Option<Histogram<u64>>,
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds are valid")
}

async fn client(pool: Arc<dyn BenchPool>, stop: Arc<AtomicBool>, write_ratio: f64) -> TaskOutcome {
    let mut out = TaskOutcome {
        latency: Some(new_hist()),
        ..Default::default()
    };
    let mut rng = fastrand::Rng::new();
    while !stop.load(Ordering::Relaxed) {
        let write = rng.f64() < write_ratio;
        let started = Instant::now();
        match pool.op(write).await {
            Ok(()) => {
                out.ops += 1;
                let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                if let Some(h) = out.latency.as_mut() {
                    h.saturating_record(us.max(1));
                }
            }
            Err(OpError::AcquireTimeout) => out.timeouts += 1,
            Err(OpError::Other(e)) => {
                out.errors += 1;
                out.first_error.get_or_insert(e);
            }
        }
    }
    out
}

/// Runs every size in `plan` against `target`.
pub async fn sweep(target: &dyn BenchTarget, plan: &Plan) -> Result<Vec<SizeResult>, String> {
    target.prepare().await?;
    let bar = progress_bar(plan);
    let mut results = Vec::with_capacity(plan.sizes.len());
    for &size in &plan.sizes {
        bar.set_message(format!("pool size {size}"));
        let result = run_size(target, plan, size, &bar).await?;
        results.push(result);
    }
    bar.finish_and_clear();
    Ok(results)
}

fn progress_bar(plan: &Plan) -> ProgressBar {
    if !plan.progress {
        return ProgressBar::hidden();
    }
    let total = plan.duration.as_millis() as u64 * plan.sizes.len() as u64;
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {msg:16} [{bar:40}] {percent:>3}% ({eta} left)")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

async fn run_size(
    target: &dyn BenchTarget,
    plan: &Plan,
    size: usize,
    bar: &ProgressBar,
) -> Result<SizeResult, String> {
    let pool = target.open(size).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..plan.tasks)
        .map(|_| {
            tokio::spawn(client(
                Arc::clone(&pool),
                Arc::clone(&stop),
                plan.write_ratio,
            ))
        })
        .collect();
    let started = Instant::now();
    let tick = Duration::from_millis(100);
    while started.elapsed() < plan.duration {
        tokio::time::sleep(tick.min(plan.duration.saturating_sub(started.elapsed()))).await;
        bar.inc(tick.as_millis() as u64);
    }
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut total = TaskOutcome {
        latency: Some(new_hist()),
        ..Default::default()
    };
    for h in handles {
        let out = h.await.map_err(|e| format!("benchmark task failed: {e}"))?;
        total.ops += out.ops;
        total.timeouts += out.timeouts;
        total.errors += out.errors;
        if total.first_error.is_none() {
            total.first_error = out.first_error;
        }
        if let (Some(t), Some(h)) = (total.latency.as_mut(), out.latency.as_ref()) {
            t.add(h)
                .map_err(|e| format!("merging latency histograms: {e}"))?;
        }
    }
    let lat = total.latency.unwrap_or_else(new_hist);
    let q = |p: f64| Duration::from_micros(lat.value_at_quantile(p));
    let result = SizeResult {
        size,
        ops_per_sec: total.ops as f64 / elapsed.as_secs_f64(),
        p50: q(0.50),
        p95: q(0.95),
        p99: q(0.99),
        acquire_wait_p99: pool.acquire_wait_p99(),
        timeouts: total.timeouts.max(pool.acquire_timeouts()),
        errors: total.errors,
        first_error: total.first_error,
    };
    pool.close().await;
    Ok(result)
}

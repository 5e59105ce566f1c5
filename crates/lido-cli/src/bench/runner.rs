//! Runs the workload at each pool size: a warm-up, then a fixed measured
//! window in which only operations that finish inside it count.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

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
    /// Unmeasured time per size before the window (pool filled, caches warm).
    pub warmup: Duration,
    /// Measured time per size.
    pub duration: Duration,
    /// Fraction of operations that write (0.0–1.0).
    pub write_ratio: f64,
    /// Show a progress bar.
    pub progress: bool,
}

/// The measured window: operations that end inside `[start, stop]` count.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    stop: Instant,
}

impl Window {
    fn contains(&self, t: Instant) -> bool {
        self.start <= t && t <= self.stop
    }
}

struct TaskOutcome {
    ops: u64,
    timeouts: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Histogram<u64>,
    wait: Histogram<u64>,
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds are valid")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl TaskOutcome {
    fn new() -> Self {
        Self {
            ops: 0,
            timeouts: 0,
            errors: 0,
            first_error: None,
            latency: new_hist(),
            wait: new_hist(),
        }
    }

    fn merge(&mut self, other: Self) -> Result<(), String> {
        self.ops += other.ops;
        self.timeouts += other.timeouts;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latency
            .add(&other.latency)
            .and_then(|()| self.wait.add(&other.wait))
            .map_err(|e| format!("merging latency histograms: {e}"))
    }
}

async fn client(pool: Arc<dyn BenchPool>, window: Window, write_ratio: f64) -> TaskOutcome {
    let mut out = TaskOutcome::new();
    let mut rng = fastrand::Rng::new();
    // One clock reading per operation: each end is the next start.
    let mut started = Instant::now();
    while started < window.stop {
        let write = rng.f64() < write_ratio;
        let result = pool.op(write).await;
        let ended = Instant::now();
        let began = std::mem::replace(&mut started, ended);
        if !window.contains(ended) {
            continue; // warm-up, or finished after the stop
        }
        match result {
            Ok(waited) => {
                out.ops += 1;
                out.latency.saturating_record(micros(ended - began));
                out.wait.saturating_record(micros(waited));
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
    let per_size = (plan.warmup + plan.duration).as_millis() as u64;
    styled_bar(per_size * plan.sizes.len() as u64)
}

/// A progress bar on stderr counting `total_ms` milliseconds of benchmark time.
pub fn styled_bar(total_ms: u64) -> ProgressBar {
    let bar = ProgressBar::new(total_ms);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {msg:16} [{bar:40}] {percent:>3}% ({eta} left)")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Sleeps until `until`, moving the bar as time passes.
async fn wait_with_bar(until: Instant, bar: &ProgressBar) {
    let tick = Duration::from_millis(100);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let step = tick.min(left);
        tokio::time::sleep(step).await;
        bar.inc(step.as_millis() as u64);
    }
}

async fn run_size(
    target: &dyn BenchTarget,
    plan: &Plan,
    size: usize,
    bar: &ProgressBar,
) -> Result<SizeResult, String> {
    let pool = target.open(size).await?;
    let start = Instant::now() + plan.warmup;
    let window = Window {
        start,
        stop: start + plan.duration,
    };
    let handles: Vec<_> = (0..plan.tasks)
        .map(|_| tokio::spawn(client(Arc::clone(&pool), window, plan.write_ratio)))
        .collect();
    wait_with_bar(window.stop, bar).await;
    let mut total = TaskOutcome::new();
    for h in handles {
        let out = h.await.map_err(|e| format!("benchmark task failed: {e}"))?;
        total.merge(out)?;
    }
    pool.close().await;
    let q = |h: &Histogram<u64>, p: f64| Duration::from_micros(h.value_at_quantile(p));
    Ok(SizeResult {
        size,
        ops_per_sec: total.ops as f64 / plan.duration.as_secs_f64(),
        p50: q(&total.latency, 0.50),
        p95: q(&total.latency, 0.95),
        p99: q(&total.latency, 0.99),
        acquire_wait_p99: q(&total.wait, 0.99),
        timeouts: total.timeouts,
        errors: total.errors,
        first_error: total.first_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::target::BoxFut;

    /// Each operation takes 30 ms.
    struct Slow;

    impl BenchPool for Slow {
        fn op(&self, _write: bool) -> BoxFut<'_, Result<Duration, OpError>> {
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                Ok(Duration::ZERO)
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn only_operations_ending_inside_the_window_count() {
        let start = Instant::now() + Duration::from_millis(100);
        let window = Window {
            start,
            stop: start + Duration::from_millis(100),
        };
        let out = client(Arc::new(Slow), window, 0.0).await;
        // Paused clock, 30 ms per op: ops end at 30, 60, 90 (warm-up), 120,
        // 150, 180 (counted) and 210 ms (after the stop, not counted).
        assert_eq!(out.ops, 3);
        assert_eq!(out.latency.len(), 3);
    }
}

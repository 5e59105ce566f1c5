//! Drives a pool with closed-loop client tasks through a schedule of
//! phases, recording every operation (when it ended, how long it took) and
//! the pool's target size every 100 ms.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use lido_postgres::{PgError, PgPool};
use tokio::time::Instant;

use super::workload::Phase;

/// Index meaning "stop".
const STOP: usize = usize::MAX;

/// One finished operation.
#[derive(Debug, Clone, Copy)]
pub struct Op {
    /// Seconds after the run started that it ended.
    pub end: f64,
    /// Its latency (acquire + statement), µs.
    pub micros: u64,
    /// Whether it succeeded.
    pub ok: bool,
}

/// Everything a run recorded.
#[derive(Debug, Default)]
pub struct Recording {
    /// Every operation, in no particular order.
    pub ops: Vec<Op>,
    /// `(seconds after start, target size)` every 100 ms.
    pub targets: Vec<(f64, usize)>,
    /// The first error seen, if any.
    pub first_error: Option<String>,
}

/// Throughput and latency in one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowStats {
    /// Successful operations per second.
    pub ops_per_sec: f64,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Failed operations.
    pub errors: u64,
}

impl Recording {
    /// Stats of the operations that ended in `[from, to)` seconds.
    pub fn window(&self, from: f64, to: f64) -> WindowStats {
        let mut hist =
            Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("static histogram bounds");
        let mut errors = 0;
        for op in self.ops.iter().filter(|o| o.end >= from && o.end < to) {
            if op.ok {
                hist.saturating_record(op.micros.max(1));
            } else {
                errors += 1;
            }
        }
        let secs = (to - from).max(1e-9);
        WindowStats {
            ops_per_sec: hist.len() as f64 / secs,
            p99: Duration::from_micros(hist.value_at_quantile(0.99)),
            errors,
        }
    }
}

async fn client(
    pool: PgPool,
    phases: Arc<[Phase]>,
    now: Arc<AtomicUsize>,
    t0: Instant,
) -> Recording {
    let mut rec = Recording::default();
    loop {
        let i = now.load(Ordering::Acquire);
        let Some(&phase) = phases.get(i) else {
            return rec; // STOP
        };
        let began = Instant::now();
        let result: Result<Duration, PgError> = phase.run(&pool).await;
        let ended = Instant::now();
        let ok = match result {
            Ok(_) => true,
            Err(e) => {
                rec.first_error
                    .get_or_insert_with(|| crate::util::chain(&e));
                false
            }
        };
        rec.ops.push(Op {
            end: (ended - t0).as_secs_f64(),
            micros: u64::try_from((ended - began).as_micros()).unwrap_or(u64::MAX),
            ok,
        });
    }
}

/// Runs `tasks` clients on `pool` through `schedule` (each phase for its
/// duration, back to back), then stops them and merges what they recorded.
pub async fn drive(pool: &PgPool, tasks: usize, schedule: &[(Phase, Duration)]) -> Recording {
    let phases: Arc<[Phase]> = schedule.iter().map(|(p, _)| *p).collect();
    let now = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let c = client(pool.clone(), Arc::clone(&phases), Arc::clone(&now), t0);
            tokio::spawn(c)
        })
        .collect();
    let mut targets = Vec::new();
    let mut until = t0;
    for (i, (_, length)) in schedule.iter().enumerate() {
        now.store(i, Ordering::Release);
        until += *length;
        while Instant::now() < until {
            targets.push((
                (Instant::now() - t0).as_secs_f64(),
                pool.core().target_size(),
            ));
            let left = until.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(Duration::from_millis(100))).await;
        }
    }
    now.store(STOP, Ordering::Release);
    let mut all = Recording {
        targets,
        ..Recording::default()
    };
    for h in handles {
        if let Ok(rec) = h.await {
            all.ops.extend(rec.ops);
            if all.first_error.is_none() {
                all.first_error = rec.first_error;
            }
        }
    }
    all
}

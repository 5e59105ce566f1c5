//! The measurements: a timed get/drop loop over many tasks, and a fairness
//! run drawing from a shared budget.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lido_core::Histogram;
use tokio::sync::{mpsc, oneshot};

use crate::args::{Hold, Kind};
use crate::pools::{build_bb8, build_deadpool, build_lido, build_mobc, BenchPool};

/// How a task holds each guard (`Hold`, with the echo task `Hold::Echo`
/// needs, started only for it).
#[derive(Clone)]
enum Holding {
    Nothing,
    Yield,
    /// A round trip to a task that answers every request at once; it ends
    /// when the last handle is dropped.
    Echo(mpsc::UnboundedSender<oneshot::Sender<()>>),
}

impl Holding {
    fn new(hold: Hold) -> Self {
        match hold {
            Hold::None => Self::Nothing,
            Hold::Yield => Self::Yield,
            Hold::Echo => {
                let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
                tokio::spawn(async move {
                    while let Some(reply) = rx.recv().await {
                        let _ = reply.send(());
                    }
                });
                Self::Echo(tx)
            }
        }
    }

    async fn hold(&self) {
        match self {
            Self::Nothing => {}
            Self::Yield => tokio::task::yield_now().await,
            Self::Echo(echo) => {
                let (tx, rx) = oneshot::channel();
                if echo.send(tx).is_ok() {
                    let _ = rx.await;
                }
            }
        }
    }
}

/// One get; hold; drop. `false` when the get failed.
async fn cycle<P: BenchPool>(pool: &P, holding: &Holding) -> bool {
    match pool.acquire().await {
        Some(guard) => {
            holding.hold().await;
            drop(guard);
            true
        }
        None => false,
    }
}

/// Opens `size` connections (holds that many guards at once), returns them,
/// and checks the pool reports `size` open.
async fn fill<P: BenchPool>(pool: &P, size: usize) -> Result<(), String> {
    let mut held = Vec::with_capacity(size);
    for _ in 0..size {
        match pool.acquire().await {
            Some(g) => held.push(g),
            None => return Err("get failed while filling the pool".into()),
        }
    }
    drop(held);
    for _ in 0..100 {
        if pool.open().await == size {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Err(format!(
        "pool reports {} open after filling to {size}",
        pool.open().await
    ))
}

/// Spawns `tasks` tasks that each do `per_task` cycles; returns the wall time
/// from the first spawn to the last join and the number of failed gets.
async fn timed<P: BenchPool>(pool: &P, tasks: usize, per_task: u64, hold: Hold) -> (Duration, u64) {
    let holding = Holding::new(hold);
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let pool = pool.clone();
            let holding = holding.clone();
            tokio::spawn(async move {
                let mut failed = 0u64;
                for _ in 0..per_task {
                    if !cycle(&pool, &holding).await {
                        failed += 1;
                    }
                }
                failed
            })
        })
        .collect();
    let mut failed = 0;
    for h in handles {
        failed += h.await.unwrap_or(per_task);
    }
    (start.elapsed(), failed)
}

pub struct Sample {
    pub ops_per_sec: f64,
    pub failed: u64,
}

/// Fill, untimed warm-up pass, timed pass; the pool is dropped afterwards.
async fn measure<P: BenchPool>(
    pool: P,
    size: usize,
    tasks: usize,
    per_task: u64,
    hold: Hold,
) -> Result<Sample, String> {
    fill(&pool, size).await?;
    let warm_per_task = (per_task / 16).max(1);
    timed(&pool, tasks, warm_per_task, hold).await;
    let (took, failed) = timed(&pool, tasks, per_task, hold).await;
    let total = per_task * tasks as u64;
    Ok(Sample {
        ops_per_sec: total as f64 / took.as_secs_f64(),
        failed,
    })
}

pub async fn measure_kind(
    kind: Kind,
    size: usize,
    tasks: usize,
    per_task: u64,
    hold: Hold,
) -> Result<Sample, String> {
    match kind {
        Kind::Lido | Kind::LidoNostats | Kind::LidoBare => {
            measure(build_lido(kind, size).await?, size, tasks, per_task, hold).await
        }
        Kind::Deadpool => measure(build_deadpool(size).await?, size, tasks, per_task, hold).await,
        Kind::Bb8 => measure(build_bb8(size).await?, size, tasks, per_task, hold).await,
        Kind::Mobc => measure(build_mobc(size).await?, size, tasks, per_task, hold).await,
    }
}

pub struct Fairness {
    pub counts: Vec<u64>,
    pub waits: Arc<Histogram>,
    pub failed: u64,
}

/// `tasks` tasks start together and draw from a shared budget of `total` gets until it is spent,
/// each holding its guard across a yield; records per-task completed gets and
/// the time each `get()` took.
async fn fairness<P: BenchPool>(pool: &P, tasks: usize, total: u64) -> Fairness {
    let budget = Arc::new(AtomicU64::new(total));
    let waits = Arc::new(Histogram::default());
    // Every task starts together, so early-spawned tasks cannot drain the
    // budget before the last ones exist.
    let gate = Arc::new(tokio::sync::Barrier::new(tasks + 1));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let pool = pool.clone();
            let budget = Arc::clone(&budget);
            let waits = Arc::clone(&waits);
            let gate = Arc::clone(&gate);
            tokio::spawn(async move {
                gate.wait().await;
                let (mut done, mut failed) = (0u64, 0u64);
                while budget
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                    .is_ok()
                {
                    let start = Instant::now();
                    let guard = pool.acquire().await;
                    waits.record(start.elapsed());
                    match guard {
                        Some(g) => {
                            tokio::task::yield_now().await;
                            drop(g);
                            done += 1;
                        }
                        None => failed += 1,
                    }
                }
                (done, failed)
            })
        })
        .collect();
    gate.wait().await;
    let mut counts = Vec::with_capacity(tasks);
    let mut failed = 0;
    for h in handles {
        let (d, f) = h.await.unwrap_or((0, 0));
        counts.push(d);
        failed += f;
    }
    Fairness {
        counts,
        waits,
        failed,
    }
}

pub async fn fairness_kind(
    kind: Kind,
    size: usize,
    tasks: usize,
    total: u64,
) -> Result<Fairness, String> {
    async fn go<P: BenchPool>(
        pool: P,
        size: usize,
        tasks: usize,
        total: u64,
    ) -> Result<Fairness, String> {
        fill(&pool, size).await?;
        Ok(fairness(&pool, tasks, total).await)
    }
    match kind {
        Kind::Lido | Kind::LidoNostats | Kind::LidoBare => {
            go(build_lido(kind, size).await?, size, tasks, total).await
        }
        Kind::Deadpool => go(build_deadpool(size).await?, size, tasks, total).await,
        Kind::Bb8 => go(build_bb8(size).await?, size, tasks, total).await,
        Kind::Mobc => go(build_mobc(size).await?, size, tasks, total).await,
    }
}

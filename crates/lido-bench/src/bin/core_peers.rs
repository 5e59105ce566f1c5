//! `core_peers`: lido-core beside deadpool 0.13 (managed), bb8 0.9 and mobc 0.9
//! in one run, each pool with a do-nothing manager, in the method of the public
//! `async-pool-benchmark` (bikeshedder): a fixed number of gets per cell split
//! evenly over `tasks` spawned tasks, each get followed by dropping the guard.
//!
//! * Every pool runs on the same multi-thread tokio runtime (all cores by default).
//! * Every pool keeps its default settings except its size (mobc also gets
//!   `max_idle = size`, since its default of 2 idle would close and reopen
//!   connections on every return above two).
//! * Before each timed run the pool is filled to `size` (that many guards held
//!   at once, then dropped) and exercised with a short untimed pass.
//! * Each cell is repeated `reps` times (pool order rotated per repetition, a
//!   fresh pool each time) and the median ops/s is reported.
//! * `hold=yield` holds each guard across one `tokio::task::yield_now()`, so
//!   tasks really overlap their leases and cells with `tasks > size` exercise
//!   the wait queue even on a machine with few cores; `hold=none` is the
//!   public benchmark's exact loop (get, drop).
//!
//! After the table it prints a summary and, unless `--fairness off`, a FIFO
//! fairness check (per-task completed gets and the wait distribution when
//! `tasks > size`, guards held across a yield). Nothing is asserted.
//!
//! ```text
//! cargo run --release -p lido-bench --bin core_peers -- --help
//! LIDO_BENCH_GETS=262144 cargo run --release -p lido-bench --bin core_peers
//! cargo run --release -p lido-bench --bin core_peers -- --sizes 8 --tasks 1,64 --hold yield
//! ```

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use lido_core::Histogram;

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

/// How a task holds each guard before dropping it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Hold {
    /// get, drop (the public benchmark's loop).
    None,
    /// get, `yield_now().await`, drop.
    Yield,
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hold::None => "none",
            Hold::Yield => "yield",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kind {
    Lido,
    /// lido with `leak_threshold(None)` (no lease registry); not a peer,
    /// shown only to price leak tracking. Not run unless asked for.
    LidoLean,
    Deadpool,
    Bb8,
    Mobc,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Lido => "lido",
            Kind::LidoLean => "lido-lean",
            Kind::Deadpool => "deadpool",
            Kind::Bb8 => "bb8",
            Kind::Mobc => "mobc",
        }
    }

    /// A pool lido is compared against (ratios, summary).
    fn is_peer(self) -> bool {
        !matches!(self, Kind::Lido | Kind::LidoLean)
    }
}

/// Which pools the fairness check runs for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FairnessMode {
    Off,
    Lido,
    All,
}

/// lido-core vs deadpool 0.13 / bb8 0.9 / mobc 0.9 with do-nothing managers.
#[derive(Parser, Debug)]
#[command(name = "core_peers")]
struct Args {
    /// Pool sizes (comma separated).
    #[arg(long, env = "LIDO_BENCH_SIZES", value_delimiter = ',', default_values_t = [4usize, 8, 16, 32])]
    sizes: Vec<usize>,
    /// Concurrent task counts (comma separated).
    #[arg(long, env = "LIDO_BENCH_TASKS", value_delimiter = ',', default_values_t = [1usize, 4, 16, 64, 256, 1024])]
    tasks: Vec<usize>,
    /// Total gets per cell, split evenly across the tasks.
    #[arg(long, env = "LIDO_BENCH_GETS", default_value_t = 1 << 20)]
    gets: u64,
    /// Repetitions per cell (the median is reported).
    #[arg(long, env = "LIDO_BENCH_REPS", default_value_t = 3)]
    reps: usize,
    /// Hold modes to run (comma separated: none, yield).
    #[arg(long, env = "LIDO_BENCH_HOLD", value_delimiter = ',', default_values = ["none", "yield"])]
    hold: Vec<Hold>,
    /// Pools to run (comma separated: lido, deadpool, bb8, mobc; also
    /// lido-lean = lido with leak_threshold(None), shown but not a peer).
    #[arg(long, env = "LIDO_BENCH_POOLS", value_delimiter = ',', default_values = ["lido", "deadpool", "bb8", "mobc"])]
    pools: Vec<Kind>,
    /// FIFO fairness check after the table: off, lido, or all pools.
    #[arg(long, env = "LIDO_BENCH_FAIRNESS", default_value = "lido")]
    fairness: FairnessMode,
    /// Total gets per fairness cell (defaults to --gets / 4).
    #[arg(long, env = "LIDO_BENCH_FAIRNESS_GETS")]
    fairness_gets: Option<u64>,
    /// Runtime worker threads (defaults to all cores).
    #[arg(long, env = "LIDO_BENCH_THREADS")]
    threads: Option<usize>,
    /// Quick smoke run: sizes 8,32, tasks 1,64,1024, 2^16 gets, 1 rep.
    #[arg(long)]
    quick: bool,
}

// ---------------------------------------------------------------------------
// Do-nothing managers
// ---------------------------------------------------------------------------

struct LidoNop;

impl lido_core::Manager for LidoNop {
    type Connection = u64;
    type Error = Infallible;

    async fn connect(&self) -> Result<u64, Infallible> {
        Ok(0)
    }

    async fn check(&self, _conn: &mut u64) -> Result<(), Infallible> {
        Ok(())
    }
}

struct DeadpoolNop;

impl deadpool::managed::Manager for DeadpoolNop {
    type Type = u64;
    type Error = Infallible;

    async fn create(&self) -> Result<u64, Infallible> {
        Ok(0)
    }

    async fn recycle(
        &self,
        _conn: &mut u64,
        _metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

struct Bb8Nop;

impl bb8::ManageConnection for Bb8Nop {
    type Connection = u64;
    type Error = Infallible;

    async fn connect(&self) -> Result<u64, Infallible> {
        Ok(0)
    }

    async fn is_valid(&self, _conn: &mut u64) -> Result<(), Infallible> {
        Ok(())
    }

    fn has_broken(&self, _conn: &mut u64) -> bool {
        false
    }
}

struct MobcNop;

#[mobc::async_trait]
impl mobc::Manager for MobcNop {
    type Connection = u64;
    type Error = Infallible;

    async fn connect(&self) -> Result<u64, Infallible> {
        Ok(0)
    }

    async fn check(&self, conn: u64) -> Result<u64, Infallible> {
        Ok(conn)
    }
}

// ---------------------------------------------------------------------------
// One interface over the four pools
// ---------------------------------------------------------------------------

type LidoPool = lido_core::Pool<LidoNop>;
type DeadPool = deadpool::managed::Pool<DeadpoolNop>;
type Bb8Pool = bb8::Pool<Bb8Nop>;
type MobcPool = mobc::Pool<MobcNop>;

/// The operations the benchmark needs from a pool. `acquire` maps the pool's
/// own `get()` result to an `Option` and nothing else, the same for all pools.
trait BenchPool: Clone + Send + Sync + 'static {
    type Guard<'a>: Send
    where
        Self: 'a;

    fn acquire(&self) -> impl Future<Output = Option<Self::Guard<'_>>> + Send;

    /// Open connections (idle + in use) as the pool reports them.
    fn open(&self) -> impl Future<Output = usize> + Send;
}

impl BenchPool for LidoPool {
    type Guard<'a> = lido_core::Pooled<LidoNop>;

    async fn acquire(&self) -> Option<Self::Guard<'_>> {
        self.get().await.ok()
    }

    async fn open(&self) -> usize {
        self.status().size
    }
}

impl BenchPool for DeadPool {
    type Guard<'a> = deadpool::managed::Object<DeadpoolNop>;

    async fn acquire(&self) -> Option<Self::Guard<'_>> {
        self.get().await.ok()
    }

    async fn open(&self) -> usize {
        self.status().size
    }
}

impl BenchPool for Bb8Pool {
    type Guard<'a> = bb8::PooledConnection<'a, Bb8Nop>;

    async fn acquire(&self) -> Option<Self::Guard<'_>> {
        self.get().await.ok()
    }

    async fn open(&self) -> usize {
        self.state().connections as usize
    }
}

impl BenchPool for MobcPool {
    type Guard<'a> = mobc::Connection<MobcNop>;

    async fn acquire(&self) -> Option<Self::Guard<'_>> {
        self.get().await.ok()
    }

    async fn open(&self) -> usize {
        self.state().await.connections as usize
    }
}

async fn build_lido(size: usize) -> Result<LidoPool, String> {
    lido_core::Pool::builder(LidoNop)
        .max_size(size)
        .build()
        .await
        .map_err(|e| format!("lido build: {e}"))
}

async fn build_lido_lean(size: usize) -> Result<LidoPool, String> {
    lido_core::Pool::builder(LidoNop)
        .max_size(size)
        .leak_threshold(None)
        .build()
        .await
        .map_err(|e| format!("lido build: {e}"))
}

async fn build_deadpool(size: usize) -> Result<DeadPool, String> {
    deadpool::managed::Pool::builder(DeadpoolNop)
        .max_size(size)
        .build()
        .map_err(|e| format!("deadpool build: {e}"))
}

async fn build_bb8(size: usize) -> Result<Bb8Pool, String> {
    let size = u32::try_from(size).map_err(|e| format!("bb8 size: {e}"))?;
    bb8::Pool::builder()
        .max_size(size)
        .build(Bb8Nop)
        .await
        .map_err(|e| format!("bb8 build: {e:?}"))
}

async fn build_mobc(size: usize) -> Result<MobcPool, String> {
    let size = size as u64;
    Ok(mobc::Pool::builder()
        .max_open(size)
        .max_idle(size)
        .build(MobcNop))
}

// ---------------------------------------------------------------------------
// The measurements
// ---------------------------------------------------------------------------

/// One get; optionally hold across a yield; drop. `false` when the get failed.
async fn cycle<P: BenchPool>(pool: &P, hold: Hold) -> bool {
    match pool.acquire().await {
        Some(guard) => {
            if hold == Hold::Yield {
                tokio::task::yield_now().await;
            }
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
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut failed = 0u64;
                for _ in 0..per_task {
                    if !cycle(&pool, hold).await {
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

struct Sample {
    ops_per_sec: f64,
    failed: u64,
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

async fn measure_kind(
    kind: Kind,
    size: usize,
    tasks: usize,
    per_task: u64,
    hold: Hold,
) -> Result<Sample, String> {
    match kind {
        Kind::Lido => measure(build_lido(size).await?, size, tasks, per_task, hold).await,
        Kind::LidoLean => measure(build_lido_lean(size).await?, size, tasks, per_task, hold).await,
        Kind::Deadpool => measure(build_deadpool(size).await?, size, tasks, per_task, hold).await,
        Kind::Bb8 => measure(build_bb8(size).await?, size, tasks, per_task, hold).await,
        Kind::Mobc => measure(build_mobc(size).await?, size, tasks, per_task, hold).await,
    }
}

struct Fairness {
    counts: Vec<u64>,
    waits: Arc<Histogram>,
    failed: u64,
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

async fn fairness_kind(
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
        Kind::Lido => go(build_lido(size).await?, size, tasks, total).await,
        Kind::LidoLean => go(build_lido_lean(size).await?, size, tasks, total).await,
        Kind::Deadpool => go(build_deadpool(size).await?, size, tasks, total).await,
        Kind::Bb8 => go(build_bb8(size).await?, size, tasks, total).await,
        Kind::Mobc => go(build_mobc(size).await?, size, tasks, total).await,
    }
}

// ---------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------

fn median(mut v: Vec<f64>) -> f64 {
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

fn ops(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else {
        format!("{:.0}k", x / 1e3)
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b == 0.0 {
        "-".into()
    } else {
        format!("{:.2}", a / b)
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

struct Row {
    hold: Hold,
    size: usize,
    tasks: usize,
    /// Median ops/s per pool, in `Args::pools` order (NaN when not run or failed).
    ops: Vec<f64>,
}

fn main() {
    let mut args = Args::parse();
    if args.quick {
        args.sizes = vec![8, 32];
        args.tasks = vec![1, 64, 1024];
        args.gets = 1 << 16;
        args.reps = 1;
    }
    args.reps = args.reps.max(1);
    let mut seen = Vec::new();
    args.pools.retain(|k| {
        let first = !seen.contains(k);
        seen.push(*k);
        first
    });
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(std::num::NonZeroUsize::get)
            .unwrap_or(1)
    });
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("core_peers: cannot start the tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(run(args, threads));
}

async fn run(args: Args, threads: usize) {
    let pools = args.pools.clone();
    let lido_ix = pools.iter().position(|k| *k == Kind::Lido);
    let peers: Vec<(usize, Kind)> = pools
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, k)| k.is_peer())
        .collect();

    println!("# core_peers: lido-core vs deadpool 0.13 (managed) / bb8 0.9 / mobc 0.9, do-nothing managers");
    println!(
        "# tokio multi-thread runtime, {threads} worker threads; {} gets per cell split across the tasks; \
         median of {} reps; fill to size + untimed warm-up pass before each timed run",
        args.gets, args.reps
    );
    println!(
        "# ops/s = completed get+drop per second (higher is better); lido/X = lido ops/s ÷ X ops/s"
    );
    println!();

    let mut header = format!("{:<5} {:>4} {:>5}", "hold", "size", "tasks");
    for k in &pools {
        header.push_str(&format!(" {:>9}", k.name()));
    }
    if lido_ix.is_some() {
        for (_, k) in &peers {
            header.push_str(&format!(" {:>12}", format!("lido/{}", k.name())));
        }
    }
    println!("{header}");
    println!("{}", "-".repeat(header.chars().count()));

    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for &hold in &args.hold {
        for &size in &args.sizes {
            for &tasks in &args.tasks {
                let per_task = (args.gets / tasks as u64).max(1);
                let mut samples: Vec<Vec<f64>> = vec![Vec::new(); pools.len()];
                for rep in 0..args.reps {
                    for i in 0..pools.len() {
                        let ix = (i + rep) % pools.len();
                        let kind = pools[ix];
                        match measure_kind(kind, size, tasks, per_task, hold).await {
                            Ok(s) => {
                                if s.failed > 0 {
                                    failures.push(format!(
                                        "{} hold={hold} size={size} tasks={tasks}: {} failed gets",
                                        kind.name(),
                                        s.failed
                                    ));
                                }
                                samples[ix].push(s.ops_per_sec);
                            }
                            Err(e) => failures.push(format!(
                                "{} hold={hold} size={size} tasks={tasks}: {e}",
                                kind.name()
                            )),
                        }
                    }
                }
                let row = Row {
                    hold,
                    size,
                    tasks,
                    ops: samples.into_iter().map(median).collect(),
                };
                let mut line = format!("{:<5} {:>4} {:>5}", row.hold, row.size, row.tasks);
                for o in &row.ops {
                    line.push_str(&format!(" {:>9}", ops(*o)));
                }
                if let Some(li) = lido_ix {
                    for (pi, _) in &peers {
                        line.push_str(&format!(" {:>12}", ratio(row.ops[li], row.ops[*pi])));
                    }
                }
                println!("{line}");
                rows.push(row);
            }
        }
    }

    println!();
    summary(&rows, lido_ix, &peers);
    if !failures.is_empty() {
        println!();
        println!("## failures");
        for f in &failures {
            println!("  {f}");
        }
    }

    let fair_kinds: Vec<Kind> = match args.fairness {
        FairnessMode::Off => Vec::new(),
        FairnessMode::Lido => vec![Kind::Lido],
        FairnessMode::All => pools.clone(),
    };
    if !fair_kinds.is_empty() {
        let total = args.fairness_gets.unwrap_or(args.gets / 4).max(1);
        fairness_report(&args, &fair_kinds, total).await;
    }
}

fn summary(rows: &[Row], lido_ix: Option<usize>, peers: &[(usize, Kind)]) {
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
                .map(|r| r.ops[li] / r.ops[*pi])
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
            if r.ops[li] < r.ops[*pi] {
                behind.push(format!(
                    "    hold={:<5} size={:>2} tasks={:>4}: lido {} < {} {} (lido/{} = {})",
                    r.hold,
                    r.size,
                    r.tasks,
                    ops(r.ops[li]),
                    k.name(),
                    ops(r.ops[*pi]),
                    k.name(),
                    ratio(r.ops[li], r.ops[*pi])
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
            .filter(|r| r.ops[li] < 1.5 * r.ops[*di])
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
                ratio(r.ops[li], r.ops[*di])
            );
        }
    }
}

async fn fairness_report(args: &Args, kinds: &[Kind], total: u64) {
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

//! What observability costs, in one run on one throwaway server: the same
//! workload with all of it on and all of it off.
//!
//! - on: the defaults (statistics: durations, errors by class, the
//!   per-statement table; the slow-query log at 1 s), `tracing` spans under a
//!   `fmt` subscriber filtered at WARN (what a production service runs: the
//!   INFO spans are created but filtered out, WARN events such as slow
//!   queries and leaks would print), and a `/metrics` encoding of the pool
//!   (`lido_http::Metrics`, the PostgreSQL families included) every
//!   `LIDO_BENCH_SCRAPE_MS` while it runs;
//! - off: `statistics(false)`, `slow_query_threshold(None)`, the subscriber's
//!   filter switched to OFF, no scrapes.
//!
//! `cargo bench -p lido-postgres --bench observability`
//! Environment: `LIDO_BENCH_SECS` (measured seconds per cell, default 1),
//! `LIDO_BENCH_ROUNDS` (on/off pairs per workload, default 16),
//! `LIDO_BENCH_TASKS` (default 64), `LIDO_BENCH_SCRAPE_MS` (default 250),
//! `LIDO_BENCH_AA=1` (both sides off: the noise floor),
//! `LIDO_BENCH_ON_LEVEL` (the on side's filter, default `warn`; `info`
//! enables the query spans, as an OpenTelemetry exporter does, so their
//! attributes are worked out and recorded).
//!
//! 64 tasks share a pool of 16. Each round runs on then off (or off then
//! on, alternating) back to back. Columns: median throughput of the rounds;
//! "throughput cost", the mean ± standard error of the per-round drops
//! (noisy: client and server share the machine's cores); the client's CPU
//! time per operation (all its threads, `/proc/self/task/*/schedstat`); and
//! "CPU cost", the extra client CPU per operation as a share of the whole
//! machine's busy CPU per operation (`/proc/stat`), mean ± standard error:
//! the throughput a CPU-bound machine loses.

use std::future::Future;
use std::time::Duration;

use lido_http::Metrics;
use lido_postgres::{PgConfig, PgPool};
use lido_testkit::PgServer;
use tokio::time::Instant;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Registry};

/// Switches the process's subscriber between WARN (on) and OFF (off).
type Filter = reload::Handle<LevelFilter, Registry>;

fn install_tracing() -> Filter {
    let (filter, handle) = reload::Layer::new(LevelFilter::OFF);
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .init();
    handle
}

/// One side of the comparison: a pool and what runs beside it.
struct Side {
    pool: PgPool,
    /// The exporter scraped while this side runs (on only).
    metrics: Option<std::sync::Arc<Metrics>>,
    level: LevelFilter,
}

impl Side {
    /// Sets the subscriber's level and starts the periodic scrape.
    fn begin(&self, filter: &Filter) -> Option<tokio::task::JoinHandle<()>> {
        let level = self.level;
        filter.modify(|f| *f = level).expect("reload the filter");
        let metrics = self.metrics.clone()?;
        let every = Duration::from_millis(env("LIDO_BENCH_SCRAPE_MS", 250));
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let text = metrics.encode().expect("encode");
                assert!(text.contains("lido_pg_queries_total"));
            }
        }))
    }
}

const POOL: usize = 16;
const ROWS: i32 = 10_000;

#[derive(Clone, Copy)]
enum Query {
    Select1,
    Lookup,
}

impl Query {
    fn name(self) -> &'static str {
        match self {
            Query::Select1 => "SELECT 1",
            Query::Lookup => "SELECT v FROM kv WHERE id = $1",
        }
    }
}

fn env<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time this process has used, summed over its threads (Linux; 0 elsewhere).
fn client_cpu() -> Duration {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let ns: u64 = dir
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

/// Busy CPU time of the whole machine, client and server (Linux `/proc/stat`).
fn machine_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    Duration::from_millis((total - idle.min(total)) * 10)
}

/// One measured cell: throughput and CPU per operation.
#[derive(Clone, Copy)]
struct Cell {
    ops_per_s: f64,
    /// Client CPU per operation, microseconds.
    client_us: f64,
    /// Client + server CPU per operation, microseconds.
    machine_us: f64,
}

/// `tasks` tasks run `op` in a loop for `dur` after a short warm-up: ops/s.
async fn run<F, Fut>(tasks: usize, dur: Duration, op: F) -> Cell
where
    F: Fn(i32) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let start = Instant::now() + Duration::from_millis(300);
    let end = start + dur;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let op = op.clone();
        set.spawn(async move {
            let mut ops = 0u64;
            loop {
                let began = Instant::now();
                let ok = op(fastrand::i32(1..=ROWS)).await;
                assert!(ok, "query failed");
                if Instant::now() >= end {
                    return ops;
                }
                ops += u64::from(began >= start);
            }
        });
    }
    tokio::time::sleep_until(start).await;
    let (c0, m0) = (client_cpu(), machine_cpu());
    tokio::time::sleep_until(end).await;
    let (c1, m1) = (client_cpu(), machine_cpu());
    let mut ops = 0;
    while let Some(n) = set.join_next().await {
        ops += n.expect("task");
    }
    let per_op = |d: Duration| d.as_secs_f64() * 1e6 / (ops.max(1) as f64);
    Cell {
        ops_per_s: ops as f64 / dur.as_secs_f64(),
        client_us: per_op(c1 - c0),
        machine_us: per_op(m1 - m0),
    }
}

async fn cell(side: &Side, filter: &Filter, q: Query, tasks: usize, dur: Duration) -> Cell {
    let scraper = side.begin(filter);
    let pool = side.pool.clone();
    let cell = run(tasks, dur, move |key| {
        let pool = pool.clone();
        async move {
            let Ok(conn) = pool.get().await else {
                return false;
            };
            match q {
                Query::Select1 => conn.query_one("SELECT 1", &[]).await.is_ok(),
                Query::Lookup => conn
                    .query_one("SELECT v FROM kv WHERE id = $1", &[&key])
                    .await
                    .is_ok(),
            }
        }
    })
    .await;
    if let Some(s) = scraper {
        s.abort();
    }
    cell
}

async fn side(url: &str, observe: bool) -> Side {
    let mut b = PgPool::builder(PgConfig::parse(url).expect("url"))
        .max_size(POOL)
        .min_idle(POOL)
        .acquire_timeout(Duration::from_secs(30));
    if !observe {
        b = b.statistics(false).slow_query_threshold(None);
    }
    let pool = b.build().await.expect("pool");
    let metrics = observe.then(|| {
        let m = Metrics::builder().pool("bench", pool.clone()).build();
        std::sync::Arc::new(m.expect("metrics"))
    });
    let level = if observe {
        env("LIDO_BENCH_ON_LEVEL", LevelFilter::WARN)
    } else {
        LevelFilter::OFF
    };
    Side {
        pool,
        metrics,
        level,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Row {
    query: Query,
    on: Vec<Cell>,
    off: Vec<Cell>,
}

/// Mean and standard error of the mean.
fn mean_se(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, (var / n).sqrt())
}

impl Row {
    fn med(v: &[Cell], f: impl Fn(&Cell) -> f64) -> f64 {
        median(v.iter().map(f).collect())
    }

    /// Per round: how much lower `on`'s throughput was than `off`'s, in %.
    fn throughput_drops(&self) -> Vec<f64> {
        let pairs = self.on.iter().zip(&self.off);
        pairs
            .map(|(on, off)| (off.ops_per_s - on.ops_per_s) / off.ops_per_s * 100.0)
            .collect()
    }

    /// Per round: extra client CPU per operation as a share of the machine's
    /// busy CPU per operation, in % (what a CPU-bound machine loses).
    fn cpu_costs(&self) -> Vec<f64> {
        let pairs = self.on.iter().zip(&self.off);
        pairs
            .map(|(on, off)| (on.client_us - off.client_us) / off.machine_us * 100.0)
            .collect()
    }

    fn print(&self) {
        let ops = |v: &[Cell]| Self::med(v, |c| c.ops_per_s);
        let client = |v: &[Cell]| Self::med(v, |c| c.client_us);
        let (drop, drop_se) = mean_se(&self.throughput_drops());
        let (cpu, cpu_se) = mean_se(&self.cpu_costs());
        println!(
            "| {:<30} | {:>9.0} | {:>9.0} | {:>+6.2} % ± {:>4.2} | {:>7.2} us | {:>6.2} us | {:>+6.2} % ± {:>4.2} |",
            self.query.name(),
            ops(&self.off),
            ops(&self.on),
            drop,
            drop_se,
            client(&self.off),
            client(&self.on),
            cpu,
            cpu_se,
        );
    }
}

async fn measure(sides: [&Side; 2], filter: &Filter, q: Query, rounds: usize, secs: f64) -> Row {
    let [on, off] = sides;
    let (tasks, dur) = (env("LIDO_BENCH_TASKS", 64), Duration::from_secs_f64(secs));
    let mut row = Row {
        query: q,
        on: Vec::new(),
        off: Vec::new(),
    };
    for round in 0..rounds {
        if round % 2 == 0 {
            row.on.push(cell(on, filter, q, tasks, dur).await);
            row.off.push(cell(off, filter, q, tasks, dur).await);
        } else {
            row.off.push(cell(off, filter, q, tasks, dur).await);
            row.on.push(cell(on, filter, q, tasks, dur).await);
        }
        let (a, b) = (row.off[round], row.on[round]);
        eprintln!(
            "  {} round {}: off {:.0}/s ({:.1} us client CPU/op), on {:.0}/s ({:.1} us)",
            q.name(),
            round + 1,
            a.ops_per_s,
            a.client_us,
            b.ops_per_s,
            b.client_us
        );
    }
    row
}

fn setup() -> (PgServer, String) {
    let server = PgServer::start().expect("start a throwaway PostgreSQL");
    let db = server.create_database().expect("database");
    let sql = format!(
        "CREATE TABLE kv (id int PRIMARY KEY, v text); \
         INSERT INTO kv SELECT g, md5(g::text) FROM generate_series(1, {ROWS}) g; ANALYZE kv;"
    );
    server.psql(&db, &sql).expect("load kv");
    let url = server.url(&db);
    (server, url)
}

#[tokio::main]
async fn main() {
    let rounds = env("LIDO_BENCH_ROUNDS", 16usize);
    let secs = env("LIDO_BENCH_SECS", 1.0f64);
    let filter = install_tracing();
    let (_server, url) = setup();
    // LIDO_BENCH_AA=1: both sides off, to show the noise floor.
    let on = side(&url, std::env::var_os("LIDO_BENCH_AA").is_none()).await;
    let off = side(&url, false).await;
    let mut rows = Vec::new();
    for q in [Query::Select1, Query::Lookup] {
        rows.push(measure([&on, &off], &filter, q, rounds, secs).await);
    }
    filter.modify(|f| *f = LevelFilter::OFF).expect("reload");
    let tasks: usize = env("LIDO_BENCH_TASKS", 64);
    let scrape: u64 = env("LIDO_BENCH_SCRAPE_MS", 250);
    let level = env("LIDO_BENCH_ON_LEVEL", LevelFilter::WARN);
    println!();
    println!(
        "{tasks} tasks, pool {POOL}, {rounds} rounds x {secs} s per cell; on = statistics + statement table + slow log (the defaults) + spans under a fmt subscriber at {level} + a /metrics encoding every {scrape} ms; off = statistics(false) + slow_query_threshold(None) + subscriber OFF + no scrapes"
    );
    println!();
    println!("| workload                       | off ops/s |  on ops/s | throughput cost   | CPU/op off | CPU/op on | CPU cost          |");
    println!("| ------------------------------ | --------: | --------: | ----------------: | ---------: | --------: | ----------------: |");
    for r in &rows {
        r.print();
    }
    let tracked = on.pool.statement_stats().all();
    println!();
    println!("statements tracked with statistics on:");
    for s in tracked {
        println!(
            "  {:>9} calls  mean {:>8.1?}  p99 {:>8.1?}  {}",
            s.calls, s.mean, s.p99, s.query
        );
    }
}

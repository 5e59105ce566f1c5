//! `PgCluster` against a real lido-testkit `PgReplicaSet` (one primary and
//! one streaming replica on the same machine): routing overhead, lag
//! detection delay, failover detection time, read-your-writes.
//!
//! `cargo bench -p lido-postgres --bench cluster`
//! Environment: `LIDO_BENCH_SECS` (measured seconds per routing cell,
//! default 2), `LIDO_BENCH_ROUNDS` (interleaved routing rounds, default 5),
//! `LIDO_BENCH_TASKS` (comma list, default 16,64), `LIDO_BENCH_LAG_REPS`
//! (default 7), `LIDO_BENCH_FAILOVER_REPS` (default 3, a fresh replica set
//! each), `LIDO_BENCH_RYW_ROUNDS` (write-then-read rounds per phase,
//! default 2000), `LIDO_BENCH_PARTS` (comma list of
//! routing,lag,failover,ryw; default all).
//!
//! Client, primary and replica share the machine, so figures move with
//! anything else running; compare within one run.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_postgres::cluster::{ClusterSession, ClusterStats, PgCluster, PgClusterBuilder};
use lido_postgres::{PgConfig, PgConn, PgPool};
use lido_testkit::PgReplicaSet;
use tokio::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const POOL: usize = 16;
const SQL: &str = "SELECT $1::int8 + 1";
const TRICKLE: &str = "INSERT INTO trickle (at) VALUES (now())";

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median (of an even count, the mean of the middle two); NaN if empty.
fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ => (v[(n - 1) / 2] + v[n / 2]) / 2.0,
    }
}

/// The median and the maximum of `v`.
fn med_max(v: &[f64]) -> (f64, f64) {
    (median(v), v.iter().copied().fold(f64::NAN, f64::max))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Signed milliseconds from `from` to `to`.
fn ms_between(from: Instant, to: Instant) -> f64 {
    ms(to.saturating_duration_since(from)) - ms(from.saturating_duration_since(to))
}

/// Runs a blocking testkit call off the runtime (the monitor keeps running).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let done = tokio::task::spawn_blocking(f).await;
    done.expect("blocking task panicked")
}

/// `set_apply_delay(0, d)` off the runtime.
async fn apply_delay(set: &Arc<PgReplicaSet>, d: Duration) {
    let s = Arc::clone(set);
    let done = blocking(move || s.set_apply_delay(0, d)).await;
    done.expect("set_apply_delay");
}

/// A plain pool of `size` on `url`.
async fn plain_pool(url: &str, size: usize) -> PgPool {
    let config = PgConfig::parse(url).expect("testkit URL parses");
    let pool = PgPool::builder(config).max_size(size).build().await;
    pool.expect("plain pool")
}

fn cluster_builder(set: &PgReplicaSet, db: &str) -> PgClusterBuilder {
    let config = PgConfig::parse(&set.multi_host_url(db)).expect("testkit URL parses");
    PgCluster::builder(config).node_pool(|b| b.max_size(POOL))
}

fn replica_in_rotation(cluster: &PgCluster, port: u16) -> bool {
    let suffix = format!(":{port}");
    let nodes = cluster.nodes();
    nodes
        .iter()
        .any(|n| n.address.ends_with(&suffix) && n.in_rotation)
}

/// Polls `cond` every millisecond up to `limit`; the instant it held.
async fn wait_until(limit: Duration, cond: impl Fn() -> bool) -> Option<Instant> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if cond() {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

/// CPU time this process has used, summed over its live threads (Linux
/// `/proc/self/task/*/schedstat`; 0 elsewhere).
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

#[derive(Default)]
struct Sample {
    ops: u64,
    errors: u64,
    secs: f64,
    /// Client CPU (every thread) over the measured window, µs.
    cpu_us: f64,
    lat_us: Vec<u32>,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }
    fn cpu_per_op(&self) -> f64 {
        self.cpu_us / self.ops.max(1) as f64
    }
    fn pct(&self, p: f64) -> f64 {
        let i = (self.lat_us.len().saturating_sub(1) as f64 * p).round() as usize;
        self.lat_us.get(i).map_or(f64::NAN, |&us| f64::from(us))
    }
    /// A table row: `prefix`, ops/s, p50, p99, client CPU/op, and the
    /// ratios to `base` (ops/s and CPU/op), errors.
    fn row(&self, prefix: &str, base: &Sample) -> String {
        let (rate, cpu) = (self.rate(), self.cpu_per_op());
        let (p50, p99) = (self.pct(0.5), self.pct(0.99));
        let (r, c, e) = (rate / base.rate(), cpu / base.cpu_per_op(), self.errors);
        format!("| {prefix} | {rate:.0} | {p50:.0} | {p99:.0} | {cpu:.1} | {r:.3} | {c:.3} | {e} |")
    }
}

/// `tasks` tasks call `op()` in a loop: 0.3 s warm-up, then `dur` measured.
async fn run<F, Fut>(tasks: usize, dur: Duration, op: F) -> Sample
where
    F: Fn(i64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let start = Instant::now() + Duration::from_millis(300);
    let end = start + dur;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let op = op.clone();
        set.spawn(async move {
            let (mut ops, mut errors, mut lat) = (0u64, 0u64, Vec::with_capacity(4096));
            loop {
                let began = Instant::now();
                let ok = op(fastrand::i64(0..1_000_000)).await;
                let now = Instant::now();
                if now >= end {
                    break;
                }
                if began >= start {
                    ops += 1;
                    errors += u64::from(!ok);
                    lat.push(u32::try_from((now - began).as_micros()).unwrap_or(u32::MAX));
                }
            }
            (ops, errors, lat)
        });
    }
    tokio::time::sleep_until(start).await;
    let c0 = client_cpu();
    tokio::time::sleep_until(end).await;
    let cpu_us = (client_cpu().saturating_sub(c0)).as_secs_f64() * 1e6;
    let secs = dur.as_secs_f64();
    let mut s = Sample::default();
    (s.secs, s.cpu_us) = (secs, cpu_us);
    while let Some(Ok((ops, errors, lat))) = set.join_next().await {
        s.ops += ops;
        s.errors += errors;
        s.lat_us.extend(lat);
    }
    s.lat_us.sort_unstable();
    s
}

const VARIANTS: [&str; 3] = [
    "plain PgPool (replica)",
    "cluster.read_any()",
    "cluster.read()",
];

/// `SELECT $1::int8 + 1` on `conn`: whether it answered `x + 1`.
async fn ask(conn: Option<&PgConn>, x: i64) -> bool {
    let Some(conn) = conn else { return false };
    let rows = conn.query(SQL, &[&x]).await.ok();
    rows.and_then(|r| r.first().map(|r| r.get::<_, i64>(0))) == Some(x + 1)
}

/// One routing cell: lease + `SELECT $1::int8 + 1`, checking the answer.
async fn cell(w: usize, p: &PgPool, c: &PgCluster, tasks: usize, dur: Duration) -> Sample {
    let (plain, cluster) = (p.clone(), c.clone());
    run(tasks, dur, move |x| {
        let (plain, cluster) = (plain.clone(), cluster.clone());
        async move {
            match w {
                0 => ask(plain.get().await.ok().as_deref(), x).await,
                1 => ask(cluster.read_any().await.ok().as_deref(), x).await,
                _ => ask(cluster.read().await.ok().as_deref(), x).await,
            }
        }
    })
    .await
}

/// Routing rounds; summary rows: the median ratios cluster ÷ plain per task count.
async fn routing(set: &PgReplicaSet, db: &str, cluster: &PgCluster) -> Vec<String> {
    let dur = Duration::from_secs_f64(env_or("LIDO_BENCH_SECS", 2.0));
    let rounds: usize = env_or("LIDO_BENCH_ROUNDS", 5);
    let tasks: Vec<usize> = std::env::var("LIDO_BENCH_TASKS")
        .unwrap_or_else(|_| "16,64".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let plain = plain_pool(&set.replica(0).url(db), POOL).await;
    println!(
        "## 1. Routing overhead: `{SQL}`, pool max_size {POOL} per node, {:.1} s measured per cell after 0.3 s warm-up, {rounds} interleaved rounds\n",
        dur.as_secs_f64()
    );
    println!("| tasks | round | variant | ops/s | p50 µs | p99 µs | client CPU µs/op | ops/s ÷ plain | CPU/op ÷ plain | errors |");
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut out = Vec::new();
    for &n in &tasks {
        // Per round: ops/s ratio and client CPU/op ratio to plain, for read_any and read.
        let mut ratios: [Vec<f64>; 4] = Default::default();
        for r in 0..rounds {
            let order = if r % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
            let mut samples: [Sample; 3] = Default::default();
            for w in order {
                samples[w] = cell(w, &plain, cluster, n, dur).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            for (w, s) in samples.iter().enumerate() {
                let prefix = format!("{n} | {} | {}", r + 1, VARIANTS[w]);
                println!("{}", s.row(&prefix, &samples[0]));
            }
            for (k, s) in samples[1..].iter().enumerate() {
                ratios[k].push(s.rate() / samples[0].rate());
                ratios[k + 2].push(s.cpu_per_op() / samples[0].cpu_per_op());
            }
        }
        let [a, b, ca, cb] = ratios.map(|v| median(&v));
        println!("| {n} | median | read_any, read | | | | | {a:.3}, {b:.3} | {ca:.3}, {cb:.3} | |");
        let what = format!("routing, {n} tasks, median of {rounds}");
        out.push(format!("| {what}: read_any ÷ plain, ops/s (client CPU/op) | {a:.3} ({ca:.3}) | ≥ 0.95 (ops/s) |"));
        out.push(format!(
            "| {what}: read ÷ plain, ops/s (client CPU/op) | {b:.3} ({cb:.3}) | ≥ 0.95 (ops/s) |"
        ));
    }
    println!();
    plain.close(Duration::from_secs(5)).await;
    out
}

/// Lag detection reps; summary rows: detection delay from the call's start
/// + 200 ms and from its return + 200 ms.
async fn lag_detection(set: &Arc<PgReplicaSet>, db: &str) -> Vec<String> {
    let reps: usize = env_or("LIDO_BENCH_LAG_REPS", 7);
    let max_lag = Duration::from_millis(200);
    let builder = cluster_builder(set, db).max_lag(max_lag);
    let cluster = builder.build().await.expect("cluster");
    let port = set.replica(0).port();
    let inside = || replica_in_rotation(&cluster, port);
    let writer_pool = plain_pool(&set.primary().url(db), 2).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                if let Ok(c) = writer_pool.get().await {
                    let _ = c.execute(TRICKLE, &[]).await;
                }
            }
        })
    };
    println!("## 2. Lag detection: max_lag 200 ms, default monitor (150 ms ±20 %), an INSERT every 5 ms on the primary, set_apply_delay(0, 2 s)\n");
    println!("| rep | set_apply_delay call ms | out of rotation after call start ms | detection from start+200 ms | detection from return+200 ms |");
    println!("|---:|---:|---:|---:|---:|");
    let mut out = Vec::new();
    for rep in 1..=reps {
        let back = wait_until(Duration::from_secs(20), &inside).await;
        assert!(back.is_some(), "replica never came back into rotation");
        // Decorrelate from the monitor's phase.
        tokio::time::sleep(Duration::from_millis(300 + fastrand::u64(0..150))).await;
        let t_call = Instant::now();
        let s = Arc::clone(set);
        let delay = Duration::from_secs(2);
        let call = tokio::task::spawn_blocking(move || {
            s.set_apply_delay(0, delay).map(|()| Instant::now())
        });
        let t_out = wait_until(Duration::from_secs(10), || !inside()).await;
        let t_ret = call.await.expect("join").expect("set_apply_delay");
        match t_out {
            Some(t_out) => {
                let a = ms_between(t_call + max_lag, t_out);
                let b = ms_between(t_ret + max_lag, t_out);
                let (call, out_at) = (ms(t_ret - t_call), ms(t_out - t_call));
                println!("| {rep} | {call:.0} | {out_at:.0} | {a:.0} | {b:.0} |");
                out.push((a, b));
            }
            None => println!("| {rep} | {:.0} | never (10 s) | | |", ms(t_ret - t_call)),
        }
        apply_delay(set, Duration::ZERO).await;
    }
    let (a, b): (Vec<f64>, Vec<f64>) = out.iter().copied().unzip();
    let ((ma, max), mb) = (med_max(&a), median(&b));
    println!("| median | | | {ma:.0} | {mb:.0} |\n");
    stop.store(true, Ordering::Relaxed);
    let _ = writer.await;
    cluster.close(Duration::from_secs(5)).await;
    let n = format!("{} of {reps}", a.len());
    vec![
        format!("| lag detection from call start + 200 ms, median (max), {n} | {ma:.0} ms ({max:.0} ms) | < 300 ms |"),
        format!("| lag detection from call return + 200 ms, median, {n} | {mb:.0} ms | < 300 ms |"),
    ]
}

/// Detection times in ms: (from just before promote, from promote's return).
async fn failover_once() -> Res<(f64, f64, f64)> {
    let set = Arc::new(blocking(|| PgReplicaSet::start(1)).await?);
    let s = Arc::clone(&set);
    let db = blocking(move || s.create_database()).await?;
    let cluster = cluster_builder(&set, &db).build().await?;
    let suffix = format!(":{}", set.replica(0).port());
    let is_replica = |c: &PgCluster| c.primary_address().is_some_and(|a| a.ends_with(&suffix));
    if is_replica(&cluster) {
        return Err("the replica was the write target before promote".into());
    }
    tokio::time::sleep(Duration::from_millis(300 + fastrand::u64(0..150))).await;
    let s = Arc::clone(&set);
    let t_call = Instant::now();
    let promote = tokio::task::spawn_blocking(move || s.promote(0).map(|()| Instant::now()));
    let seen = wait_until(Duration::from_secs(30), || is_replica(&cluster)).await;
    let t_ret = promote.await??;
    let seen = seen.ok_or("the cluster never named the promoted replica")?;
    cluster.close(Duration::from_secs(5)).await;
    blocking(move || drop(set)).await;
    let (a, b) = (ms_between(t_call, seen), ms_between(t_ret, seen));
    Ok((a, b, ms_between(t_call, t_ret)))
}

/// Failover reps; summary rows: detection from just before promote and
/// relative to its return.
async fn failover() -> Vec<String> {
    let reps: usize = env_or("LIDO_BENCH_FAILOVER_REPS", 3);
    println!("## 3. Failover detection: promote(0) (pg_promote(true, 60), then polls until out of recovery), default monitor (150 ms), a fresh replica set per rep\n");
    println!("| rep | promote() call ms | new primary seen after call start ms | seen relative to promote()'s return ms |");
    println!("|---:|---:|---:|---:|");
    let mut out = Vec::new();
    for rep in 1..=reps {
        match failover_once().await {
            Ok((a, b, call)) => {
                println!("| {rep} | {call:.0} | {a:.0} | {b:+.0} |");
                out.push((a, b));
            }
            Err(e) => println!("| {rep} | failed: {e} | | |"),
        }
    }
    let (a, b): (Vec<f64>, Vec<f64>) = out.iter().copied().unzip();
    let ((ma, max), mb) = (med_max(&a), median(&b));
    println!("| median | | {ma:.0} | {mb:+.0} |\n");
    let n = format!("{} of {reps}", a.len());
    vec![
        format!("| failover seen, from just before promote, median (max), {n} | {ma:.0} ms ({max:.0} ms) | < 1 s |"),
        format!("| failover seen, relative to promote's return, median, {n} | {mb:+.0} ms | < 1 s |"),
    ]
}

/// One read-your-writes phase: rounds, stale reads, replica, fallback and
/// waited reads (`ClusterStats` deltas), seconds.
struct Ryw(u64, u64, [u64; 3], f64);

fn counts(st: &ClusterStats) -> [u64; 3] {
    [
        st.replica_reads(),
        st.fallback_reads(),
        st.read_your_writes_waits(),
    ]
}

impl Ryw {
    /// Shares of reads on the replica and on the primary, in %.
    fn shares(&self) -> (f64, f64) {
        let [replica, fallback, _] = self.2;
        let total = (replica + fallback).max(1) as f64;
        (
            100.0 * replica as f64 / total,
            100.0 * fallback as f64 / total,
        )
    }
    fn row(&self, label: &str) -> String {
        let (Ryw(rounds, stale, [replica, fallback, waited], secs), (a, b)) = (self, self.shares());
        format!("| {label} | {rounds} | {stale} | {replica} | {waited} | {fallback} | {a:.1} % | {b:.1} % | {secs:.1} |")
    }
}

/// `rounds` write-then-read rounds over 4 callers, each with its own key and session.
async fn write_then_read(cluster: &PgCluster, rounds: u64) -> Ryw {
    const CALLERS: u64 = 4;
    let (before, began) = (counts(cluster.stats()), Instant::now());
    let mut tasks = Vec::new();
    for k in 0..CALLERS as i32 {
        let cluster = cluster.clone();
        tasks.push(tokio::spawn(async move {
            let (session, mut stale) = (ClusterSession::new(), 0u64);
            for v in 1..=(rounds / CALLERS) as i32 {
                let sql = "UPDATE kv SET v = $2 WHERE k = $1";
                let wrote = cluster.execute_for(&session, sql, &[&k, &v]).await;
                wrote.expect("write");
                let sql = "SELECT v FROM kv WHERE k = $1";
                let rows = cluster.query_for(&session, sql, &[&k]).await.expect("read");
                stale += u64::from(rows.first().map(|r| r.get::<_, i32>(0)) != Some(v));
            }
            stale
        }));
    }
    let mut stale = 0;
    for t in tasks {
        stale += t.await.expect("caller");
    }
    let after = counts(cluster.stats());
    let delta = [0, 1, 2].map(|i| after[i] - before[i]);
    let secs = began.elapsed().as_secs_f64();
    Ryw(rounds / CALLERS * CALLERS, stale, delta, secs)
}

/// Write-then-read with no lag and with 200 ms of apply delay; summary rows.
async fn read_your_writes(set: &Arc<PgReplicaSet>, cluster: &PgCluster) -> Vec<String> {
    let rounds: u64 = env_or("LIDO_BENCH_RYW_ROUNDS", 2000);
    println!("## 4. Read-your-writes: {rounds} rounds of execute_for(UPDATE) then query_for(SELECT), 4 callers with their own session and key, default max_lag (1 s) and read_your_writes_wait (20 ms)\n");
    println!("| replica apply delay | rounds | stale reads | replica reads | of which waited | primary (fallback) reads | share on replica | share on primary | s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let s = Arc::clone(set);
    let caught_up = blocking(move || s.wait_caught_up(Duration::from_secs(30))).await;
    caught_up.expect("caught up");
    let none = write_then_read(cluster, rounds).await;
    println!("{}", none.row("none"));
    apply_delay(set, Duration::from_millis(200)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delayed = write_then_read(cluster, rounds).await;
    println!("{}\n", delayed.row("200 ms"));
    apply_delay(set, Duration::ZERO).await;
    let (a, b) = (none.shares().0, delayed.shares().1);
    let what = "read-your-writes: stale reads / share";
    vec![
        format!(
            "| {what} on replicas, no lag | {} / {a:.1} % | 0 / — |",
            none.1
        ),
        format!(
            "| {what} on primary, 200 ms apply delay | {} / {b:.1} % | 0 / — |",
            delayed.1
        ),
    ]
}

/// A replica set with tables `kv` (64 rows) and `trickle`, caught up.
async fn setup() -> Res<(Arc<PgReplicaSet>, String)> {
    let set = Arc::new(blocking(|| PgReplicaSet::start(1)).await?);
    let s = Arc::clone(&set);
    let db = blocking(move || -> Res<String> {
        let db = s.create_database()?;
        s.primary().psql(
            &db,
            "CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL); \
             INSERT INTO kv SELECT g, 0 FROM generate_series(0, 63) g; \
             CREATE TABLE trickle (id bigserial PRIMARY KEY, at timestamptz NOT NULL);",
        )?;
        s.wait_caught_up(Duration::from_secs(30))?;
        Ok(db)
    })
    .await?;
    let (p, r) = (set.primary().port(), set.replica(0).port());
    println!("replica set: primary port {p}, replica port {r}\n");
    Ok((set, db))
}

#[tokio::main]
async fn main() -> Res<()> {
    let parts =
        std::env::var("LIDO_BENCH_PARTS").unwrap_or_else(|_| "routing,lag,failover,ryw".into());
    let want = |p: &str| parts.split(',').any(|x| x.trim() == p);
    let began = Instant::now();
    let loadavg = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{cpus} CPU(s) shared by client, primary and replica; /proc/loadavg at start: {}",
        loadavg().trim()
    );
    let (set, db) = setup().await?;
    let cluster = cluster_builder(&set, &db).build().await?;
    let mut rows = Vec::new();
    if want("routing") {
        rows.extend(routing(&set, &db, &cluster).await);
    }
    if want("ryw") {
        rows.extend(read_your_writes(&set, &cluster).await);
    }
    cluster.close(Duration::from_secs(5)).await;
    if want("lag") {
        rows.extend(lag_detection(&set, &db).await);
    }
    blocking(move || drop(set)).await;
    if want("failover") {
        rows.extend(failover().await);
    }
    println!("## Results\n\n| measure | result | target |\n|---|---:|---|");
    rows.iter().for_each(|r| println!("{r}"));
    println!("\n/proc/loadavg at end: {}", loadavg().trim());
    println!("total {:.0} s", began.elapsed().as_secs_f64());
    Ok(())
}

//! The result cache on one throwaway server: hit latency (p50/p99/max of
//! calls answered from the cache), and the hit share of a Zipf(0.99) key
//! mix over 10,000 rows after one unmeasured warm-up pass of the same
//! size, beside the same calls run without the cache; then, on a server
//! with `wal_level = logical` and the WAL feed on, how long after an
//! outside commit the cache serves the new value, and how many cached
//! reads were older than the last commit made before they started.
//!
//! `cargo bench -p lido-postgres --bench result_cache`
//! Environment: `LIDO_BENCH_CALLS` (calls in the Zipf run, default 40000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use lido_postgres::{FeedConfig, PgConfig, PgPool, ResultCacheConfig, WalFeed};
use lido_testkit::PgServer;
use std::sync::atomic::{AtomicI64, Ordering};

const TASKS: usize = 16;
const KEYS: usize = 10_000;
const SQL: &str = "SELECT name, price FROM items WHERE id = $1";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The cumulative distribution of Zipf(`s`) over `n` keys.
fn zipf_cdf(n: usize, s: f64) -> Vec<f64> {
    let mut acc = 0.0;
    let mut cdf: Vec<f64> = (1..=n)
        .map(|k| {
            acc += 1.0 / (k as f64).powf(s);
            acc
        })
        .collect();
    for c in &mut cdf {
        *c /= acc;
    }
    cdf
}

fn draw(cdf: &[f64]) -> i32 {
    let u = fastrand::f64();
    let i = cdf.partition_point(|c| *c < u).min(cdf.len() - 1);
    (i + 1) as i32
}

fn pct(v: &mut [Duration], q: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

/// `calls` Zipf-drawn reads over `TASKS` tasks; returns their durations.
async fn zipf(pool: &PgPool, calls: u64, cdf: Arc<Vec<f64>>, cached: bool) -> (Vec<Duration>, f64) {
    let started = Instant::now();
    let per = calls / TASKS as u64;
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (pool, cdf) = (pool.clone(), Arc::clone(&cdf));
        tasks.push(tokio::spawn(async move {
            let mut took = Vec::with_capacity(per as usize);
            for _ in 0..per {
                let id = draw(&cdf);
                let t0 = Instant::now();
                if cached {
                    pool.cached().query(SQL, &[&id]).await.expect("cached read");
                } else {
                    pool.get()
                        .await
                        .expect("get")
                        .query(SQL, &[&id])
                        .await
                        .expect("read");
                }
                took.push(t0.elapsed());
            }
            took
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    (all, rate)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls = env("LIDO_BENCH_CALLS", 40_000);
    let server = PgServer::start().expect("server");
    let db = server.create_database().expect("db");
    let config = PgConfig::parse(&server.url(&db)).expect("url");
    let pool = PgPool::builder(config)
        .max_size(TASKS)
        .result_cache(ResultCacheConfig::default())
        .build()
        .await
        .expect("pool");
    let conn = pool.get().await.expect("get");
    conn.batch_execute(&format!(
        "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric); \
         INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, {KEYS}) g; ANALYZE items"
    ))
    .await
    .expect("setup");
    drop(conn);

    // Hit latency: one key, cached once, then read 20,000 times.
    pool.cached().query(SQL, &[&1i32]).await.expect("warm");
    let mut hits = Vec::with_capacity(20_000);
    for _ in 0..20_000 {
        let t0 = Instant::now();
        pool.cached().query(SQL, &[&1i32]).await.expect("hit");
        hits.push(t0.elapsed());
    }
    println!(
        "hit latency (one caller, 20000 hits): p50 {:?}  p99 {:?}  max {:?}   (goal p99 <= 100 µs)",
        pct(&mut hits, 0.5),
        pct(&mut hits, 0.99),
        pct(&mut hits, 1.0)
    );

    let cdf = Arc::new(zipf_cdf(KEYS, 0.99));
    // Warm-up pass (not measured): the cache fills as a running service's would.
    zipf(&pool, calls, Arc::clone(&cdf), true).await;
    let before = pool.cache_stats().await.expect("cache");
    let (mut with, rate_with) = zipf(&pool, calls, Arc::clone(&cdf), true).await;
    let after = pool.cache_stats().await.expect("cache");
    let (mut without, rate_without) = zipf(&pool, calls, cdf, false).await;
    let hits = after.hits - before.hits;
    let served = hits + (after.misses - before.misses) + (after.joins - before.joins);
    println!(
        "Zipf(0.99) over {KEYS} keys, {calls} calls, {TASKS} tasks: hits {:.1} % (goal >= 85 %), {} entries, {} KiB",
        100.0 * hits as f64 / served.max(1) as f64,
        after.entries,
        after.bytes / 1024
    );
    println!(
        "  cached:   {rate_with:>9.0} calls/s  p50 {:?}  p99 {:?}",
        pct(&mut with, 0.5),
        pct(&mut with, 0.99)
    );
    println!(
        "  uncached: {rate_without:>9.0} calls/s  p50 {:?}  p99 {:?}   (cached / uncached throughput {:.2})",
        pct(&mut without, 0.5),
        pct(&mut without, 0.99),
        rate_with / rate_without
    );
    staleness().await;
}

/// Outside writes every 20 ms, a cached reader polling every millisecond.
async fn staleness() {
    // PostgreSQL's default synchronous_commit (the testkit turns it off):
    // logical decoding sees a commit once its WAL is flushed.
    let server = PgServer::builder()
        .setting("wal_level", "logical")
        .setting("synchronous_commit", "on")
        .start()
        .expect("logical server");
    let db = server.create_database().expect("db");
    let url = server.url(&db);
    let pool = PgPool::builder(PgConfig::parse(&url).expect("url"))
        .max_size(4)
        .result_cache(ResultCacheConfig {
            default_ttl: Duration::from_secs(600),
            ..ResultCacheConfig::default()
        })
        .build()
        .await
        .expect("pool");
    pool.get()
        .await
        .expect("get")
        .batch_execute(
            "CREATE TABLE counter (id int PRIMARY KEY, n int8); INSERT INTO counter VALUES (1, 0)",
        )
        .await
        .expect("setup");
    let poll_ms: u64 = env("LIDO_BENCH_POLL_MS", 50);
    let poll = Duration::from_millis(poll_ms);
    let feed = pool
        .watch_outside_writes(FeedConfig {
            poll,
            ..FeedConfig::default()
        })
        .await
        .expect("feed");
    let outside = PgPool::builder(PgConfig::parse(&url).expect("url"))
        .max_size(1)
        .build()
        .await
        .expect("outside pool");
    for fresh in [false, true] {
        round(&pool, &outside, &feed, poll, fresh).await;
    }
}

/// 200 outside commits 20 ms apart, a cached reader every ~1 ms (plain, or
/// `fresh()`: every read waits for the feed to reach the server's position).
async fn round(pool: &PgPool, outside: &PgPool, feed: &WalFeed, poll: Duration, fresh: bool) {
    outside
        .get()
        .await
        .expect("get")
        .execute("UPDATE counter SET n = 0 WHERE id = 1", &[])
        .await
        .expect("reset");
    let committed = Arc::new(AtomicI64::new(0));
    let writes = 200i64;
    let started = Instant::now();
    let commit_at: Arc<parking_lot::Mutex<Vec<Duration>>> = Arc::default();
    let writer = {
        let (committed, commit_at) = (Arc::clone(&committed), Arc::clone(&commit_at));
        let outside = outside.clone();
        tokio::spawn(async move {
            for n in 1..=writes {
                let conn = outside.get().await.expect("get");
                conn.execute("UPDATE counter SET n = $1 WHERE id = 1", &[&n])
                    .await
                    .expect("write");
                commit_at.lock().push(started.elapsed());
                committed.store(n, Ordering::SeqCst);
                drop(conn);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let before = pool.cache_stats().await.expect("cache");
    let mut first_seen: Vec<Option<Duration>> = vec![None; writes as usize + 1];
    let (mut reads, mut stale) = (0u64, 0u64);
    let mut took: Vec<Duration> = Vec::new();
    while !writer.is_finished() || first_seen[writes as usize].is_none() {
        let floor = committed.load(Ordering::SeqCst);
        let t = Instant::now();
        let q = if fresh {
            pool.cached().fresh()
        } else {
            pool.cached()
        };
        let rows = q
            .query("SELECT n FROM counter WHERE id = 1", &[])
            .await
            .expect("cached read");
        took.push(t.elapsed());
        let n: i64 = rows[0].get(0);
        reads += 1;
        if n < floor {
            stale += 1;
        }
        if let Some(slot) = first_seen.get_mut(n as usize) {
            slot.get_or_insert(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let after = pool.cache_stats().await.expect("cache");
    let commits = commit_at.lock().clone();
    let mut lag: Vec<Duration> = commits
        .iter()
        .enumerate()
        .filter_map(|(i, at)| {
            // The first read showing this value or a later one.
            first_seen[i + 1..]
                .iter()
                .flatten()
                .min()
                .map(|seen| seen.saturating_sub(*at))
        })
        .collect();
    let mode = if fresh { "fresh()" } else { "plain" };
    println!(
        "\nWAL feed (poll {poll:?}), {writes} outside commits 20 ms apart, a {mode} cached reader every ~1 ms:"
    );
    println!(
        "  staleness after an outside commit: p50 {:?}  p99 {:?}  max {:?}   (goal p99 <= 100 ms)",
        pct(&mut lag, 0.5),
        pct(&mut lag, 0.99),
        pct(&mut lag, 1.0)
    );
    println!(
        "  cached reads older than the last commit before they started: {stale} of {reads} ({:.1} %); feed changes {}",
        100.0 * stale as f64 / reads.max(1) as f64,
        feed.changes()
    );
    let hits = after.hits - before.hits;
    println!(
        "  read time p50 {:?}  p99 {:?}; hits {hits} of {reads} ({:.1} %), bypassed {}",
        pct(&mut took, 0.5),
        pct(&mut took, 0.99),
        100.0 * hits as f64 / reads.max(1) as f64,
        after.bypassed - before.bypassed
    );
}

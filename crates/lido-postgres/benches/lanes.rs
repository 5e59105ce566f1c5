//! Reserved capacity per priority lane, on one throwaway server: Background
//! callers loop `SELECT pg_sleep(1)` at twice what they may hold, and
//! Critical callers run `SELECT 1` at 200/s. The same run with no lane
//! limits (Background then takes every connection) and with two connections
//! reserved for Critical; rounds alternate between the two.
//!
//! `cargo bench -p lido-postgres --bench lanes`
//! Environment: `LIDO_BENCH_SECS` (seconds of Critical calls per round,
//! default 3), `LIDO_BENCH_ROUNDS` (rounds per side, default 3).
//!
//! Columns per round: Critical acquire p50 / p99 / max (from `get` to the
//! lease), Critical calls, Background sleeps completed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lido_core::{Config, LaneLimits, Priority};
use lido_postgres::{PgConfig, PgPool};
use lido_testkit::PgServer;

const MAX: usize = 8;
const RESERVED: usize = 2;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One round's figures.
struct Round {
    waits: Vec<Duration>,
    slept: u64,
}

impl Round {
    fn at(&self, q: f64) -> Duration {
        let i = ((self.waits.len() as f64 * q) as usize).min(self.waits.len() - 1);
        self.waits[i]
    }
}

async fn pool(url: &str, lanes: LaneLimits) -> PgPool {
    PgPool::builder(PgConfig::parse(url).expect("url"))
        .pool_config(Config {
            max_size: MAX,
            min_idle: MAX,
            lanes,
            acquire_timeout: Duration::from_secs(30),
            leak_threshold: None,
            ..Config::default()
        })
        .build()
        .await
        .expect("pool")
}

async fn round(pool: &PgPool, secs: u64) -> Round {
    let background_may_hold = MAX - pool.core().config().lanes.reserved[0];
    let stop = Arc::new(AtomicBool::new(false));
    let slept = Arc::new(AtomicU64::new(0));
    let loops: Vec<_> = (0..2 * background_may_hold)
        .map(|_| {
            let (pool, stop, slept) = (pool.clone(), Arc::clone(&stop), Arc::clone(&slept));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let conn = pool
                        .get_with_priority(Priority::Background)
                        .await
                        .expect("background");
                    conn.execute("SELECT pg_sleep(1)", &[])
                        .await
                        .expect("sleep");
                    slept.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut waits = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        tick.tick().await;
        let t = Instant::now();
        let conn = pool
            .get_with_priority(Priority::Critical)
            .await
            .expect("critical");
        waits.push(t.elapsed());
        conn.query_one("SELECT 1", &[]).await.expect("select");
    }
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.expect("loop");
    }
    waits.sort();
    Round {
        waits,
        slept: slept.load(Ordering::Relaxed),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs = env("LIDO_BENCH_SECS", 3);
    let rounds = env("LIDO_BENCH_ROUNDS", 3);
    let server = PgServer::start().expect("server");
    let db = server.create_database().expect("db");
    let url = server.url(&db);
    let plain = pool(&url, LaneLimits::default()).await;
    let reserved = pool(
        &url,
        LaneLimits::default().reserve(Priority::Critical, RESERVED),
    )
    .await;
    println!("pool {MAX}; Background loops pg_sleep(1) at twice what it may hold; Critical SELECT 1 at 200/s for {secs} s per round");
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>7} {:>10}",
        "side / round", "p50 ms", "p99 ms", "max ms", "calls", "bg sleeps"
    );
    let mut p99s: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for r in 0..rounds {
        for (i, (name, pool)) in [
            ("no lane limits", &plain),
            ("2 reserved for Critical", &reserved),
        ]
        .into_iter()
        .enumerate()
        {
            let out = round(pool, secs).await;
            p99s[i].push(ms(out.at(0.99)));
            println!(
                "{:<28} {:>9.3} {:>9.3} {:>9.3} {:>7} {:>10}",
                format!("{name} #{}", r + 1),
                ms(out.at(0.5)),
                ms(out.at(0.99)),
                ms(out.at(1.0)),
                out.waits.len(),
                out.slept
            );
        }
    }
    for v in &mut p99s {
        v.sort_by(f64::total_cmp);
    }
    let median = |v: &Vec<f64>| v[v.len() / 2];
    println!(
        "median Critical p99 acquire: {:.3} ms without lane limits, {:.3} ms with {RESERVED} reserved ({:.0}x less)",
        median(&p99s[0]),
        median(&p99s[1]),
        median(&p99s[0]) / median(&p99s[1]).max(1e-6)
    );
}

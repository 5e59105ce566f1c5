//! Learned deadlines against a fixed generous timeout, on one throwaway
//! server. Callers run `SELECT pg_sleep($1)` with a log-normal latency
//! (median 2 ms, σ 0.8) and, with probability `LIDO_BENCH_HANG` (default
//! 0.5 %), a hang of 10 s. The upstream caller gives up after 500 ms (an
//! HTTP request's budget) but the call runs on until lido stops it: at the
//! class deadline (5 s) in the fixed run, at the statement's learned
//! deadline in the learned run (after a warm-up of ordinary calls).
//!
//! `cargo bench -p lido-postgres --bench learned`
//! Environment: `LIDO_BENCH_CALLS` (calls per run, default 4000),
//! `LIDO_BENCH_HANG` (share of hanging calls, default 0.005).
//!
//! Figures per run: server time spent after the caller gave up (summed over
//! calls: time to the call's end, less the 500 ms budget, for calls that
//! outlived it), and calls cut although they would have finished within
//! the class ceiling (their drawn sleep was under 5 s).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lido_core::{Classes, Config, Learning, QueryClass};
use lido_postgres::{PgConfig, PgPool};
use lido_testkit::PgServer;

const TASKS: usize = 16;
const BUDGET: Duration = Duration::from_millis(500);
const CEILING: Duration = Duration::from_secs(5);
const HANG: f64 = 10.0;
const SQL: &str = "SELECT pg_sleep($1::float8)";

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A standard normal draw (Box-Muller).
fn normal() -> f64 {
    let (u, v) = (fastrand::f64().max(1e-12), fastrand::f64());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Seconds to sleep: log-normal around 2 ms, or a hang.
fn draw(hang: f64) -> f64 {
    if fastrand::f64() < hang {
        HANG
    } else {
        0.002 * (0.8 * normal()).exp()
    }
}

#[derive(Default)]
struct Tally {
    wasted_us: AtomicU64,
    wrongly_cut: AtomicU64,
    hangs: AtomicU64,
    calls: AtomicU64,
}

async fn pool(url: &str, learn: bool) -> PgPool {
    let learning = Learning {
        min_samples: 200,
        ..Learning::default()
    };
    let class = QueryClass::new("api")
        .deadline(Some(CEILING))
        .learn(learn.then_some(learning));
    PgPool::builder(PgConfig::parse(url).expect("url"))
        .classes(Classes::default().with(class))
        .pool_config(Config {
            max_size: TASKS,
            min_idle: TASKS,
            leak_threshold: None,
            ..Config::default()
        })
        .build()
        .await
        .expect("pool")
}

/// `calls` calls over `TASKS` tasks with hangs at rate `hang`.
async fn run(pool: &PgPool, calls: u64, hang: f64) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let left = Arc::new(AtomicU64::new(calls));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (pool, tally, left) = (pool.clone(), Arc::clone(&tally), Arc::clone(&left));
        tasks.push(tokio::spawn(async move {
            let class = pool.class("api").expect("class");
            while left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                let secs = draw(hang);
                let started = Instant::now();
                let result = class.execute(SQL, &[&secs]).await;
                let took = started.elapsed();
                tally.calls.fetch_add(1, Ordering::Relaxed);
                if secs >= HANG {
                    tally.hangs.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(over) = took.checked_sub(BUDGET) {
                    let us = u64::try_from(over.as_micros()).unwrap_or(u64::MAX);
                    tally.wasted_us.fetch_add(us, Ordering::Relaxed);
                }
                if result.is_err() && secs < CEILING.as_secs_f64() {
                    tally.wrongly_cut.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    tally
}

fn row(name: &str, t: &Tally) -> (f64, u64, u64) {
    let wasted = t.wasted_us.load(Ordering::Relaxed) as f64 / 1e6;
    let (calls, cut) = (
        t.calls.load(Ordering::Relaxed),
        t.wrongly_cut.load(Ordering::Relaxed),
    );
    println!(
        "{name:<28} {calls:>6} {:>6} {wasted:>14.3} {cut:>12} {:>9.3} %",
        t.hangs.load(Ordering::Relaxed),
        100.0 * cut as f64 / calls.max(1) as f64
    );
    (wasted, calls, cut)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls: u64 = env("LIDO_BENCH_CALLS", 4000);
    let hang: f64 = env("LIDO_BENCH_HANG", 0.005);
    let server = PgServer::start().expect("server");
    let db = server.create_database().expect("db");
    let url = server.url(&db);
    println!(
        "{calls} calls x 2 runs, {TASKS} tasks, pool {TASKS}; sleep log-normal (median 2 ms, sigma 0.8), {:.1} % hang {HANG} s; caller budget {BUDGET:?}, class ceiling {CEILING:?}\n",
        hang * 100.0
    );
    println!(
        "{:<28} {:>6} {:>6} {:>14} {:>12} {:>11}",
        "run", "calls", "hangs", "wasted server s", "wrongly cut", "share"
    );

    let fixed = pool(&url, false).await;
    let a = run(&fixed, calls, hang).await;
    let (wasted_fixed, _, _) = row("fixed 5 s deadline", &a);
    fixed.close(Duration::from_secs(5)).await;

    let learned = pool(&url, true).await;
    run(&learned, 400, 0.0).await; // warm-up: ordinary calls only, to learn from
    let st = learned.statement_stats().get(SQL).expect("tracked");
    let b = run(&learned, calls, hang).await;
    let (wasted_learned, calls_l, cut_l) = row("learned (3 x p99, floor 50 ms)", &b);
    let after = learned.statement_stats().get(SQL).expect("tracked");
    println!(
        "\nlearned deadline after warm-up {:?} (p99 {:?}); at the end {:?}",
        st.learned_deadline, st.p99, after.learned_deadline
    );
    let cut_share = cut_l as f64 / calls_l.max(1) as f64;
    let saved = 1.0 - wasted_learned / wasted_fixed.max(1e-9);
    println!(
        "server time after the caller gave up: {:.1} % less with learned deadlines (goal >= 90 %); wrongly cut {:.3} % (goal <= 0.1 %)",
        saved * 100.0,
        cut_share * 100.0
    );
}

//! What the slow-query table costs the callers: the same workload on a pool
//! with the table and on one without, where 1 call in 100 is slow (its
//! per-call threshold is zero, so it is reported without sleeping: the
//! caller pays the slow path, the log event and, on the table side, the
//! row's enqueue; the writer task inserts it in the background).
//!
//! `cargo bench -p lido-postgres --bench slow_table`
//! Environment: `LIDO_BENCH_SECS` (seconds per side per round, default 1),
//! `LIDO_BENCH_ROUNDS` (default 10), `LIDO_BENCH_TASKS` (default 16),
//! `LIDO_BENCH_SLOW_EVERY` (default 100: one slow call in that many).
//!
//! Each round runs both sides back to back (alternating which goes first).
//! Printed: per round the mean latency of each side, then the median and
//! mean of the per-round ratios (table / no table), and the table's
//! counters (rows written, dropped).

use std::time::Duration;

use lido_postgres::{PgConfig, PgPool, SlowTableConfig};
use lido_testkit::PgServer;
use tokio::time::Instant;

fn env(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn pool(cfg: PgConfig, table: bool) -> PgPool {
    let mut b = PgPool::builder(cfg)
        .max_size(8)
        .min_idle(8)
        .slow_query_threshold(Some(Duration::from_secs(1)));
    if table {
        b = b.slow_query_table(SlowTableConfig::default());
    }
    b.build().await.expect("pool")
}

/// Runs the workload for `secs` on `pool`: (calls, mean latency).
async fn run(pool: &PgPool, tasks: u64, secs: u64, slow_every: u64) -> (u64, Duration) {
    let until = Instant::now() + Duration::from_secs(secs);
    let mut handles = Vec::new();
    for t in 0..tasks {
        let pool = pool.clone();
        handles.push(tokio::spawn(async move {
            let (mut n, mut total) = (0u64, Duration::ZERO);
            while Instant::now() < until {
                let started = Instant::now();
                let conn = pool.get().await.expect("get");
                let i = i32::try_from((n + t) % 1000).unwrap_or(0);
                if (n + t * 7) % slow_every == 0 {
                    conn.exec()
                        .slow_query_threshold(Some(Duration::ZERO))
                        .query("SELECT $1::int + 1", &[&i])
                        .await
                        .expect("slow");
                } else {
                    conn.query("SELECT $1::int + 1", &[&i]).await.expect("q");
                }
                drop(conn);
                total += started.elapsed();
                n += 1;
            }
            (n, total)
        }));
    }
    let (mut n, mut total) = (0u64, Duration::ZERO);
    for h in handles {
        let (a, b) = h.await.expect("task");
        n += a;
        total += b;
    }
    let mean = total / u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    (n, mean)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let (secs, rounds) = (env("LIDO_BENCH_SECS", 1), env("LIDO_BENCH_ROUNDS", 10));
    let (tasks, slow_every) = (
        env("LIDO_BENCH_TASKS", 16),
        env("LIDO_BENCH_SLOW_EVERY", 100),
    );
    let server = PgServer::start().expect("server");
    let db = server.create_database().expect("database");
    let cfg = PgConfig::parse(&server.url(&db)).expect("url");
    let with = pool(cfg.clone(), true).await;
    let without = pool(cfg, false).await;
    run(&with, tasks, 1, slow_every).await;
    run(&without, tasks, 1, slow_every).await;
    let mut ratios = Vec::new();
    println!("round  table(us)  none(us)  ratio  calls(table/none)");
    for r in 0..rounds {
        let (a, b) = if r % 2 == 0 {
            let a = run(&with, tasks, secs, slow_every).await;
            (a, run(&without, tasks, secs, slow_every).await)
        } else {
            let b = run(&without, tasks, secs, slow_every).await;
            (run(&with, tasks, secs, slow_every).await, b)
        };
        let ratio = a.1.as_secs_f64() / b.1.as_secs_f64();
        ratios.push(ratio);
        println!(
            "{r:5}  {:9.1}  {:8.1}  {ratio:.4}  {}/{}",
            a.1.as_secs_f64() * 1e6,
            b.1.as_secs_f64() * 1e6,
            a.0,
            b.0
        );
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    #[allow(clippy::cast_precision_loss)]
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    println!("latency ratio table/none: median {median:.4}, mean {mean:.4} ({rounds} rounds)");
    with.close(Duration::from_secs(5)).await;
    let s = with.slow_table_stats().expect("table");
    println!(
        "slow-table rows: queued {}, written {}, dropped {}, failed {}",
        s.queued, s.written, s.dropped, s.failed
    );
}

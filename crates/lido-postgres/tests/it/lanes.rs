//! Reserved capacity per priority lane against a real server: Background
//! callers hold every connection they may in `pg_sleep(1)` loops, and
//! Critical callers at 200/s still get one at once from the reserve.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lido_core::{Config, LaneLimits, Priority};
use lido_postgres::PgPool;
use lido_testkit::PgServer;

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_calls_get_the_reserve_while_background_holds_the_rest() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let pool = PgPool::builder(common::config(server, &db))
        .pool_config(Config {
            max_size: 8,
            min_idle: 8,
            lanes: LaneLimits::default().reserve(Priority::Critical, 2),
            acquire_timeout: Duration::from_secs(10),
            leak_threshold: None,
            ..Config::default()
        })
        .build()
        .await
        .expect("pool");

    // Twice as many Background loops as they may hold: 6 hold, 6 queue.
    let stop = Arc::new(AtomicBool::new(false));
    let slept = Arc::new(AtomicU64::new(0));
    let mut background = Vec::new();
    for _ in 0..12 {
        let (pool, stop, slept) = (pool.clone(), Arc::clone(&stop), Arc::clone(&slept));
        background.push(tokio::spawn(async move {
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
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        pool.status().in_use_by_lane[Priority::Background as usize],
        6
    );

    // Critical: 200 calls a second for 3 s, each timed from get() to lease.
    let mut waits = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    for _ in 0..600 {
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
    for t in background {
        t.await.expect("background task");
    }
    waits.sort();
    let p99 = waits[waits.len() * 99 / 100];
    let p50 = waits[waits.len() / 2];
    let done = slept.load(Ordering::Relaxed);
    eprintln!(
        "critical acquire p50 {p50:?} p99 {p99:?} max {:?}; background sleeps done {done}",
        waits[waits.len() - 1]
    );
    // The target is 5 ms (docs/benchmarks.md has the measured figure); the
    // bound here only has to survive a loaded CI machine.
    assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");
    assert!(done >= 12, "Background starved: {done} sleeps in 3 s");
}

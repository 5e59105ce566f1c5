//! Reserved capacity per priority lane against a real server: Background
//! callers hold every connection they may in `pg_sleep(1)` loops, and
//! Critical callers at 200/s still get one at once from the reserve; with
//! lending on, a lent call is preempted on the server for a Critical caller.

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

/// Lending on: Background runs on Critical's idle reserve; a Critical
/// caller that waited past the budget gets that call cancelled on the
/// server (the Background caller sees `PgError::Preempted`) and is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_caller_past_the_budget_preempts_a_lent_background_call() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let budget = Duration::from_millis(100);
    let pool = PgPool::builder(common::config(server, &db))
        .application_name("lido-preempt")
        .pool_config(Config {
            max_size: 2,
            lanes: LaneLimits::default()
                .reserve(Priority::Critical, 1)
                .lend(budget),
            acquire_timeout: Duration::from_secs(20),
            leak_threshold: None,
            ..Config::default()
        })
        .build()
        .await
        .expect("pool");
    let sleeper = |pool: PgPool| {
        tokio::spawn(async move {
            let conn = pool.get_with_priority(Priority::Background).await?;
            conn.no_timeout().execute("SELECT pg_sleep(8)", &[]).await
        })
    };
    let own = sleeper(pool.clone());
    let lent = sleeper(pool.clone());
    let busy = || pool.status().in_use_by_lane[Priority::Background as usize] == 2;
    for _ in 0..500 {
        if busy() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        busy(),
        "Background borrowed the idle reserve: {:?}",
        pool.status()
    );
    tokio::time::sleep(Duration::from_millis(200)).await; // both sleeps running

    let started = Instant::now();
    let critical = pool
        .get_with_priority(Priority::Critical)
        .await
        .expect("Critical served");
    let waited = started.elapsed();
    let one: i32 = critical
        .query_one("SELECT 1", &[])
        .await
        .expect("select")
        .get(0);
    assert_eq!(one, 1);
    println!("Critical waited {waited:?} (budget {budget:?}) behind a lent pg_sleep(8)");
    assert!(waited >= budget, "not before the budget: {waited:?}");
    assert!(
        waited < Duration::from_secs(4),
        "well before the sleep ends: {waited:?}"
    );
    assert_eq!(pool.stats().preemptions(), 1);

    // Exactly one of the two sleeps was stopped, as Preempted; the other runs on.
    let first = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if own.is_finished() || lent.is_finished() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(first.is_ok(), "the preempted call ended");
    let (done, running) = if own.is_finished() {
        (own, lent)
    } else {
        (lent, own)
    };
    let err = done.await.expect("join").expect_err("preempted");
    assert!(matches!(err, lido_postgres::PgError::Preempted), "{err:?}");
    assert!(err.to_string().contains("preempted"), "{err}");
    assert!(!running.is_finished(), "the lane's own call is untouched");
    let sleeping: i64 = critical
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = 'lido-preempt' AND query = 'SELECT pg_sleep(8)' AND state = 'active'",
            &[],
        )
        .await
        .expect("activity")
        .get(0);
    assert_eq!(sleeping, 1, "the server stopped the preempted sleep");
    running.abort();
}

//! Server failures: terminated backends, a stopped server (breaker), a
//! crash-restart. Each test runs its own server because it breaks it.

use crate::common;

use std::time::Duration;

use lido_core::{BreakerState, Error as CoreError};
use lido_postgres::{PgPool, PgPooled};
use lido_testkit::{PgServer, StopMode};
use tokio::time::Instant;

const HANG_GUARD: Duration = Duration::from_secs(30);

async fn warm(pool: &PgPool, n: usize) {
    let mut held: Vec<PgPooled> = Vec::new();
    for _ in 0..n {
        let conn = pool.get().await.expect("get");
        conn.query_one("SELECT 1", &[]).await.expect("query");
        held.push(conn);
    }
}

async fn serves(pool: &PgPool) -> bool {
    match pool.get().await {
        Ok(conn) => conn.query_one("SELECT 1", &[]).await.is_ok(),
        Err(_) => false,
    }
}

async fn wait_until_serving(pool: &PgPool) -> Duration {
    let started = Instant::now();
    while !serves(pool).await {
        assert!(started.elapsed() < HANG_GUARD, "pool never recovered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

const APP: &str = "lido_recovery_test";

/// Every connection back and idle, and the server holds no more sessions
/// for this pool than the pool has connections.
async fn assert_no_leaks(server: &PgServer, pool: &PgPool) {
    let s = common::settled(pool, Duration::from_secs(5)).await;
    assert_eq!(s.size, s.idle, "every connection back and idle: {s:?}");
    assert_eq!(s.in_use, 0);
    common::no_leaked_sessions(server, pool, APP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_backends_are_replaced_without_caller_errors() {
    let server = PgServer::start().expect("server");
    let db = server.create_database().expect("db");
    let pool = common::builder(common::config(&server, &db), 4)
        .application_name(APP)
        .build()
        .await
        .expect("pool");
    warm(&pool, 4).await;
    assert_eq!(pool.status().idle, 4);
    let killed = server.terminate_backends(&db).expect("terminate");
    assert_eq!(killed, 4);
    // The client reads the server's FATAL message on its connection task.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..8 {
        let conn = pool.get().await.expect("get after terminate");
        let row = conn
            .query_one("SELECT 1", &[])
            .await
            .expect("no error reaches the caller");
        assert_eq!(row.get::<_, i32>(0), 1);
    }
    assert!(pool.stats().closed(lido_core::CloseReason::Broken) >= 1);
    assert_no_leaks(&server, &pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_opens_the_breaker_and_a_restarted_one_is_served() {
    let server = PgServer::start().expect("server");
    let db = server.create_database().expect("db");
    // A long open period, so that "fails fast while open" is what is tested
    // (with the default 30 ms period the next get() may be the trial).
    let mut config = lido_core::Config {
        max_size: 4,
        acquire_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        leak_threshold: None,
        ..Default::default()
    };
    config.breaker.open_for = Duration::from_secs(3);
    let pool = PgPool::builder(common::config(&server, &db))
        .pool_config(config)
        .application_name(APP)
        .build()
        .await
        .expect("pool");
    warm(&pool, 2).await;
    server.stop().expect("stop");

    let started = Instant::now();
    let mut failures = 0;
    loop {
        match pool.get().await {
            Err(CoreError::CircuitOpen { .. }) => break,
            Err(_) => failures += 1,
            Ok(conn) => assert!(
                conn.query_one("SELECT 1", &[]).await.is_err(),
                "server is down"
            ),
        }
        assert!(started.elapsed() < HANG_GUARD, "breaker never opened");
    }
    println!(
        "breaker opened after {failures} failed get()s in {:?}",
        started.elapsed()
    );
    assert_eq!(pool.breaker_state(), BreakerState::Open);
    let t = Instant::now();
    let e = pool.get().await.expect_err("fails fast while open");
    assert!(matches!(e, CoreError::CircuitOpen { .. }), "{e}");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "fail fast, not acquire_timeout: {:?}",
        t.elapsed()
    );

    server.start_again().expect("start again");
    let took = wait_until_serving(&pool).await;
    println!("served again {took:?} after the server accepted connections");
    assert_eq!(pool.breaker_state(), BreakerState::Closed);
    warm(&pool, 4).await;
    assert_no_leaks(&server, &pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_restart_is_survived() {
    let server = PgServer::start().expect("server");
    let db = server.create_database().expect("db");
    let pool = common::builder(common::config(&server, &db), 4)
        .application_name(APP)
        .build()
        .await
        .expect("pool");
    warm(&pool, 4).await;
    server.restart(StopMode::Immediate).expect("crash restart");
    wait_until_serving(&pool).await;
    warm(&pool, 4).await;
    assert_no_leaks(&server, &pool).await;
}

//! Retry and backoff, circuit breaker, timeouts, FIFO fairness and priority
//! lanes — on tokio's paused clock.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use lido_core::{BreakerConfig, BreakerState, ConnectFailure, Error, Pool, Priority, RetryConfig};
use lido_testkit::fake::{advance, assert_at_rest, settle, Fake, FakeError};
use parking_lot::Mutex;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[tokio::test(start_paused = true)]
async fn transient_connect_failures_are_retried_within_the_deadline() {
    let (m, script) = Fake::new();
    script.fail_next.store(2, Ordering::SeqCst);
    let pool = Pool::builder(m).max_size(2).build_lazy().expect("build");
    let started = tokio::time::Instant::now();
    let c = pool.get().await.expect("third attempt succeeds");
    assert_eq!(script.attempts(), 3);
    assert_eq!(pool.stats().connect_failures(), 2);
    let ceiling = RetryConfig::default().base * 3;
    assert!(
        started.elapsed() <= ceiling,
        "full-jitter sleeps stay under base + 2 base"
    );
    drop(c);
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn permanent_failure_is_reported_at_once_without_retry() {
    let (m, script) = Fake::new();
    script.bad_password.store(true, Ordering::SeqCst);
    let pool = Pool::builder(m).max_size(2).build_lazy().expect("build");
    let err = pool.get().await.expect_err("bad password");
    match &err {
        Error::Connect { cause, attempts } => {
            assert_eq!(*attempts, 1);
            assert!(matches!(cause.backend(), Some(FakeError::Permanent)));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("bad password"));
    assert_eq!(script.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn attempts_are_capped_and_backoff_grows() {
    let (m, script) = Fake::new();
    script.down.store(true, Ordering::SeqCst);
    let retry = RetryConfig {
        base: ms(100),
        cap: ms(400),
        max_attempts: 5,
    };
    let pool = Pool::builder(m)
        .max_size(1)
        .retry(retry)
        .breaker(BreakerConfig {
            enabled: false,
            ..Default::default()
        })
        .build_lazy()
        .expect("build");
    let err = pool.get().await.expect_err("down");
    assert!(matches!(err, Error::Connect { attempts: 5, .. }), "{err:?}");
    assert_eq!(script.attempts(), 5);
}

#[tokio::test(start_paused = true)]
async fn connect_timeout_is_reported_as_such() {
    let (m, script) = Fake::new();
    *script.connect_delay.lock() = Duration::from_secs(60);
    let pool = Pool::builder(m)
        .max_size(1)
        .connect_timeout(Duration::from_secs(1))
        .retry(RetryConfig {
            max_attempts: 1,
            ..Default::default()
        })
        .build_lazy()
        .expect("build");
    let err = pool.get().await.expect_err("slow connect");
    assert!(
        matches!(
            err,
            Error::Connect {
                cause: ConnectFailure::Timeout(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_timeout());
    assert!(err.to_string().contains("connect_timeout"));
}

#[tokio::test(start_paused = true)]
async fn acquire_timeout_says_which_timeout_fired() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(1)
        .acquire_timeout(Duration::from_secs(2))
        .build()
        .await
        .expect("build");
    let held = pool.get().await.expect("get");
    let started = tokio::time::Instant::now();
    let err = pool.get().await.expect_err("pool exhausted");
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    match &err {
        Error::AcquireTimeout {
            in_use, max_size, ..
        } => assert_eq!((*in_use, *max_size), (1, 1)),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("acquire_timeout"));
    assert_eq!(pool.stats().acquire_timeouts(), 1);
    drop(held);
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_fails_fast_half_opens_and_closes() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(4)
        .retry(RetryConfig {
            max_attempts: 1,
            ..Default::default()
        })
        .breaker(BreakerConfig {
            consecutive_failures: 3,
            open_for: Duration::from_secs(2),
            ..Default::default()
        })
        .build_lazy()
        .expect("build");
    script.down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        assert!(matches!(pool.get().await, Err(Error::Connect { .. })));
    }
    assert_eq!(pool.breaker_state(), BreakerState::Open);
    let attempts = script.attempts();
    let err = pool.get().await.expect_err("fails fast");
    match &err {
        Error::CircuitOpen {
            retry_in,
            last_error,
        } => {
            assert!(*retry_in <= Duration::from_secs(2));
            assert!(last_error.is_some(), "carries the last cause");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(script.attempts(), attempts, "no connect while open");

    advance(Duration::from_millis(2100)).await;
    let r = pool.get().await.map(|_| ());
    assert!(
        matches!(r, Err(Error::Connect { .. })),
        "the trial's caller sees its cause: {r:?}"
    );
    assert_eq!(pool.stats().breaker_half_opened(), 1);
    assert_eq!(
        pool.breaker_state(),
        BreakerState::Open,
        "failed trial reopens"
    );
    assert!(matches!(pool.get().await, Err(Error::CircuitOpen { .. })));

    script.down.store(false, Ordering::SeqCst);
    advance(Duration::from_millis(2100)).await;
    let c = pool.get().await.expect("trial succeeds");
    assert_eq!(pool.breaker_state(), BreakerState::Closed);
    assert_eq!(pool.stats().breaker_opened(), 2);
    assert_eq!(pool.stats().breaker_closed(), 1);
    drop(c);
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn open_breaker_fails_all_waiters_but_idle_connections_still_serve() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(3)
        .min_idle(1)
        .retry(RetryConfig {
            max_attempts: 1,
            ..Default::default()
        })
        .breaker(BreakerConfig {
            consecutive_failures: 2,
            ..Default::default()
        })
        .build()
        .await
        .expect("build");
    script.down.store(true, Ordering::SeqCst);
    let held = pool.get().await.expect("idle one");
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let p = pool.clone();
            tokio::spawn(async move { p.get().await.map(|_| ()) })
        })
        .collect();
    for w in waiters {
        assert!(w.await.expect("join").is_err());
    }
    assert_eq!(pool.breaker_state(), BreakerState::Open);
    drop(held);
    let again = pool.get().await.expect("idle connection served while open");
    drop(again);
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn waiters_are_served_first_come_first_served() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m).max_size(1).build().await.expect("build");
    let held = pool.get().await.expect("get");
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let p = pool.clone();
        let order = Arc::clone(&order);
        tasks.push(tokio::spawn(async move {
            let c = p.get().await.expect("get");
            order.lock().push(i);
            tokio::time::sleep(ms(1)).await;
            drop(c);
        }));
        settle().await;
    }
    assert_eq!(pool.status().waiters, 20);
    // A newcomer must not barge past the queue even though a connection comes back now.
    drop(held);
    let newcomer = pool.get().await.expect("served last");
    order.lock().push(99);
    drop(newcomer);
    for t in tasks {
        t.await.expect("join");
    }
    let mut expected: Vec<i32> = (0..20).collect();
    expected.push(99);
    assert_eq!(*order.lock(), expected);
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn critical_waiters_go_before_normal_and_background() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m).max_size(1).build().await.expect("build");
    let held = pool.get().await.expect("get");
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (name, prio) in [
        ("bg", Priority::Background),
        ("n1", Priority::Normal),
        ("crit", Priority::Critical),
        ("n2", Priority::Normal),
    ] {
        let p = pool.clone();
        let order = Arc::clone(&order);
        tasks.push(tokio::spawn(async move {
            let c = p.get_with_priority(prio).await.expect("get");
            order.lock().push(name);
            drop(c);
        }));
        settle().await;
    }
    drop(held);
    for t in tasks {
        t.await.expect("join");
    }
    assert_eq!(*order.lock(), vec!["crit", "n1", "n2", "bg"]);
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn failing_validation_counts_and_get_still_succeeds() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(2)
        .min_idle(2)
        .build()
        .await
        .expect("build");
    advance(Duration::from_secs(1)).await;
    script.check_fails.store(true, Ordering::SeqCst);
    let c = pool.get().await.expect("replacement");
    assert_eq!(pool.stats().closed(lido_core::CloseReason::FailedCheck), 2);
    drop(c);
    script.check_fails.store(false, Ordering::SeqCst);
    assert_at_rest(&pool, &script);
}

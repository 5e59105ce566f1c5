//! What a buggy manager or odd settings must not do to the pool: a manager
//! that panics costs one connect (or one connection), never a slot; absurd
//! durations do not panic; `retain`'s predicate may call back into the pool;
//! a failed warm-up reaches waiters at once.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_core::{BreakerConfig, ConnectFailure, Error, ErrorClass, Manager, Pool, RetryConfig};
use lido_testkit::fake::{advance, assert_at_rest, secs, settle, Fake};

/// Panics in whichever step the test asks for.
#[derive(Default)]
struct Knobs {
    connect: AtomicBool,
    check: AtomicBool,
    reset: AtomicBool,
    opened: AtomicU32,
}

#[derive(Clone, Default)]
struct Panicky(Arc<Knobs>);

struct Conn {
    dirty: bool,
}

impl Manager for Panicky {
    type Connection = Conn;
    type Error = std::io::Error;

    async fn connect(&self) -> Result<Conn, std::io::Error> {
        assert!(!self.0.connect.load(Ordering::SeqCst), "connect bug");
        self.0.opened.fetch_add(1, Ordering::SeqCst);
        Ok(Conn { dirty: false })
    }
    async fn check(&self, _: &mut Conn) -> Result<(), std::io::Error> {
        assert!(!self.0.check.load(Ordering::SeqCst), "check bug");
        Ok(())
    }
    fn needs_reset(&self, conn: &mut Conn) -> bool {
        conn.dirty
    }
    async fn reset(&self, _: &mut Conn) -> Result<(), std::io::Error> {
        assert!(!self.0.reset.load(Ordering::SeqCst), "reset bug");
        Ok(())
    }
    fn classify(&self, _: &std::io::Error) -> ErrorClass {
        ErrorClass::Transient
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_connect_fails_one_get_and_frees_its_slot() {
    let m = Panicky::default();
    let knobs = Arc::clone(&m.0);
    let pool = Pool::builder(m).max_size(1).build().await.expect("build");
    knobs.connect.store(true, Ordering::SeqCst);
    let err = pool.get().await.expect_err("connect panicked");
    assert!(
        matches!(
            &err,
            Error::Connect {
                cause: ConnectFailure::Panicked,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(pool.status().connecting, 0, "slot released");
    knobs.connect.store(false, Ordering::SeqCst);
    drop(pool.get().await.expect("the slot is usable again"));
    assert_eq!(pool.status().size, 1);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_reset_or_keepalive_closes_that_connection_only() {
    let m = Panicky::default();
    let knobs = Arc::clone(&m.0);
    let pool = Pool::builder(m)
        .max_size(1)
        .keepalive(Some(secs(2)))
        .build()
        .await
        .expect("build");
    knobs.reset.store(true, Ordering::SeqCst);
    let mut c = pool.get().await.expect("get");
    c.dirty = true;
    drop(c);
    settle().await;
    assert_eq!(
        pool.status().size,
        0,
        "the connection whose reset panicked is gone"
    );
    knobs.reset.store(false, Ordering::SeqCst);
    drop(pool.get().await.expect("a new connection"));
    knobs.check.store(true, Ordering::SeqCst);
    advance(secs(4)).await; // keepalive ping panics
    assert_eq!(pool.status().size, 0, "{:?}", pool.status());
    knobs.check.store(false, Ordering::SeqCst);
    drop(pool.get().await.expect("served again"));
    assert_eq!(knobs.opened.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn durations_of_duration_max_mean_never_and_do_not_panic() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(1)
        .acquire_timeout(Duration::MAX)
        .max_lifetime(Some(Duration::MAX))
        .idle_timeout(Some(Duration::MAX))
        .leak_threshold(Some(Duration::MAX))
        .breaker(BreakerConfig {
            open_for: Duration::MAX,
            ..Default::default()
        })
        .build()
        .await
        .expect("build");
    let c = pool.get().await.expect("get");
    drop(c);
    advance(secs(5)).await;
    let report = pool.close(Duration::MAX).await;
    assert!(report.drained);
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn retain_may_call_back_into_the_pool() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(4)
        .min_idle(3)
        .build()
        .await
        .expect("build");
    let mut seen = Vec::new();
    pool.retain(|_, info| {
        seen.push(pool.status().idle); // would deadlock with the lock held
        info.id % 2 == 0
    });
    assert_eq!(seen.len(), 3);
    assert!(
        pool.status().size < 3,
        "odd ids closed: {:?}",
        pool.status()
    );
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn a_failed_lazy_warm_up_reaches_waiting_callers_at_once() {
    let (m, script) = Fake::new();
    script.bad_password.store(true, Ordering::SeqCst);
    *script.connect_delay.lock() = Duration::from_millis(100);
    let pool = Pool::builder(m)
        .max_size(2)
        .min_idle(2)
        .retry(RetryConfig::default())
        .build_lazy()
        .expect("build");
    settle().await;
    assert_eq!(pool.status().connecting, 2, "warm-up connects in flight");
    let started = tokio::time::Instant::now();
    let err = pool.get().await.expect_err("bad password");
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the caller waited for a later round instead of hearing the failure"
    );
    assert_eq!(pool.status().connecting, 0);
}

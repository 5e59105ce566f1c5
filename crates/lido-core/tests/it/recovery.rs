//! Recovery with the default settings, on tokio's paused clock: 64 callers
//! loop on a pool of 16 while the fake database goes down for 2 s and comes
//! back. While it is down the pool fails fast and probes it a few dozen
//! times a second in all; once it is back the first caller is served within
//! 50 ms, and the refill never has more than `max_size` connects in flight.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_core::{BreakerState, Error, Pool};
use lido_testkit::fake::{assert_at_rest, settle, Fake, FakeError, Script};
use parking_lot::Mutex;
use tokio::time::Instant;

const CALLERS: usize = 64;
const MAX_SIZE: usize = 16;
/// A caller's pause between two `get()`s (and its simulated query time).
const PACE: Duration = Duration::from_millis(5);

/// What the callers saw, shared with the test.
#[derive(Default)]
struct Log {
    /// Every successful `get()` on a healthy database, by time.
    served: Mutex<Vec<Instant>>,
    /// `get()` errors by kind.
    circuit_open: AtomicU64,
    connect: AtomicU64,
    other: Mutex<Vec<String>>,
    /// The longest a `get()` took to fail.
    slowest_failure: Mutex<Duration>,
    stop: AtomicBool,
}

/// One caller: `get()`, "run a query" (on a down database the connection
/// turns out broken), pause, again.
async fn caller(pool: Pool<Fake>, script: Arc<Script>, log: Arc<Log>) {
    while !log.stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        match pool.get().await {
            Ok(mut conn) => {
                if script.down.load(Ordering::SeqCst) {
                    conn.broken = true; // the query fails: the server is gone
                } else {
                    log.served.lock().push(Instant::now());
                }
                tokio::time::sleep(PACE).await;
                drop(conn);
            }
            Err(e) => {
                let took = started.elapsed();
                let mut slowest = log.slowest_failure.lock();
                *slowest = (*slowest).max(took);
                drop(slowest);
                match e {
                    Error::CircuitOpen { .. } => log.circuit_open.fetch_add(1, Ordering::SeqCst),
                    Error::Connect { .. } => log.connect.fetch_add(1, Ordering::SeqCst),
                    other => {
                        log.other.lock().push(other.to_string());
                        0
                    }
                };
            }
        }
        tokio::time::sleep(PACE).await;
    }
}

/// Advances the paused clock 1 ms at a time (timers fire on time, to the ms).
async fn advance(d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        tokio::time::advance(Duration::from_millis(1)).await;
        settle().await;
    }
}

fn spawn_callers(pool: &Pool<Fake>, script: &Arc<Script>, log: &Arc<Log>) {
    for _ in 0..CALLERS {
        tokio::spawn(caller(pool.clone(), Arc::clone(script), Arc::clone(log)));
    }
}

#[tokio::test(start_paused = true)]
async fn an_outage_is_probed_at_a_bounded_rate_and_the_first_caller_is_served_within_50ms() {
    let (m, script) = Fake::new();
    *script.connect_delay.lock() = Duration::from_millis(2);
    let pool = Pool::builder(m)
        .max_size(MAX_SIZE)
        .build()
        .await
        .expect("build");
    let log = Arc::new(Log::default());
    spawn_callers(&pool, &script, &log);
    advance(Duration::from_millis(200)).await;
    assert!(!log.served.lock().is_empty(), "served while healthy");
    assert!(script.max_connecting() <= MAX_SIZE as u64);

    script.set_down(true);
    advance(Duration::from_millis(500)).await;
    assert!(pool.stats().breaker_opened() >= 1, "tripped");
    assert_ne!(
        pool.breaker_state(),
        BreakerState::Closed,
        "open or probing"
    );
    let (attempts, errors) = (script.attempts(), log.circuit_open.load(Ordering::SeqCst));
    advance(Duration::from_secs(1)).await;
    let per_second = script.attempts() - attempts;
    println!("connect attempts in one second of outage: {per_second}");
    assert!(
        (10..=50).contains(&per_second),
        "probing is bounded, in all, not per caller: {per_second}/s"
    );
    assert!(
        log.circuit_open.load(Ordering::SeqCst) > errors,
        "callers fail fast with CircuitOpen"
    );
    assert!(
        *log.slowest_failure.lock() < Duration::from_millis(50),
        "no failing get() waits: {:?}",
        log.slowest_failure.lock()
    );
    assert!(log.other.lock().is_empty(), "{:?}", log.other.lock());

    advance(Duration::from_millis(500)).await;
    let up = Instant::now();
    script.set_down(false);
    advance(Duration::from_millis(300)).await;
    let first = log
        .served
        .lock()
        .iter()
        .copied()
        .find(|t| *t >= up)
        .expect("served again");
    let recovery = first - up;
    println!("first caller served {recovery:?} after the database came back");
    assert!(recovery <= Duration::from_millis(50), "{recovery:?}");
    assert_eq!(pool.breaker_state(), BreakerState::Closed);
    assert!(
        script.max_connecting() <= MAX_SIZE as u64,
        "never more than max_size connects at once: {}",
        script.max_connecting()
    );
    assert_eq!(pool.status().size, MAX_SIZE, "refilled");

    log.stop.store(true, Ordering::SeqCst);
    advance(Duration::from_millis(50)).await;
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn while_down_get_fails_fast_and_one_probe_per_period_goes_out() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(MAX_SIZE)
        .build_lazy()
        .expect("build");
    script.set_down(true);
    let mut failures = 0;
    while pool.breaker_state() != BreakerState::Open {
        let e = pool.get().await.map(drop).expect_err("down");
        assert!(matches!(e, Error::Connect { .. }), "{e:?}");
        failures += 1;
        assert!(failures < 20, "the breaker opens");
    }
    // Open: every get() fails at once, without a connect.
    let attempts = script.attempts();
    let t = Instant::now();
    for _ in 0..100 {
        match pool.get().await.map(drop).expect_err("open") {
            Error::CircuitOpen {
                retry_in,
                last_error,
            } => {
                assert!(retry_in <= Duration::from_millis(30), "{retry_in:?}");
                let cause = last_error.expect("the last connect error");
                assert!(cause
                    .to_string()
                    .contains(&FakeError::Transient.to_string()));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(t.elapsed(), Duration::ZERO, "fails fast");
    assert_eq!(script.attempts(), attempts, "no connect while open");
    // A period later the next get() is the probe (its caller sees the
    // cause), and the breaker opens again for another period.
    advance(Duration::from_millis(30)).await;
    let e = pool.get().await.map(drop).expect_err("probe fails");
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    assert_eq!(script.attempts(), attempts + 1, "one probe");
    assert_eq!(pool.breaker_state(), BreakerState::Open);
    settle().await;
    assert_at_rest(&pool, &script);
}

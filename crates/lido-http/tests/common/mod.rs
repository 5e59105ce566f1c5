//! A fake `lido_core::Manager` whose connects and checks fail or slow down
//! at runtime, and helpers for paused-clock tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_core::{BreakerConfig, Manager, Pool, PoolBuilder, RetryConfig};
use parking_lot::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    #[error("connection refused (fake database down)")]
    Down,
    #[error("fake check failure")]
    Check,
}

/// Knobs the test turns while the pool runs.
#[derive(Default)]
pub struct Knobs {
    /// Every connect fails while set.
    pub down: AtomicBool,
    /// Every check fails while set.
    pub check_fails: AtomicBool,
    pub connect_delay: Mutex<Duration>,
    pub check_delay: Mutex<Duration>,
    pub connects: AtomicU64,
    pub checks: AtomicU64,
}

impl Knobs {
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
    pub fn set_check_delay(&self, d: Duration) {
        *self.check_delay.lock() = d;
    }
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
pub struct Fake(pub Arc<Knobs>);

impl Fake {
    pub fn new() -> (Self, Arc<Knobs>) {
        let k = Arc::new(Knobs::default());
        (Self(Arc::clone(&k)), k)
    }
}

impl Manager for Fake {
    type Connection = u64;
    type Error = FakeError;

    async fn connect(&self) -> Result<u64, FakeError> {
        let n = self.0.connects.fetch_add(1, Ordering::SeqCst);
        let delay = *self.0.connect_delay.lock();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.0.down.load(Ordering::SeqCst) {
            return Err(FakeError::Down);
        }
        Ok(n)
    }

    async fn check(&self, _conn: &mut u64) -> Result<(), FakeError> {
        self.0.checks.fetch_add(1, Ordering::SeqCst);
        let delay = *self.0.check_delay.lock();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.0.check_fails.load(Ordering::SeqCst) {
            return Err(FakeError::Check);
        }
        Ok(())
    }
}

/// A small pool over the fake: quick retries, a breaker that trips after 3 failures.
pub async fn pool(max_size: usize) -> (Pool<Fake>, Arc<Knobs>) {
    let (builder, knobs) = builder(max_size);
    (builder.build().await.expect("pool builds"), knobs)
}

/// The builder behind [`pool`], for tests that change a setting.
pub fn builder(max_size: usize) -> (PoolBuilder<Fake>, Arc<Knobs>) {
    let (fake, knobs) = Fake::new();
    let builder = Pool::builder(fake)
        .max_size(max_size)
        .min_idle(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(1))
        .maintenance_interval(Duration::from_millis(250))
        .retry(RetryConfig {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(50),
            max_attempts: 2,
        })
        .breaker(BreakerConfig {
            consecutive_failures: 3,
            open_for: Duration::from_secs(1),
            ..Default::default()
        });
    (builder, knobs)
}

/// Lets spawned tasks run without moving a paused clock.
pub async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

/// Advances a paused clock in small steps so timers and tasks interleave.
pub async fn advance(d: Duration) {
    let step = Duration::from_millis(10);
    let mut left = d;
    while !left.is_zero() {
        let s = step.min(left);
        tokio::time::advance(s).await;
        settle().await;
        left -= s;
    }
}

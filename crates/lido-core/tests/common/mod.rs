//! A scriptable fake manager for testing the pool core's own logic.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_core::{ErrorClass, Manager};
use parking_lot::Mutex;
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    #[error("fake transient failure")]
    Transient,
    #[error("fake permanent failure (bad password)")]
    Permanent,
    #[error("fake check failure")]
    Check,
}

/// Knobs and counters shared by the manager and the test.
#[derive(Default)]
pub struct Script {
    pub connect_delay: Mutex<Duration>,
    pub check_delay: Mutex<Duration>,
    /// Fail this many upcoming connects (transient).
    pub fail_next: AtomicU32,
    /// Every connect fails (transient) while set.
    pub down: AtomicBool,
    /// Every connect fails permanently while set.
    pub bad_password: AtomicBool,
    pub check_fails: AtomicBool,
    pub reset_fails: AtomicBool,
    /// When set, connects wait for a permit here (a gate the test opens).
    pub connect_gate: Mutex<Option<Arc<Semaphore>>>,
    pub check_gate: Mutex<Option<Arc<Semaphore>>>,
    pub attempts: AtomicU64,
    pub created: AtomicU64,
    pub checks: AtomicU64,
    pub resets: AtomicU64,
    /// Connections alive right now (dropped ones subtract).
    pub live: Arc<AtomicI64>,
}

pub struct FakeConn {
    pub id: u64,
    pub broken: bool,
    pub dirty: bool,
    live: Arc<AtomicI64>,
}

impl Drop for FakeConn {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Default)]
pub struct Fake(pub Arc<Script>);

impl Fake {
    pub fn new() -> (Self, Arc<Script>) {
        let s = Arc::new(Script::default());
        (Self(Arc::clone(&s)), s)
    }
}

impl Script {
    pub fn live(&self) -> i64 {
        self.live.load(Ordering::SeqCst)
    }
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::SeqCst)
    }
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::SeqCst)
    }
    pub fn gate_connects(&self) -> Arc<Semaphore> {
        let g = Arc::new(Semaphore::new(0));
        *self.connect_gate.lock() = Some(Arc::clone(&g));
        g
    }
    pub fn gate_checks(&self) -> Arc<Semaphore> {
        let g = Arc::new(Semaphore::new(0));
        *self.check_gate.lock() = Some(Arc::clone(&g));
        g
    }
}

async fn pass(gate: Option<Arc<Semaphore>>) {
    if let Some(g) = gate {
        g.acquire().await.expect("gate open").forget();
    }
}

impl Manager for Fake {
    type Connection = FakeConn;
    type Error = FakeError;

    async fn connect(&self) -> Result<FakeConn, FakeError> {
        let s = &self.0;
        let n = s.attempts.fetch_add(1, Ordering::SeqCst);
        let delay = *s.connect_delay.lock();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let gate = s.connect_gate.lock().clone();
        pass(gate).await;
        if s.bad_password.load(Ordering::SeqCst) {
            return Err(FakeError::Permanent);
        }
        if s.down.load(Ordering::SeqCst) {
            return Err(FakeError::Transient);
        }
        if s.fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
            .is_ok()
        {
            return Err(FakeError::Transient);
        }
        s.created.fetch_add(1, Ordering::SeqCst);
        s.live.fetch_add(1, Ordering::SeqCst);
        Ok(FakeConn {
            id: n,
            broken: false,
            dirty: false,
            live: Arc::clone(&s.live),
        })
    }

    async fn check(&self, _conn: &mut FakeConn) -> Result<(), FakeError> {
        let s = &self.0;
        s.checks.fetch_add(1, Ordering::SeqCst);
        let delay = *s.check_delay.lock();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let gate = s.check_gate.lock().clone();
        pass(gate).await;
        if s.check_fails.load(Ordering::SeqCst) {
            return Err(FakeError::Check);
        }
        Ok(())
    }

    fn has_broken(&self, conn: &mut FakeConn) -> bool {
        conn.broken
    }

    fn needs_reset(&self, conn: &mut FakeConn) -> bool {
        conn.dirty
    }

    async fn reset(&self, conn: &mut FakeConn) -> Result<(), FakeError> {
        self.0.resets.fetch_add(1, Ordering::SeqCst);
        if self.0.reset_fails.load(Ordering::SeqCst) {
            return Err(FakeError::Check);
        }
        conn.dirty = false;
        Ok(())
    }

    fn classify(&self, err: &FakeError) -> ErrorClass {
        match err {
            FakeError::Permanent => ErrorClass::Permanent,
            _ => ErrorClass::Transient,
        }
    }
}

/// `Duration::from_secs`, short for tests full of them.
pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Lets spawned tasks run (paused clock: no time passes).
pub async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

/// Advances the paused clock in small steps so timers and tasks interleave.
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

/// Asserts the pool is at rest: nothing leased or waiting, every connection accounted for.
pub fn assert_at_rest<M: Manager>(pool: &lido_core::Pool<M>, script: &Script) {
    let s = pool.status();
    assert_eq!(s.size, s.idle, "leased connections remain: {s:?}");
    assert_eq!(s.waiters, 0, "waiters remain: {s:?}");
    assert!(s.size <= s.max_size, "{s:?}");
    assert_eq!(s.connecting, 0, "{s:?}");
    assert_eq!(
        script.live(),
        s.size as i64,
        "connections alive outside the pool: {s:?}"
    );
}

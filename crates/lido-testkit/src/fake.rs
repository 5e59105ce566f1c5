//! A scriptable fake [`lido_core::Manager`] for testing the pool core's own
//! logic (and anything built on it that needs no real database), and helpers
//! for tests on tokio's paused clock.
//!
//! [`Fake`] opens [`FakeConn`]s; the test turns the knobs of the shared
//! [`Script`] while the pool runs — connects that fail, hang at a gate or take
//! a while, checks and resets that fail — and reads its counters.
//!
//! ```
//! use std::time::Duration;
//! use lido_core::Pool;
//! use lido_testkit::fake::Fake;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (fake, script) = Fake::new();
//! let pool = Pool::builder(fake).max_size(2).min_idle(1).build().await.expect("pool");
//! script.set_down(true);
//! let conn = pool.get().await.expect("an idle connection is still there");
//! assert_eq!(script.live(), 1);
//! drop(conn);
//! # }
//! ```

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_core::{ErrorClass, Manager, Pool};
use parking_lot::Mutex;
use tokio::sync::Semaphore;

/// What the fake's connects, checks and resets fail with.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// A connect failed in a way worth retrying (the database is "down").
    #[error("fake transient failure")]
    Transient,
    /// A connect failed for good ([`ErrorClass::Permanent`]).
    #[error("fake permanent failure (bad password)")]
    Permanent,
    /// A check or reset failed.
    #[error("fake check failure")]
    Check,
}

/// Knobs and counters shared by the manager and the test.
#[derive(Default)]
pub struct Script {
    /// Each connect sleeps this long first.
    pub connect_delay: Mutex<Duration>,
    /// Each check sleeps this long first.
    pub check_delay: Mutex<Duration>,
    /// Fail this many upcoming connects (transient).
    pub fail_next: AtomicU32,
    /// Every connect fails (transient) while set.
    pub down: AtomicBool,
    /// Every connect fails permanently while set.
    pub bad_password: AtomicBool,
    /// Every check fails while set.
    pub check_fails: AtomicBool,
    /// Every reset fails while set.
    pub reset_fails: AtomicBool,
    /// When set, connects wait for a permit here (a gate the test opens).
    pub connect_gate: Mutex<Option<Arc<Semaphore>>>,
    /// When set, checks wait for a permit here.
    pub check_gate: Mutex<Option<Arc<Semaphore>>>,
    /// Connects started (failed ones included).
    pub attempts: AtomicU64,
    /// Connects in flight right now (started, not yet finished or dropped).
    pub connecting: AtomicU64,
    /// The most connects ever in flight at once.
    pub max_connecting: AtomicU64,
    /// Connects that succeeded.
    pub created: AtomicU64,
    /// Checks started.
    pub checks: AtomicU64,
    /// Resets started.
    pub resets: AtomicU64,
    /// Preempt handles called (lane lending).
    pub preemptions: AtomicU64,
    /// Connections alive right now (dropped ones subtract).
    pub live: Arc<AtomicI64>,
}

/// A fake connection: the test marks it broken or dirty through the guard.
pub struct FakeConn {
    /// The connect attempt that made it (0, 1, ...).
    pub id: u64,
    /// `has_broken` reports it broken.
    pub broken: bool,
    /// `needs_reset` asks for a reset (which clears it).
    pub dirty: bool,
    /// Set by the pool's preempt handle: the "call" on it should stop;
    /// `has_broken` then reports it broken.
    pub preempted: Arc<AtomicBool>,
    live: Arc<AtomicI64>,
}

impl Drop for FakeConn {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The fake manager; clones share one [`Script`].
#[derive(Clone, Default)]
pub struct Fake(pub Arc<Script>);

impl Fake {
    /// A manager and the script that steers it.
    pub fn new() -> (Self, Arc<Script>) {
        let s = Arc::new(Script::default());
        (Self(Arc::clone(&s)), s)
    }
}

impl Script {
    /// Connections alive (made and not yet dropped).
    pub fn live(&self) -> i64 {
        self.live.load(Ordering::SeqCst)
    }

    /// Connects started.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::SeqCst)
    }

    /// The most connects that were ever in flight at once.
    pub fn max_connecting(&self) -> u64 {
        self.max_connecting.load(Ordering::SeqCst)
    }

    /// Checks started.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::SeqCst)
    }

    /// Every connect fails (transient) while `down`.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Each check sleeps `d` first.
    pub fn set_check_delay(&self, d: Duration) {
        *self.check_delay.lock() = d;
    }

    /// From now on connects wait at a gate; each permit added lets one through.
    pub fn gate_connects(&self) -> Arc<Semaphore> {
        let g = Arc::new(Semaphore::new(0));
        *self.connect_gate.lock() = Some(Arc::clone(&g));
        g
    }

    /// From now on checks wait at a gate; each permit added lets one through.
    pub fn gate_checks(&self) -> Arc<Semaphore> {
        let g = Arc::new(Semaphore::new(0));
        *self.check_gate.lock() = Some(Arc::clone(&g));
        g
    }
}

/// One connect in flight: counted in `connecting` until dropped (also when
/// the pool gives up on it mid-way).
struct InFlight<'a>(&'a Script);

impl<'a> InFlight<'a> {
    fn start(s: &'a Script) -> Self {
        let now = s.connecting.fetch_add(1, Ordering::SeqCst) + 1;
        s.max_connecting.fetch_max(now, Ordering::SeqCst);
        Self(s)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.connecting.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn pass(gate: Option<Arc<Semaphore>>) {
    if let Some(g) = gate {
        g.acquire().await.expect("gate open").forget();
    }
}

async fn pause(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

impl Script {
    /// The scripted outcome of one connect, after its delay and gate.
    fn connect_outcome(&self) -> Result<(), FakeError> {
        if self.bad_password.load(Ordering::SeqCst) {
            return Err(FakeError::Permanent);
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(FakeError::Transient);
        }
        let fail_next = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1));
        if fail_next.is_ok() {
            return Err(FakeError::Transient);
        }
        Ok(())
    }
}

impl Manager for Fake {
    type Connection = FakeConn;
    type Error = FakeError;

    async fn connect(&self) -> Result<FakeConn, FakeError> {
        let s = &self.0;
        let n = s.attempts.fetch_add(1, Ordering::SeqCst);
        let _in_flight = InFlight::start(s);
        let delay = *s.connect_delay.lock();
        pause(delay).await;
        let gate = s.connect_gate.lock().clone();
        pass(gate).await;
        s.connect_outcome()?;
        s.created.fetch_add(1, Ordering::SeqCst);
        s.live.fetch_add(1, Ordering::SeqCst);
        Ok(FakeConn {
            id: n,
            broken: false,
            dirty: false,
            preempted: Arc::new(AtomicBool::new(false)),
            live: Arc::clone(&s.live),
        })
    }

    async fn check(&self, _conn: &mut FakeConn) -> Result<(), FakeError> {
        let s = &self.0;
        s.checks.fetch_add(1, Ordering::SeqCst);
        let delay = *s.check_delay.lock();
        pause(delay).await;
        let gate = s.check_gate.lock().clone();
        pass(gate).await;
        if s.check_fails.load(Ordering::SeqCst) {
            return Err(FakeError::Check);
        }
        Ok(())
    }

    fn has_broken(&self, conn: &mut FakeConn) -> bool {
        conn.broken || conn.preempted.load(Ordering::SeqCst)
    }

    fn preempt_handle(&self, conn: &FakeConn) -> Option<lido_core::PreemptHandle> {
        let (flag, script) = (Arc::clone(&conn.preempted), Arc::clone(&self.0));
        Some(Arc::new(move || {
            script.preemptions.fetch_add(1, Ordering::SeqCst);
            flag.store(true, Ordering::SeqCst);
        }))
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

/// A current-thread runtime whose clock starts paused (for property tests,
/// which cannot be `#[tokio::test]`s).
///
/// # Panics
///
/// When the runtime cannot be built.
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime")
}

/// Lets spawned tasks run (on a paused clock: no time passes).
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

/// Asserts the pool is at rest: nothing leased or waiting, every connection
/// accounted for (`script` counts as many alive as the pool holds).
pub fn assert_at_rest<M: Manager>(pool: &Pool<M>, script: &Script) {
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

//! Loom model check of the pool's state machine. The model holds the real
//! [`State`] (with a stand-in manager whose connections are numbers) under
//! loom's mutex, and each model thread calls the real transitions — take
//! idle, fail fast on an open breaker or join the queue (reserving a connect
//! as the breaker admits), a connect finishing or failing (and opening the
//! breaker), a return, a cancel, `close()`, the sweeper's expiry, a resize,
//! a keepalive ping going out and coming back — then does
//! their deferred work ([`After`]) the way `commit::finish` does: wakes the
//! wakers, starts one thread per reserved connect. A change to a transition
//! is a change to what this checks.
//!
//! Loom runs every interleaving (within a preemption bound); the checks
//! assert that the counts add up, no connection is lost or duplicated, no
//! waiter is stranded (a waiter never served blocks its thread, which loom
//! reports as a deadlock), callers are served first come, first served, and
//! a closed pool ends empty.
//!
//! To see it bite, break a transition in `state.rs` (say, make
//! `cancel_waiter` drop a delivered connection) and run
//! `cargo test -p lido-core --lib state_model`: a deadlock (a stranded
//! waiter) or one of the assertions below names what went wrong.

use std::task::{Poll, Waker};

use loom::sync::{Arc, Mutex, MutexGuard};
use loom::thread;
use tokio::time::Instant;

use crate::after::After;
use crate::breaker::Breaker;
use crate::config::{BreakerConfig, Config};
use crate::error::{ConnectFailure, Error};
use crate::live::{Delivery, Live};
use crate::manager::Manager;
use crate::state::upkeep::Reaping;
use crate::state::{Checkout, State, Step, Waiter};
use crate::waiters::Priority;

/// A manager the model never calls: it only gives [`State`] its types.
struct Fake;

impl Manager for Fake {
    type Connection = u32;
    type Error = std::io::Error;

    async fn connect(&self) -> Result<u32, std::io::Error> {
        Err(std::io::Error::other("the model opens connections itself"))
    }

    async fn check(&self, _conn: &mut u32) -> Result<(), std::io::Error> {
        Ok(())
    }
}

/// The real state plus the model's own ledger, under one lock.
struct Book {
    st: State<Fake>,
    /// Connections opened so far (ids `0..opened`).
    opened: u32,
    /// Ids of the connections the pool closed.
    closed: Vec<u32>,
    /// Keys of the callers in the queue or not yet served, in arrival order.
    arrived: Vec<usize>,
}

struct Model {
    book: Mutex<Book>,
    gate: Breaker<std::io::Error>,
    /// Every connect fails (else every connect succeeds).
    failing: bool,
    /// A failed connect reports to the breaker first (as `connect_with_retry`
    /// does), which opens at the first failure.
    trips: bool,
    /// Connect tasks spawned (one thread per reserved connect, as
    /// `commit::spawn_connect` starts a task), joined at the end.
    connects: Mutex<Vec<thread::JoinHandle<()>>>,
}

type Conn = Live<u32>;

fn deadline() -> Instant {
    static AT: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *AT.get_or_init(Instant::now)
}

fn conn(id: u32) -> Conn {
    let mut live = crate::live::new(id, u64::from(id), deadline(), None);
    // A backend that can stop calls (only lane lending asks).
    live.preempt = Some(std::sync::Arc::new(|| {}));
    live
}

impl Model {
    /// A pool of `max` with `idle` idle connections and `held` leased ones
    /// (returned with their leases, for the test to give back with
    /// [`release`]), set up through the real transitions.
    fn new(max: usize, idle: u32, held: u32, failing: bool) -> (Arc<Self>, Vec<Conn>) {
        Self::with_gate(max, idle, held, failing, None)
    }

    /// An empty pool of `max` whose connects all fail (`trips`) and open the breaker
    /// at the first failure, for an hour (no trial within the model).
    fn tripping(max: usize) -> Arc<Self> {
        let gate = BreakerConfig {
            consecutive_failures: 1,
            open_for: std::time::Duration::from_secs(3600),
            ..BreakerConfig::default()
        };
        Self::with_gate(max, 0, 0, true, Some(gate)).0
    }

    fn with_gate(
        max: usize,
        idle: u32,
        held: u32,
        failing: bool,
        trips: Option<BreakerConfig>,
    ) -> (Arc<Self>, Vec<Conn>) {
        let cfg = Config {
            max_size: max,
            min_idle: (idle + held) as usize,
            ..Config::default()
        };
        let lanes = vec![Priority::Normal; held as usize];
        Self::set_up(&cfg, trips, failing, &lanes)
    }

    /// A pool built with `cfg`, its `min_idle` connections open through
    /// the real transitions, one leased per entry of `held` (in that lane).
    fn set_up(
        cfg: &Config,
        trips: Option<BreakerConfig>,
        failing: bool,
        held: &[Priority],
    ) -> (Arc<Self>, Vec<Conn>) {
        let gate = Breaker::new(trips.clone().unwrap_or_default());
        let mut st = State::new(cfg);
        let mut step = Step::new(&gate);
        let opened = st.reserve_for_min_idle(&mut step).len() as u32;
        for id in 0..opened {
            st.connected(conn(id), &mut step);
        }
        assert!(step.after.is_empty(), "setup leaves nothing to do");
        let leased = held
            .iter()
            .map(|&lane| match st.checkout(lane) {
                Checkout::Idle(live) => live,
                _ => panic!("setup: an idle connection for {lane:?}"),
            })
            .collect();
        let book = Book {
            st,
            opened,
            closed: Vec::new(),
            arrived: Vec::new(),
        };
        let model = Self {
            book: Mutex::new(book),
            gate,
            failing,
            trips: trips.is_some(),
            connects: Mutex::new(Vec::new()),
        };
        (Arc::new(model), leased)
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        self.book.lock().expect("lock")
    }
}

/// One transition under the lock, then its deferred work: what
/// `commit::apply` does.
fn apply<R>(m: &Arc<Model>, f: impl FnOnce(&mut Book, &mut Step<'_, Fake>) -> R) -> R {
    let mut step = Step::new(&m.gate);
    let out = {
        let mut book = m.lock();
        let out = f(&mut book, &mut step);
        let closed = step.after.closed.drain(..).map(|(c, _)| c);
        book.closed.extend(closed);
        out
    };
    finish(m, step.after);
    out
}

/// `commit::finish`: wake the wakers, start the reserved connects.
fn finish(m: &Arc<Model>, after: After<u32>) {
    after.wakers.wake_all();
    for trial in after.spawn {
        let task = Arc::clone(m);
        let handle = thread::spawn(move || connect(&task, trial));
        m.connects.lock().expect("lock").push(handle);
    }
}

/// A connect task: its connection joins the pool, or its failure goes to
/// the breaker (when the model trips it) and then to the oldest waiter.
fn connect(m: &Arc<Model>, trial: bool) {
    let cause = ConnectFailure::Backend(std::sync::Arc::new(std::io::Error::other("down")));
    if m.failing && m.trips {
        m.gate.on_failure(Instant::now(), cause.clone(), trial);
    }
    apply(m, |b, step| {
        if m.failing {
            let err = Error::Connect { cause, attempts: 1 };
            b.st.connect_failed(err, step);
        } else {
            let id = b.opened;
            b.opened += 1;
            b.st.connected(conn(id), step);
        }
    });
}

/// `Take::first`: an idle connection, `None` (closed, or failing fast on an
/// open breaker), or a queued key.
fn take(m: &Arc<Model>) -> Result<Option<Conn>, usize> {
    apply(m, |b, step| match b.st.checkout(Priority::Normal) {
        Checkout::Closed => Ok(None),
        Checkout::Idle(live) => Ok(Some(live)),
        Checkout::Queue if m.gate.rejects_get(Instant::now()).is_some() => Ok(None),
        Checkout::Queue => {
            let waiter = Waiter {
                priority: Priority::Normal,
                deadline: deadline(),
                since: Instant::now(),
                waker: Waker::noop(),
                again: false,
            };
            let key = b.st.join_queue(waiter, step);
            b.arrived.push(key);
            Err(key)
        }
    })
}

/// A guard dropped: the connection goes back.
fn release(m: &Arc<Model>, live: Conn) {
    apply(m, |b, step| b.st.put_back(live, step));
}

fn close(m: &Arc<Model>) {
    apply(m, |b, step| b.st.close(step));
}

/// `Pool::resize` down to one connection.
fn shrink_to_one(m: &Arc<Model>) {
    apply(m, |b, step| b.st.resize(1, step));
}

/// The maintenance round taking out every idle connection for a keepalive
/// ping (they are all due).
fn take_for_ping(m: &Arc<Model>) -> Vec<Conn> {
    let reaping = Reaping {
        now: deadline(),
        idle_timeout: None,
        keepalive: Some(std::time::Duration::ZERO),
    };
    apply(m, |b, step| b.st.reap(reaping, step))
}

/// A keepalive ping passed: the connection comes back.
fn ping_passed(m: &Arc<Model>, live: Conn) {
    apply(m, |b, step| b.st.come_back(live, true, None, step));
}

/// The sweeper's round, at a time past every waiter's deadline.
fn sweep(m: &Arc<Model>) {
    let later = deadline() + std::time::Duration::from_secs(1);
    let mut wakers = Vec::new();
    m.lock().st.expire_waiters(later, &mut wakers);
    wakers.into_iter().for_each(Waker::wake);
}

/// `Take`'s later polls: what was delivered to `key`, if anything. A caller
/// served while someone who arrived before it still waits would break first
/// come, first served.
fn delivered(m: &Model, key: usize, waker: &Waker) -> Option<Delivery<Fake>> {
    let mut b = m.lock();
    let d = b.st.take_delivery(key, waker)?;
    let pos = b.arrived.iter().position(|k| *k == key).expect("arrived");
    for earlier in &b.arrived[..pos] {
        assert!(
            !b.st.is_queued(*earlier),
            "first come, first served: served while an earlier caller waits"
        );
    }
    b.arrived.remove(pos);
    Some(d)
}

/// `Take`'s drop: `key` leaves the queue.
fn cancel(m: &Arc<Model>, key: usize) {
    apply(m, |b, step| {
        b.arrived.retain(|k| *k != key);
        b.st.cancel_waiter(key, step);
    });
}

fn served(d: Delivery<Fake>) -> Option<Conn> {
    match d {
        Delivery::Conn(live) => Some(live),
        Delivery::Failed(_) | Delivery::TimedOut => None,
    }
}

/// A caller: waits until served (patient) or gives up after one poll
/// (`Take`'s drop cancels), then returns what it got.
fn caller(m: &Arc<Model>, patient: bool) {
    let got = match take(m) {
        Ok(got) => got,
        Err(key) if patient => loom::future::block_on(std::future::poll_fn(|cx| {
            match delivered(m, key, cx.waker()) {
                Some(d) => Poll::Ready(served(d)),
                None => Poll::Pending,
            }
        })),
        Err(key) => match delivered(m, key, Waker::noop()) {
            Some(d) => served(d),
            None => {
                cancel(m, key);
                None
            }
        },
    };
    if let Some(live) = got {
        release(m, live);
    }
}

/// Joins every connect task (they may have been spawned by any thread,
/// connect tasks included).
fn join_connects(m: &Model) {
    loop {
        let handles = std::mem::take(&mut *m.connects.lock().expect("lock"));
        if handles.is_empty() {
            return;
        }
        for h in handles {
            h.join().expect("connect task");
        }
    }
}

fn check_at_rest(m: &Model) {
    let b = m.lock();
    let s = b.st.status();
    assert_eq!(s.waiters, 0, "no waiter stranded");
    assert!(b.arrived.is_empty(), "every caller served or gone");
    assert_eq!(s.connecting, 0, "every reserved connect completed");
    assert_eq!(s.in_use, 0, "nothing leased, counts add up");
    assert_eq!(b.st.pings_out(), 0, "every keepalive ping came back");
    assert!(s.size <= s.max_size, "never above max");
    assert_eq!(
        b.st.lease_entries(),
        s.size,
        "one lease entry per open connection"
    );
    let mut ids: Vec<u32> = b.st.idle_conns().chain(&b.closed).copied().collect();
    ids.sort_unstable();
    let opened: Vec<u32> = (0..b.opened).collect();
    assert_eq!(
        ids, opened,
        "every connection opened is idle or closed, once: none lost or duplicated"
    );
    if b.st.is_closed() {
        assert_eq!(s.size, 0, "a closed pool ends empty");
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(f);
}

fn spawn(m: &Arc<Model>, f: fn(&Arc<Model>)) -> thread::JoinHandle<()> {
    let m = Arc::clone(m);
    thread::spawn(move || f(&m))
}

fn spawn_release(m: &Arc<Model>, live: Conn) -> thread::JoinHandle<()> {
    let m = Arc::clone(m);
    thread::spawn(move || release(&m, live))
}

#[test]
fn callers_a_connect_and_a_cancel_keep_the_counts_right() {
    model(|| {
        let (m, _) = Model::new(1, 0, 0, false);
        let impatient = spawn(&m, |m| caller(m, false));
        caller(&m, true);
        impatient.join().expect("impatient");
        join_connects(&m);
        check_at_rest(&m);
    });
}

#[test]
fn close_racing_callers_and_a_connect_leaves_an_empty_pool() {
    model(|| {
        let (m, _) = Model::new(2, 1, 0, false);
        let closer = spawn(&m, close);
        let other = spawn(&m, |m| caller(m, true));
        caller(&m, true);
        other.join().expect("other");
        closer.join().expect("closer");
        join_connects(&m);
        check_at_rest(&m);
    });
}

#[test]
fn the_sweeper_racing_a_connect_strands_nobody() {
    model(|| {
        let (m, _) = Model::new(1, 0, 0, false);
        let sweeper = spawn(&m, sweep);
        caller(&m, true);
        sweeper.join().expect("sweeper");
        join_connects(&m);
        check_at_rest(&m);
    });
}

#[test]
fn a_return_racing_a_cancel_hands_the_connection_on() {
    model(|| {
        let (m, mut held) = Model::new(1, 0, 1, false);
        let releaser = spawn_release(&m, held.remove(0));
        caller(&m, false);
        releaser.join().expect("releaser");
        join_connects(&m);
        check_at_rest(&m);
    });
}

#[test]
fn the_sweeper_racing_a_return_and_patient_callers_strands_nobody() {
    model(|| {
        let (m, mut held) = Model::new(1, 0, 1, false);
        let sweeper = spawn(&m, sweep);
        let releaser = spawn_release(&m, held.remove(0));
        let other = spawn(&m, |m| caller(m, true));
        caller(&m, false);
        other.join().expect("other");
        releaser.join().expect("releaser");
        sweeper.join().expect("sweeper");
        join_connects(&m);
        check_at_rest(&m);
    });
}

#[test]
fn a_failed_connect_racing_a_cancel_strands_nobody() {
    model(|| {
        let (m, _) = Model::new(1, 0, 0, true);
        let impatient = spawn(&m, |m| caller(m, false));
        caller(&m, true);
        impatient.join().expect("impatient");
        join_connects(&m);
        check_at_rest(&m);
    });
}

#[test]
fn a_shrink_racing_returns_and_a_waiter_ends_within_the_new_max() {
    model(|| {
        let (m, mut held) = Model::new(2, 0, 2, false);
        let shrinker = spawn(&m, shrink_to_one);
        let releaser = spawn_release(&m, held.remove(0));
        let other = spawn(&m, |m| caller(m, true));
        release(&m, held.remove(0));
        other.join().expect("other");
        releaser.join().expect("releaser");
        shrinker.join().expect("shrinker");
        join_connects(&m);
        check_at_rest(&m);
        assert_eq!(m.lock().st.status().max_size, 1, "shrunk");
    });
}

#[test]
fn a_keepalive_ping_coming_back_racing_close_and_a_caller_leaves_an_empty_pool() {
    model(|| {
        let (m, _) = Model::new(1, 1, 0, false);
        let mut pinged = take_for_ping(&m);
        assert_eq!(pinged.len(), 1, "the idle connection is out for a ping");
        let pinger = {
            let m = Arc::clone(&m);
            let live = pinged.remove(0);
            thread::spawn(move || ping_passed(&m, live))
        };
        let closer = spawn(&m, close);
        caller(&m, true);
        closer.join().expect("closer");
        pinger.join().expect("pinger");
        join_connects(&m);
        check_at_rest(&m);
    });
}

#[test]
fn a_failed_connect_opening_the_breaker_fails_every_waiter_and_strands_nobody() {
    model(|| {
        let m = Model::tripping(2);
        let other = spawn(&m, |m| caller(m, true));
        caller(&m, true);
        other.join().expect("other");
        join_connects(&m);
        check_at_rest(&m);
        assert_eq!(m.gate.state(), crate::breaker::BreakerState::Open);
    });
}

#[path = "state_model_lanes.rs"]
mod lanes;

//! Loom model check of the pool's state machine: open count, connects in
//! flight, idle list and the real [`WaitQueue`], under one mutex, with the
//! critical sections `take.rs`, `connector.rs`, `shared.rs` (return, close)
//! and `sweeper.rs` run: take-or-queue-and-reserve-a-connect, a connect
//! completing (delivered to the oldest waiter or parked idle, or closed if
//! the pool closed), a return, a cancel, `close()`, the sweeper's expiry.
//! Loom runs every interleaving (within a preemption bound); the checks
//! assert that the counts add up,
//! no connection is lost or duplicated, no waiter is stranded, and a closed
//! pool ends empty.

use std::task::{Poll, Waker};

use loom::sync::{Arc, Mutex};
use loom::thread;
use tokio::time::Instant;

use crate::waiters::{Priority, WaitQueue};

enum Delivery {
    Conn(u32),
    Failed,
    TimedOut,
}

struct State {
    idle: Vec<u32>,
    waiters: WaitQueue<Delivery>,
    size: usize,
    connecting: usize,
    max: usize,
    closed: bool,
    next_id: u32,
    closed_conns: usize,
}

struct Model {
    st: Mutex<State>,
    /// Connect tasks spawned (one thread per reserved connect, as
    /// `connector::spawn` starts a task), joined at the end.
    connects: Mutex<Vec<thread::JoinHandle<()>>>,
}

fn deadline() -> Instant {
    static AT: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *AT.get_or_init(Instant::now)
}

impl Model {
    /// A pool of `max` with `idle` idle connections and `held` leased ones
    /// (ids `idle..idle + held`, returned by the test with [`release`]).
    fn new(max: usize, idle: u32, held: u32) -> Arc<Self> {
        Arc::new(Self {
            st: Mutex::new(State {
                idle: (0..idle).collect(),
                waiters: WaitQueue::default(),
                size: (idle + held) as usize,
                connecting: 0,
                max,
                closed: false,
                next_id: idle + held,
                closed_conns: 0,
            }),
            connects: Mutex::new(Vec::new()),
        })
    }

    fn lock(&self) -> loom::sync::MutexGuard<'_, State> {
        self.st.lock().expect("lock")
    }
}

/// `Take::first`: an idle connection, a failure, or a queued key (reserving a
/// connect when there is room, as `spawn_for_waiters` does, and starting it
/// once the lock is released, as `Shared::finish` does).
fn take(m: &Arc<Model>) -> Result<Result<u32, ()>, usize> {
    let (key, reserved) = {
        let mut st = m.lock();
        if st.closed {
            return Ok(Err(()));
        }
        if st.waiters.is_empty() {
            if let Some(c) = st.idle.pop() {
                return Ok(Ok(c));
            }
        }
        let key = st.waiters.push(Priority::Normal, deadline(), Waker::noop());
        let reserve = st.waiters.len() > st.connecting && st.size + st.connecting < st.max;
        if reserve {
            st.connecting += 1;
        }
        (key, reserve)
    };
    if reserved {
        let task = Arc::clone(m);
        let handle = thread::spawn(move || connected(&task));
        m.connects.lock().expect("lock").push(handle);
    }
    Err(key)
}

/// `Shared::return_locked`: closed pool closes it, else oldest waiter or
/// idle. Returns the waiter's waker, to wake after the lock is released.
fn give_back(st: &mut State, conn: u32) -> Option<Waker> {
    if st.closed {
        st.size -= 1;
        st.closed_conns += 1;
        return None;
    }
    match st.waiters.deliver(Delivery::Conn(conn)) {
        Ok(w) => w,
        Err(Delivery::Conn(c)) => {
            st.idle.push(c);
            None
        }
        Err(_) => None,
    }
}

fn wake(w: Option<Waker>) {
    if let Some(w) = w {
        w.wake();
    }
}

fn release(m: &Model, conn: u32) {
    let w = give_back(&mut m.lock(), conn);
    wake(w);
}

/// `Take::drop`: leave the queue, passing on whatever was delivered.
fn cancel(m: &Model, key: usize) {
    let w = {
        let mut st = m.lock();
        match st.waiters.cancel(key) {
            Some(Delivery::Conn(c)) => give_back(&mut st, c),
            Some(Delivery::Failed) => st.waiters.deliver(Delivery::Failed).ok().flatten(),
            Some(Delivery::TimedOut) | None => None,
        }
    };
    wake(w);
}

/// A connect task finishing: `connector::add_new`.
fn connected(m: &Model) {
    let w = {
        let mut st = m.lock();
        st.connecting -= 1;
        st.size += 1;
        let id = st.next_id;
        st.next_id += 1;
        give_back(&mut st, id)
    };
    wake(w);
}

/// `Pool::close`: fail the waiters, close the idle connections.
fn close(m: &Model) {
    let wakers = {
        let mut st = m.lock();
        st.closed = true;
        let wakers = st.waiters.deliver_all(|| Delivery::Failed);
        let n = st.idle.len();
        st.idle.clear();
        st.size -= n;
        st.closed_conns += n;
        wakers
    };
    wakers.into_iter().for_each(Waker::wake);
}

fn sweep(m: &Model) {
    let later = deadline() + std::time::Duration::from_secs(1);
    let mut wakers = Vec::new();
    m.lock()
        .waiters
        .expire(later, || Delivery::TimedOut, &mut wakers);
    wakers.into_iter().for_each(Waker::wake);
}

/// A caller: waits until served (patient) or gives up after one poll.
fn caller(m: &Arc<Model>, patient: bool) {
    let served = match take(m) {
        Ok(r) => r.ok(),
        Err(key) if patient => {
            let d = loom::future::block_on(std::future::poll_fn(|cx| {
                match m.lock().waiters.poll_take(key, cx.waker()) {
                    Some(d) => Poll::Ready(d),
                    None => Poll::Pending,
                }
            }));
            match d {
                Delivery::Conn(c) => Some(c),
                Delivery::Failed | Delivery::TimedOut => None,
            }
        }
        Err(key) => {
            let got = m.lock().waiters.poll_take(key, Waker::noop());
            match got {
                Some(Delivery::Conn(c)) => Some(c),
                Some(_) => None,
                None => {
                    cancel(m, key);
                    None
                }
            }
        }
    };
    if let Some(c) = served {
        release(m, c);
    }
}

/// Joins every connect task (they may have been spawned by any thread).
fn join_connects(m: &Model) {
    let handles = std::mem::take(&mut *m.connects.lock().expect("lock"));
    for h in handles {
        h.join().expect("connect task");
    }
}

fn check_at_rest(m: &Model) {
    let st = m.lock();
    assert!(st.waiters.is_empty(), "no waiter stranded");
    assert_eq!(st.connecting, 0, "every reserved connect completed");
    assert_eq!(st.size, st.idle.len(), "nothing leased, counts add up");
    assert!(st.size <= st.max, "never above max");
    let mut ids = st.idle.clone();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), st.idle.len(), "no connection duplicated");
    assert_eq!(
        st.size + st.closed_conns,
        st.next_id as usize,
        "every connection opened is open or closed, none lost"
    );
    if st.closed {
        assert_eq!(st.size, 0, "a closed pool ends empty");
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

#[test]
fn callers_a_connect_and_a_cancel_keep_the_counts_right() {
    model(|| {
        let m = Model::new(1, 0, 0);
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
        let m = Model::new(2, 1, 0);
        let closer = spawn(&m, |m| close(m));
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
        let m = Model::new(1, 0, 0);
        let sweeper = spawn(&m, |m| sweep(m));
        caller(&m, true);
        sweeper.join().expect("sweeper");
        join_connects(&m);
        check_at_rest(&m);
    });
}

#[test]
fn a_return_racing_a_cancel_hands_the_connection_on() {
    model(|| {
        let m = Model::new(1, 0, 1);
        let releaser = spawn(&m, |m| release(m, 0));
        caller(&m, false);
        releaser.join().expect("releaser");
        join_connects(&m);
        check_at_rest(&m);
    });
}

#[test]
fn the_sweeper_racing_a_return_and_patient_callers_strands_nobody() {
    model(|| {
        let m = Model::new(1, 0, 1);
        let sweeper = spawn(&m, |m| sweep(m));
        let releaser = spawn(&m, |m| release(m, 0));
        let other = spawn(&m, |m| caller(m, true));
        caller(&m, false);
        other.join().expect("other");
        releaser.join().expect("releaser");
        sweeper.join().expect("sweeper");
        join_connects(&m);
        check_at_rest(&m);
    });
}

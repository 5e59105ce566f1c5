//! Loom model check of the hand-off protocol: the real [`WaitQueue`] behind a
//! mutex, with the same steps `shared.rs`/`acquire.rs` take (take idle or
//! enqueue; deliver to the oldest waiter or park idle; cancel and pass on).
//! Loom explores every interleaving and the checks assert no connection is
//! lost or duplicated and no waiter is left behind.

use std::task::Waker;

use loom::sync::{Arc, Mutex};
use loom::thread;

use tokio::time::Instant;

use crate::waiters::{Priority, WaitQueue};

/// What the sweeper delivers to a waiter whose deadline passed.
const TIMED_OUT: u32 = u32::MAX;

/// Every waiter's deadline (all wait the same `acquire_timeout`).
fn deadline() -> Instant {
    static AT: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *AT.get_or_init(Instant::now)
}

#[derive(Default)]
struct Model {
    idle: Vec<u32>,
    waiters: WaitQueue<u32>,
}

enum Take {
    Ready(u32),
    Wait(usize),
}

fn take(m: &Mutex<Model>) -> Take {
    let mut st = m.lock().expect("lock");
    if st.waiters.is_empty() {
        if let Some(c) = st.idle.pop() {
            return Take::Ready(c);
        }
    }
    Take::Wait(st.waiters.push(Priority::Normal, deadline(), Waker::noop()))
}

fn release(m: &Mutex<Model>, conn: u32) {
    if conn == TIMED_OUT {
        return;
    }
    let waker = {
        let mut st = m.lock().expect("lock");
        match st.waiters.deliver(conn) {
            Ok(w) => w,
            Err(c) => {
                st.idle.push(c);
                None
            }
        }
    };
    // Woken after the lock is released, as `Shared::finish` does.
    if let Some(w) = waker {
        w.wake();
    }
}

fn poll(m: &Mutex<Model>, key: usize) -> Option<u32> {
    m.lock()
        .expect("lock")
        .waiters
        .poll_take(key, Waker::noop())
}

fn cancel(m: &Mutex<Model>, key: usize) {
    let got = m.lock().expect("lock").waiters.cancel(key);
    if let Some(c) = got {
        release(m, c);
    }
}

/// A caller that waits (parked on its waker) until served, then returns the connection.
fn patient(m: &Mutex<Model>) {
    let conn = match take(m) {
        Take::Ready(c) => c,
        Take::Wait(key) => loom::future::block_on(std::future::poll_fn(|cx| {
            match m.lock().expect("lock").waiters.poll_take(key, cx.waker()) {
                Some(c) => std::task::Poll::Ready(c),
                None => std::task::Poll::Pending,
            }
        })),
    };
    release(m, conn);
}

/// A caller that gives up after one poll (a timeout or a dropped future).
fn impatient(m: &Mutex<Model>) -> Option<u32> {
    match take(m) {
        Take::Ready(c) => Some(c),
        Take::Wait(key) => {
            let got = poll(m, key);
            if got.is_none() {
                cancel(m, key);
            }
            got
        }
    }
}

/// The sweeper's step: fail every waiter past its deadline, as `sweeper.rs` does.
fn sweep(m: &Mutex<Model>) {
    let mut wakers = Vec::new();
    let later = deadline() + std::time::Duration::from_secs(1);
    m.lock()
        .expect("lock")
        .waiters
        .expire(later, || TIMED_OUT, &mut wakers);
    for w in wakers {
        w.wake();
    }
}

fn check_conserved(m: &Mutex<Model>, held: &[u32], total: u32) {
    let st = m.lock().expect("lock");
    assert!(st.waiters.is_empty(), "no waiter left behind");
    let mut all: Vec<u32> = st.idle.iter().chain(held).copied().collect();
    all.retain(|c| *c != TIMED_OUT);
    all.sort_unstable();
    assert_eq!(
        all,
        (0..total).collect::<Vec<_>>(),
        "no connection lost or duplicated"
    );
}

/// Bounded preemption keeps the search to seconds while covering the
/// interleavings that matter (each step here is one critical section).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

#[test]
fn patient_waiters_and_a_cancelling_one_conserve_connections() {
    model(|| {
        let m = Arc::new(Mutex::new(Model {
            idle: vec![0],
            ..Default::default()
        }));
        let a = {
            let m = Arc::clone(&m);
            thread::spawn(move || patient(&m))
        };
        let b = {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                if let Some(c) = impatient(&m) {
                    release(&m, c);
                }
            })
        };
        patient(&m);
        a.join().expect("a");
        b.join().expect("b");
        check_conserved(&m, &[], 1);
    });
}

#[test]
fn release_racing_a_cancel_hands_the_connection_on() {
    model(|| {
        let m = Arc::new(Mutex::new(Model::default()));
        let releaser = {
            let m = Arc::clone(&m);
            thread::spawn(move || release(&m, 0))
        };
        let got = impatient(&m);
        releaser.join().expect("releaser");
        let held: Vec<u32> = got.into_iter().collect();
        check_conserved(&m, &held, 1);
    });
}

#[test]
fn the_sweeper_racing_a_release_and_a_cancel_conserves_connections() {
    model(|| {
        let m = Arc::new(Mutex::new(Model::default()));
        let sweeper = {
            let m = Arc::clone(&m);
            thread::spawn(move || sweep(&m))
        };
        let releaser = {
            let m = Arc::clone(&m);
            thread::spawn(move || release(&m, 0))
        };
        // Waits once, then gives up: it ends with the connection, a timeout,
        // or nothing, and whatever it does not keep stays in the pool.
        let got = impatient(&m);
        sweeper.join().expect("sweeper");
        releaser.join().expect("releaser");
        let held: Vec<u32> = got.into_iter().filter(|c| *c != TIMED_OUT).collect();
        check_conserved(&m, &held, 1);
    });
}

#[test]
fn a_patient_waiter_ends_served_or_timed_out_never_stranded() {
    model(|| {
        let m = Arc::new(Mutex::new(Model {
            idle: vec![0],
            ..Default::default()
        }));
        let sweeper = {
            let m = Arc::clone(&m);
            thread::spawn(move || sweep(&m))
        };
        let other = {
            let m = Arc::clone(&m);
            thread::spawn(move || patient(&m))
        };
        patient(&m);
        other.join().expect("other");
        sweeper.join().expect("sweeper");
        check_conserved(&m, &[], 1);
    });
}

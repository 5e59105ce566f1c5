//! Loom model check of the priority lanes ([`LaneLimits`]), on the same
//! harness as the rest of `state_model`: callers of different lanes, returns
//! and cancels racing, with the real transitions. Beyond the harness's own
//! checks (counts add up, nothing lost, nobody stranded) it asserts, each
//! time a caller holds a connection, that every lane's leases are within its
//! limits (reserved connections never taken by a lower lane, share caps
//! held), and that within a lane callers are served first come, first
//! served (a higher lane may go ahead of a lower one: that is the point).

use super::*;
use crate::lanes::LaneLimits;

/// The harness's model, its lane limits, and the lane of each queued key.
struct Lanes {
    m: Arc<Model>,
    limits: LaneLimits,
    of: Mutex<Vec<(usize, Priority)>>,
}

/// A pool of `max` under `limits`, all `max` connections open, one leased
/// per entry of `held` (in that lane), returned for the test to give back.
fn model_with(max: usize, limits: LaneLimits, held: &[Priority]) -> (Arc<Lanes>, Vec<Conn>) {
    let cfg = Config {
        max_size: max,
        min_idle: max,
        lanes: limits,
        ..Config::default()
    };
    let (model, leased) = Model::set_up(&cfg, None, false, held);
    let lanes = Lanes {
        m: model,
        limits,
        of: Mutex::new(Vec::new()),
    };
    (Arc::new(lanes), leased)
}

/// Every lane holds at most [`LaneLimits::limit`] (its share cap, and
/// `max_size` less what the lanes above keep), and the lanes below
/// `Critical` together leave `Critical`'s reserve alone: computed from the
/// limits, not from the rule the pool applies, so a wrong rule shows.
fn check_limits(l: &Lanes) {
    let s = l.m.lock().st.status();
    let held = s.in_use_by_lane;
    assert!(
        held.iter().sum::<usize>() <= s.max_size,
        "never above max: {held:?}"
    );
    if l.limits.preempt_after.is_some() {
        return; // lending: lower lanes may hold reserves, only max_size binds
    }
    for lane in Priority::ALL {
        let limit = l.limits.limit(lane, s.max_size);
        assert!(
            held[lane as usize] <= limit,
            "{lane:?} holds {} of {}, its limit is {limit}",
            held[lane as usize],
            s.max_size
        );
    }
    let below = held[Priority::Normal as usize] + held[Priority::Background as usize];
    assert!(
        below
            <= l.limits
                .limit(Priority::Normal, s.max_size)
                .max(held[Priority::Normal as usize]),
        "lower lanes took Critical's reserve: {held:?} of {}",
        s.max_size
    );
}

/// `Take::first` in `lane`.
fn take_in(m: &Arc<Model>, lane: Priority) -> Result<Option<Conn>, usize> {
    apply(m, |b, step| match b.st.checkout(lane) {
        Checkout::Closed => Ok(None),
        Checkout::Idle(live) => Ok(Some(live)),
        Checkout::Queue => {
            let waiter = Waiter {
                priority: lane,
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

/// What was delivered to `key` of `lane`; served while an earlier caller
/// of the same lane still waits would break first come, first served.
fn delivered_in(l: &Lanes, key: usize, lane: Priority, waker: &Waker) -> Option<Delivery<Fake>> {
    let mut b = l.m.lock();
    let d = b.st.take_delivery(key, waker)?;
    let pos = b.arrived.iter().position(|k| *k == key).expect("arrived");
    let lanes = l.of.lock().expect("lock");
    for earlier in &b.arrived[..pos] {
        let same = lanes.iter().any(|(k, l)| k == earlier && *l == lane);
        assert!(
            !(same && b.st.is_queued(*earlier)),
            "first come, first served within {lane:?}"
        );
    }
    b.arrived.remove(pos);
    Some(d)
}

/// A caller in `lane`: waits until served (patient) or gives up after one
/// poll, checks the limits while it holds the connection, gives it back.
fn caller_in(l: &Lanes, lane: Priority, patient: bool) {
    let m = &l.m;
    let got = match take_in(m, lane) {
        Ok(got) => got,
        Err(key) => {
            l.of.lock().expect("lock").push((key, lane));
            if patient {
                loom::future::block_on(std::future::poll_fn(|cx| {
                    match delivered_in(l, key, lane, cx.waker()) {
                        Some(d) => Poll::Ready(served(d)),
                        None => Poll::Pending,
                    }
                }))
            } else {
                match delivered_in(l, key, lane, Waker::noop()) {
                    Some(d) => served(d),
                    None => {
                        cancel(m, key);
                        None
                    }
                }
            }
        }
    };
    if let Some(live) = got {
        check_limits(l);
        release(m, live);
    }
}

fn spawn_in(l: &Arc<Lanes>, lane: Priority, patient: bool) -> thread::JoinHandle<()> {
    let l = Arc::clone(l);
    thread::spawn(move || caller_in(&l, lane, patient))
}

#[test]
fn lower_lanes_never_take_the_reserve_while_callers_and_a_return_race() {
    // 2 connections, 1 kept for Critical; Background holds the other.
    model(|| {
        let limits = LaneLimits::default().reserve(Priority::Critical, 1);
        let (l, mut held) = model_with(2, limits, &[Priority::Background]);
        let bg = spawn_in(&l, Priority::Background, true);
        let critical = spawn_in(&l, Priority::Critical, true);
        let back = spawn_release(&l.m, held.pop().expect("one held"));
        for h in [bg, critical, back] {
            h.join().expect("thread");
        }
        join_connects(&l.m);
        check_at_rest(&l.m);
    });
}

#[test]
fn a_cancel_racing_returns_across_lanes_strands_nobody() {
    // 2 connections, Background at most half: Normal and Background hold one each.
    model(|| {
        let limits = LaneLimits::default().max_share(Priority::Background, 0.5);
        let (l, mut held) = model_with(2, limits, &[Priority::Normal, Priority::Background]);
        let impatient = spawn_in(&l, Priority::Background, false);
        let normal = spawn_in(&l, Priority::Normal, true);
        let bg = held.pop().expect("background lease");
        let back = spawn_release(&l.m, bg);
        release(&l.m, held.pop().expect("normal lease"));
        for h in [impatient, normal, back] {
            h.join().expect("thread");
        }
        join_connects(&l.m);
        check_at_rest(&l.m);
    });
}

#[test]
fn a_preemption_round_racing_the_lent_lease_ending_and_a_critical_caller() {
    // 2 connections, 1 kept for Critical and lent to Background; budget 0.
    model(|| {
        let limits = LaneLimits::default()
            .reserve(Priority::Critical, 1)
            .lend(std::time::Duration::ZERO);
        let (l, mut held) = model_with(2, limits, &[Priority::Background, Priority::Background]);
        let lent = held.pop().expect("lent lease");
        let critical = spawn_in(&l, Priority::Critical, true);
        let sweeper = {
            let l = Arc::clone(&l);
            thread::spawn(move || {
                let later = deadline() + std::time::Duration::from_secs(1);
                let round = l.m.lock().st.preempt_due(later);
                assert!(
                    round.stop.len() <= 1,
                    "one waiter, at most one call stopped"
                );
                for (_, lane) in &round.stop {
                    assert_eq!(*lane, Priority::Background, "only a lent lower-lane call");
                }
            })
        };
        let preempted = spawn_release(&l.m, lent);
        release(&l.m, held.pop().expect("own lease"));
        for h in [critical, sweeper, preempted] {
            h.join().expect("thread");
        }
        join_connects(&l.m);
        check_at_rest(&l.m);
        assert_eq!(
            l.m.lock().st.lent_len(),
            0,
            "nothing lent once every lease ended"
        );
    });
}

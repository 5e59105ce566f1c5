//! The sweeper: one timer per pool that fails waiters whose `acquire_timeout`
//! has passed.
//!
//! A timer per waiter (`tokio::time::timeout`) registers and deregisters an
//! entry in the runtime's timer wheel on every wait, under its lock. Since all
//! waiters wait for the same `acquire_timeout` and each lane is first come,
//! first served, the lane fronts always hold the earliest deadlines: this task
//! sleeps until the earliest one, delivers `TimedOut` to every
//! waiter that is due, and sleeps again. With nobody waiting it parks until a
//! caller joins an empty queue. It holds only a weak reference and stops when
//! the pool is gone.

use std::sync::{Arc, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::manager::Manager;
use crate::shared::Shared;
use crate::stats::bump;

pub(crate) fn spawn<M: Manager>(shared: &Arc<Shared<M>>) {
    let weak = Arc::downgrade(shared);
    let signal = Arc::clone(&shared.sweep);
    shared.runtime.spawn(run(weak, signal));
}

async fn run<M: Manager>(weak: Weak<Shared<M>>, signal: Arc<Notify>) {
    loop {
        let Some(next) = sweep_once(&weak) else {
            tracing::debug!("lido: sweeper stopped");
            return;
        };
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = signal.notified() => {}
                }
            }
            None => signal.notified().await,
        }
    }
}

/// Fails the waiters that are due and, with lane lending on, stops lent
/// calls for waiters past their budget. `None` once the pool is gone;
/// otherwise the next time to wake for (`Some(None)`: parked until a waiter
/// arrives).
fn sweep_once<M: Manager>(weak: &Weak<Shared<M>>) -> Option<Option<Instant>> {
    let shared = weak.upgrade()?;
    let mut wakers = Vec::new();
    let now = Instant::now();
    let (next, preemption) = {
        let mut st = shared.lock();
        let next = st.expire_waiters(now, &mut wakers);
        (next, st.preempt_due(now))
    };
    for w in wakers {
        w.wake();
    }
    for (stop, lane) in preemption.stop {
        bump(&shared.stats.preemptions);
        tracing::warn!(
            ?lane,
            "lido: preempting a lent {lane:?} call: a higher-priority caller waited past the lending budget"
        );
        stop();
    }
    let next = match (next, preemption.next) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Some(next)
}

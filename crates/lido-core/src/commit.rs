//! Committing state changes: [`apply`] runs a [`State`] transition under the
//! pool's lock, then [`finish`] does the work it left for after the lock —
//! wakes waiters, drops closed connections, records breaker transitions and
//! starts the connect tasks it reserved.
//!
//! Connect tasks live here too, since finishing a transition starts them and
//! a finished connect is itself a transition. They run on their own task, so
//! a caller that gives up never throws away a connection being made: the next
//! waiter gets it.

use std::sync::Arc;

use tokio::time::Instant;

use crate::after::After;
use crate::connector::connect_with_retry;
use crate::error::{ConnectFailure, Error};
use crate::live::Live;
use crate::manager::Manager;
use crate::observer::Event;
use crate::shared::Shared;
use crate::state::{State, Step};
use crate::stats::{bump, CloseReason};

/// Runs `transition` on the pool's state under its lock, then its deferred work.
pub(crate) fn apply<M: Manager, R>(
    shared: &Arc<Shared<M>>,
    transition: impl FnOnce(&mut State<M>, &mut Step<'_, M>) -> R,
) -> R {
    let mut step = Step::new(&shared.breaker);
    let out = transition(&mut shared.lock(), &mut step);
    finish(shared, step.after);
    out
}

/// Runs the deferred work: wakes waiters, drops closed connections, spawns connects.
pub(crate) fn finish<M: Manager>(shared: &Arc<Shared<M>>, after: After<M::Connection>) {
    if after.is_empty() {
        return; // the common case: a plain return or checkout
    }
    if after.wake_sweeper {
        shared.sweep.notify_one();
    }
    for t in after.transitions {
        shared.record_transition(t);
    }
    after.wakers.wake_all();
    let any_closed = after.freed || !after.closed.is_empty();
    for (conn, reason) in after.closed {
        shared.stats.count_close(reason);
        shared.emit(Event::Closed { reason });
        tracing::debug!(reason = reason.as_str(), "lido: connection closed");
        drop(conn);
    }
    if any_closed {
        shared.returned.notify_waiters();
    }
    for trial in after.spawn {
        spawn_connect(shared, trial);
    }
}

/// Puts a checked-out connection back (from a guard): to a waiter, idle, or
/// closed when the pool is closed, shrunk, or above `core_size`. Its lease
/// ends under the same lock. The caller has set `last_used`/`last_checked`.
pub(crate) fn put_back<M: Manager>(shared: &Arc<Shared<M>>, live: Live<M::Connection>) {
    apply(shared, |st, step| st.put_back(live, step));
}

/// Closes a connection that is not in the idle list (checked out or being
/// validated); its lease entry goes with it, under the same lock.
pub(crate) fn discard<M: Manager>(
    shared: &Arc<Shared<M>>,
    live: Live<M::Connection>,
    reason: CloseReason,
) {
    apply(shared, |st, step| st.close_conn(live, reason, step));
}

/// Starts a connect task for a slot already reserved in `connecting`.
pub(crate) fn spawn_connect<M: Manager>(shared: &Arc<Shared<M>>, trial: bool) {
    let shared = Arc::clone(shared);
    let rt = shared.runtime.clone();
    rt.spawn(async move {
        let _ = run_connect(&shared, trial).await;
    });
}

/// One reserved connect, start to finish: the new connection joins the pool
/// (to the oldest waiter, else idle), or the failure goes to the oldest
/// waiter. Returns the failure for a caller that wants it (warm-up).
pub(crate) async fn run_connect<M: Manager>(
    shared: &Arc<Shared<M>>,
    trial: bool,
) -> Result<(), Error<M::Error>> {
    let mut slot = Reservation {
        shared,
        trial,
        armed: true,
    };
    let result = connect_with_retry(shared, trial).await;
    slot.armed = false;
    match result {
        Ok(live) => {
            apply(shared, |st, step| st.connected(live, step));
            Ok(())
        }
        Err((cause, attempts)) => {
            let err = Error::Connect {
                cause: cause.clone(),
                attempts,
            };
            give_up(shared, cause, attempts);
            Err(err)
        }
    }
}

/// A connect gave up: the oldest waiter gets the failure; when the breaker
/// opened, every other waiter fails fast too, else connects start for them.
fn give_up<M: Manager>(shared: &Arc<Shared<M>>, cause: ConnectFailure<M::Error>, attempts: u32) {
    let err = Error::Connect { cause, attempts };
    apply(shared, |st, step| st.connect_failed(err, step));
}

/// A reservation in `connecting`. Released by the connect finishing or
/// failing; if the manager panics mid-connect, the drop during unwinding
/// releases it instead, so a buggy manager costs one failed connect, not a
/// slot forever.
struct Reservation<'a, M: Manager> {
    shared: &'a Arc<Shared<M>>,
    trial: bool,
    armed: bool,
}

impl<M: Manager> Drop for Reservation<'_, M> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let shared = self.shared;
        bump(&shared.stats.connect_failures);
        let failure = ConnectFailure::Panicked;
        if let Some(t) = shared
            .breaker
            .on_failure(Instant::now(), failure.clone(), self.trial)
        {
            shared.record_transition(t);
        }
        tracing::error!("lido: the connection manager panicked in connect(); slot released");
        give_up(shared, failure, 1);
    }
}

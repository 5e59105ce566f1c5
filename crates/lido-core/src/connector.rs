//! Opening connections: connect timeout, retry with jittered backoff for
//! transient errors, circuit-breaker bookkeeping, and delivery of the result
//! to the oldest waiter. Connects run on their own task, so a caller that
//! gives up never throws away a connection being made: the next waiter gets it.

use std::sync::Arc;

use tokio::time::Instant;

use crate::backoff;
use crate::breaker::{Admission, BreakerState};
use crate::error::{ConnectFailure, Error};
use crate::manager::{ErrorClass, Manager};
use crate::observer::Event;
use crate::shared::{After, Delivery, Live, Shared};
use crate::stats::{bump, CloseReason};

/// Starts a connect task for a slot already reserved in `connecting`.
pub(crate) fn spawn<M: Manager>(shared: &Arc<Shared<M>>, trial: bool) {
    let shared = Arc::clone(shared);
    let rt = shared.runtime.clone();
    rt.spawn(async move {
        let _ = run(&shared, trial).await;
    });
}

/// One reserved connect, start to finish: the new connection joins the pool
/// (to the oldest waiter, else idle), or the failure goes to the oldest
/// waiter. Returns the failure for a caller that wants it (warm-up).
pub(crate) async fn run<M: Manager>(
    shared: &Arc<Shared<M>>,
    trial: bool,
) -> Result<(), Error<M::Error>> {
    let mut slot = Slot {
        shared,
        trial,
        armed: true,
    };
    let result = connect_with_retry(shared, trial).await;
    slot.armed = false;
    match result {
        Ok(live) => {
            add_new(shared, live);
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

/// A reservation in `connecting`. Released by `add_new`/`give_up`; if the
/// manager panics mid-connect, the drop during unwinding releases it instead,
/// so a buggy manager costs one failed connect, not a slot forever.
struct Slot<'a, M: Manager> {
    shared: &'a Arc<Shared<M>>,
    trial: bool,
    armed: bool,
}

impl<M: Manager> Drop for Slot<'_, M> {
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

/// Whether a retry still serves someone (a waiter, or `min_idle`).
fn still_needed<M: Manager>(shared: &Shared<M>) -> bool {
    let st = shared.lock();
    !st.closed && (!st.waiters.is_empty() || st.size + st.connecting <= shared.cfg.min_idle)
}

/// Connects, retrying transient failures within `retry.max_attempts`.
pub(crate) async fn connect_with_retry<M: Manager>(
    shared: &Arc<Shared<M>>,
    mut trial: bool,
) -> Result<Live<M::Connection>, (ConnectFailure<M::Error>, u32)> {
    let cfg = &shared.cfg;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = Instant::now();
        let (class, failure) =
            match tokio::time::timeout(cfg.connect_timeout, shared.manager.connect()).await {
                Ok(Ok(conn)) => {
                    let now = Instant::now();
                    let took = now - started;
                    if cfg.statistics {
                        shared.stats.connect_time.record(took);
                    }
                    bump(&shared.stats.created);
                    if let Some(t) = shared.breaker.on_success(now, trial) {
                        shared.record_transition(t);
                    }
                    shared.emit(Event::Created { took });
                    tracing::debug!(?took, attempt, "lido: connection opened");
                    return Ok(shared.wrap(conn, now));
                }
                Ok(Err(e)) => {
                    let class = shared.manager.classify(&e);
                    (class, ConnectFailure::Backend(Arc::new(e)))
                }
                Err(_) => (
                    ErrorClass::Transient,
                    ConnectFailure::Timeout(cfg.connect_timeout),
                ),
            };
        bump(&shared.stats.connect_failures);
        if let Some(t) = shared
            .breaker
            .on_failure(Instant::now(), failure.clone(), trial)
        {
            shared.record_transition(t);
        }
        let will_retry = class == ErrorClass::Transient
            && attempt < cfg.retry.max_attempts
            && shared.breaker.state() != BreakerState::Open
            && still_needed(shared);
        tracing::warn!(
            error = %failure,
            attempt,
            will_retry,
            permanent = class == ErrorClass::Permanent,
            "lido: connect failed"
        );
        shared.emit(Event::ConnectFailed {
            error: &failure,
            attempt,
            will_retry,
        });
        if !will_retry {
            return Err((failure, attempt));
        }
        tokio::time::sleep(backoff::delay(&cfg.retry, attempt)).await;
        let (admission, t) = shared.breaker.admit(Instant::now());
        if let Some(t) = t {
            shared.record_transition(t);
        }
        match admission {
            Admission::Allowed { trial: t } => trial = t,
            Admission::Rejected => return Err((failure, attempt)),
        }
    }
}

/// A new connection joins the pool: straight to the oldest waiter, else idle.
pub(crate) fn add_new<M: Manager>(shared: &Arc<Shared<M>>, mut live: Live<M::Connection>) {
    let mut after = After::default();
    {
        let mut st = shared.lock();
        st.connecting -= 1;
        st.size += 1;
        live.slot = st.leases.open();
        if st.closed {
            shared.close_locked(&mut st, live, CloseReason::PoolClosed, &mut after);
        } else if st.size > st.max_size {
            shared.close_locked(&mut st, live, CloseReason::Resize, &mut after);
        } else {
            shared.hand_off(&mut st, live, &mut after);
            // A closed breaker (after a successful trial) may now admit more.
            shared.spawn_for_waiters(&mut st, &mut after);
        }
    }
    shared.finish(after);
}

/// A connect gave up: the oldest waiter gets the failure; when the breaker
/// opened, every other waiter fails fast too, else connects start for them.
pub(crate) fn give_up<M: Manager>(
    shared: &Arc<Shared<M>>,
    cause: ConnectFailure<M::Error>,
    attempts: u32,
) {
    let mut after = After::default();
    {
        let mut st = shared.lock();
        st.connecting -= 1;
        after.freed = true;
        let err = Error::Connect { cause, attempts };
        if let Ok(w) = st.waiters.deliver(Delivery::Failed(err)) {
            after.wakers.extend(w);
        }
        if shared.breaker.state() == BreakerState::Open {
            let err = shared.circuit_open_error();
            shared.fail_waiters(&mut st, || err.clone(), &mut after);
        } else {
            shared.spawn_for_waiters(&mut st, &mut after);
        }
    }
    shared.finish(after);
}

//! `get()`: take an idle connection or join the wait queue, then validate.
//!
//! Cancellation safety: the only awaits are the wait for a delivery and the
//! validation `check`. A dropped wait removes its waiter and passes on anything
//! already delivered to it; a dropped validation closes the connection through
//! its guard and frees its slot. Connects run on their own tasks.

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Instant;

use crate::error::Error;
use crate::guard::Pooled;
use crate::manager::Manager;
use crate::observer::Event;
use crate::shared::{After, Delivery, Live, Shared};
use crate::stats::{bump, CloseReason};
use crate::waiters::Priority;

enum Take<M: Manager> {
    Ready(Live<M::Connection>),
    Wait(usize),
    Fail(Error<M::Error>),
}

fn try_take<M: Manager>(shared: &Arc<Shared<M>>, priority: Priority) -> Take<M> {
    let mut after = After::default();
    let take = {
        let mut st = shared.lock();
        if st.closed {
            return Take::Fail(Error::Closed);
        }
        if st.waiters.is_empty() {
            if let Some(live) = shared.pop_idle(&mut st) {
                return Take::Ready(live);
            }
        }
        if let Some((retry_in, last_error)) = shared.breaker.rejects_get(Instant::now()) {
            return Take::Fail(Error::CircuitOpen {
                retry_in,
                last_error,
            });
        }
        let key = st.waiters.push(priority);
        shared.spawn_for_waiters(&mut st, &mut after);
        Take::Wait(key)
    };
    shared.finish(after);
    take
}

/// Waits for a delivery to waiter `key`; on drop, leaves the queue cleanly.
struct Wait<'a, M: Manager> {
    shared: &'a Arc<Shared<M>>,
    key: usize,
    done: bool,
}

impl<M: Manager> Future for Wait<'_, M> {
    type Output = Delivery<M>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Delivery<M>> {
        let got = self.shared.lock().waiters.poll_take(self.key, cx.waker());
        match got {
            Some(d) => {
                self.done = true;
                Poll::Ready(d)
            }
            None => Poll::Pending,
        }
    }
}

impl<M: Manager> Drop for Wait<'_, M> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut after = After::default();
        {
            let mut st = self.shared.lock();
            match st.waiters.cancel(self.key) {
                Some(Delivery::Conn(live)) => self.shared.hand_off(&mut st, live, &mut after),
                Some(Delivery::Failed(e)) => {
                    if let Ok(w) = st.waiters.deliver(Delivery::Failed(e)) {
                        after.wakers.extend(w);
                    }
                }
                None => {}
            }
        }
        self.shared.finish(after);
    }
}

fn timeout_error<M: Manager>(shared: &Shared<M>, start: Instant) -> Error<M::Error> {
    let waited = start.elapsed();
    bump(&shared.stats.acquire_timeouts);
    shared.emit(Event::AcquireTimeout { waited });
    let (in_use, max_size, waiters) = {
        let st = shared.lock();
        (st.size - st.idle.len(), st.max_size, st.waiters.len())
    };
    let err = Error::AcquireTimeout {
        waited,
        in_use,
        max_size,
        waiters,
        last_connect_error: shared.breaker.last_error(),
    };
    tracing::warn!(error = %err, "lido: acquire timed out");
    err
}

enum Checked {
    Ok,
    Closed(CloseReason),
    TimedOut,
}

/// Broken, expired, or (after the bypass window) failing its `check`?
async fn validate<M: Manager>(
    shared: &Shared<M>,
    guard: &mut Pooled<M>,
    deadline: Instant,
) -> Checked {
    let now = Instant::now();
    let live = guard.live_mut();
    if shared.manager.has_broken(&mut live.conn) {
        return Checked::Closed(CloseReason::Broken);
    }
    if live.expired(now) {
        return Checked::Closed(CloseReason::Lifetime);
    }
    if now.saturating_duration_since(live.last_used) <= shared.cfg.validation_bypass {
        return Checked::Ok;
    }
    let limit = shared.cfg.check_timeout.min(Shared::<M>::until(deadline));
    match tokio::time::timeout(limit, shared.manager.check(&mut live.conn)).await {
        Ok(Ok(())) => Checked::Ok,
        Ok(Err(e)) => {
            tracing::info!(error = %e, "lido: idle connection failed validation; replacing it");
            Checked::Closed(CloseReason::FailedCheck)
        }
        Err(_) if Instant::now() >= deadline => Checked::TimedOut,
        Err(_) => {
            tracing::info!(
                ?limit,
                "lido: validation timed out; replacing the connection"
            );
            Checked::Closed(CloseReason::FailedCheck)
        }
    }
}

/// The body of `Pool::get`.
pub(crate) async fn acquire<M: Manager>(
    shared: &Arc<Shared<M>>,
    priority: Priority,
    location: &'static Location<'static>,
) -> Result<Pooled<M>, Error<M::Error>> {
    let start = Instant::now();
    let deadline = start + shared.cfg.acquire_timeout;
    let mut waited = false;
    loop {
        let live = match try_take(shared, priority) {
            Take::Ready(live) => live,
            Take::Fail(e) => return Err(fail(shared, e)),
            Take::Wait(key) => {
                waited = true;
                let wait = Wait {
                    shared,
                    key,
                    done: false,
                };
                match tokio::time::timeout_at(deadline, wait).await {
                    Ok(Delivery::Conn(live)) => live,
                    Ok(Delivery::Failed(e)) => return Err(fail(shared, e)),
                    Err(_) => return Err(timeout_error(shared, start)),
                }
            }
        };
        let mut guard = Pooled::new(Arc::clone(shared), live, location);
        match validate(shared, &mut guard, deadline).await {
            Checked::Ok => {
                let now = Instant::now();
                guard.activate(now);
                let wait = now - start;
                bump(if waited {
                    &shared.stats.gets_waited
                } else {
                    &shared.stats.gets_direct
                });
                shared.stats.acquire_wait.record(wait);
                shared.emit(Event::Acquired { wait });
                return Ok(guard);
            }
            Checked::Closed(reason) => guard.close(reason),
            Checked::TimedOut => {
                guard.close(CloseReason::FailedCheck);
                return Err(timeout_error(shared, start));
            }
        }
    }
}

fn fail<M: Manager>(shared: &Shared<M>, e: Error<M::Error>) -> Error<M::Error> {
    bump(&shared.stats.get_errors);
    tracing::debug!(error = %e, "lido: get() failed");
    e
}

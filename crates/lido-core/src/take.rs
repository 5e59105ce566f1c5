//! [`Take`]: the future that gets a connection out of the pool's state: an
//! idle one at once, or one delivered to this caller's place in the queue.
//!
//! Its first poll takes an idle connection or joins the queue with its waker,
//! in one critical section. Later polls only run after a wake-up (a
//! connection, an error or the sweeper's timeout was delivered) and take the
//! delivery in a second one. Dropped while queued, it leaves the queue and
//! passes on whatever was already delivered to it, so nothing leaks.

use std::backtrace::Backtrace;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Instant;

use crate::commit::{apply, finish};
use crate::error::Error;
use crate::live::{Delivery, Live};
use crate::manager::Manager;
use crate::shared::Shared;
use crate::state::{Checkout, Step, Waiter};
use crate::waiters::Priority;

/// Where and when a `get()` began.
pub(crate) struct Caller {
    pub location: &'static Location<'static>,
    pub priority: Priority,
    pub start: Instant,
    /// The pool's `acquire_timeout`.
    pub timeout: std::time::Duration,
    pub backtrace: Option<Arc<Backtrace>>,
}

impl Caller {
    /// `start + acquire_timeout` (worked out only by callers that wait or
    /// validate: the direct path never needs it).
    pub fn deadline(&self) -> Instant {
        crate::time::add(self.start, self.timeout)
    }
}

/// A connection out of the pool's state, not yet validated.
pub(crate) struct Got<C> {
    pub live: Live<C>,
    /// The clock when it was taken.
    pub now: Instant,
    pub waited: bool,
}

/// What a caller that did not get a connection gets instead.
pub(crate) enum Missed<E: std::error::Error + 'static> {
    Failed(Error<E>),
    TimedOut,
}

/// What polling a [`Take`] yields.
type Polled<M> = Poll<Result<Got<<M as Manager>::Connection>, Missed<<M as Manager>::Error>>>;

pub(crate) struct Take<'a, M: Manager> {
    shared: &'a Arc<Shared<M>>,
    caller: &'a Caller,
    /// The place in the queue, once queued.
    key: Option<usize>,
    /// Queue at the front of the lane: this caller was served once already
    /// (its connection failed validation) and keeps its turn.
    again: bool,
    done: bool,
}

impl<'a, M: Manager> Take<'a, M> {
    pub fn new(shared: &'a Arc<Shared<M>>, caller: &'a Caller, again: bool) -> Self {
        Self {
            shared,
            caller,
            key: None,
            again,
            done: false,
        }
    }

    /// Starts the lease in the connection's leak-detection record (leak
    /// detection on). Outside the pool's lock: the record is the connection's own.
    fn lease(&self, live: &Live<M::Connection>, since: Instant) {
        if self.shared.cfg.leak_threshold.is_some() {
            let caller = self.caller;
            live.lease
                .begin(since, caller.location, caller.backtrace.clone());
        }
    }

    /// First poll: an idle connection, a failure, or a place in the queue.
    fn first(&mut self, cx: &Context<'_>) -> Polled<M> {
        let shared = self.shared;
        let caller = self.caller;
        let mut step = Step::new(&shared.breaker);
        {
            let mut st = shared.lock();
            match st.checkout(caller.priority) {
                Checkout::Closed => return Poll::Ready(Err(Missed::Failed(Error::Closed))),
                Checkout::Idle(live) => {
                    drop(st);
                    self.lease(&live, caller.start);
                    return Poll::Ready(Ok(Got {
                        live,
                        now: caller.start,
                        waited: false,
                    }));
                }
                Checkout::Queue => {}
            }
            if let Some((retry_in, last_error)) = shared.breaker.rejects_get(caller.start) {
                let e = Error::CircuitOpen {
                    retry_in,
                    last_error,
                };
                return Poll::Ready(Err(Missed::Failed(e)));
            }
            let waiter = Waiter {
                priority: caller.priority,
                deadline: caller.deadline(),
                since: caller.start,
                waker: cx.waker(),
                again: self.again,
            };
            self.key = Some(st.join_queue(waiter, &mut step));
        }
        finish(shared, step.after);
        Poll::Pending
    }

    /// Later polls: take what was delivered, if anything.
    fn delivered(&mut self, key: usize, cx: &Context<'_>) -> Polled<M> {
        // Polled again almost only after a wake-up, so this reading is the
        // time the connection was taken (and no second reading is needed).
        let now = Instant::now();
        let mut st = self.shared.lock();
        let Some(delivery) = st.take_delivery(key, cx.waker()) else {
            return Poll::Pending;
        };
        drop(st);
        self.done = true;
        Poll::Ready(match delivery {
            Delivery::Conn(live) => {
                self.lease(&live, now);
                Ok(Got {
                    live,
                    now,
                    waited: true,
                })
            }
            Delivery::Failed(e) => Err(Missed::Failed(*e)),
            Delivery::TimedOut => Err(Missed::TimedOut),
        })
    }
}

impl<M: Manager> Future for Take<'_, M> {
    type Output = Result<Got<M::Connection>, Missed<M::Error>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match this.key {
            None => {
                let out = this.first(cx);
                this.done = out.is_ready();
                out
            }
            Some(key) => this.delivered(key, cx),
        }
    }
}

impl<M: Manager> Drop for Take<'_, M> {
    fn drop(&mut self) {
        let Some(key) = self.key.filter(|_| !self.done) else {
            return;
        };
        apply(self.shared, |st, step| st.cancel_waiter(key, step));
    }
}

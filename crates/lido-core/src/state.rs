//! [`State`]: the pool's locked state — idle connections, waiters, the open
//! count, connects in flight — and the named transitions that change it.
//!
//! Its fields are private: every change goes through one of the methods
//! below (or those in [`upkeep`], for the background and administrative
//! ones), each a whole critical section run under the pool's lock. A
//! transition never wakes a waker, drops a connection or spawns a task
//! itself: it records that work in [`Step::after`], for the caller to run
//! once the lock is released. The loom model (`state_model.rs`) drives these
//! same methods.

pub(crate) mod lanes;
pub(crate) mod preempt;
pub(crate) mod upkeep;

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;

use tokio::time::Instant;

use crate::after::After;
use crate::breaker::{Admission, Breaker, BreakerState};
use crate::config::{Config, ReuseOrder};
use crate::error::Error;
use crate::lanes::{Held, LaneLimits};
use crate::leaks::{LeakReport, Leases};
use crate::live::{Delivery, Live};
use crate::manager::Manager;
use crate::stats::{CloseReason, Status};
use crate::waiters::{Priority, WaitQueue};

/// The settings transitions decide by (fixed when the pool is built).
#[derive(Clone, Copy)]
struct Rules {
    reuse_order: ReuseOrder,
    /// Connections above this are closed on return when nobody waits.
    core: usize,
    min_idle: usize,
    lanes: LaneLimits,
    /// `lanes.is_active()`, worked out once: the lane rules are checked on
    /// every checkout and return, under the lock.
    lanes_on: bool,
}

/// The pool's state; lives under the pool's one lock.
pub(crate) struct State<M: Manager> {
    idle: VecDeque<Live<M::Connection>>,
    waiters: WaitQueue<Delivery<M>>,
    /// Open connections: idle plus in use (connects in flight not included).
    size: usize,
    connecting: usize,
    /// Idle connections out for a keepalive ping (counted in `size`).
    pinging: usize,
    max_size: usize,
    /// Adaptive sizing's target (`usize::MAX` when off); see `cap`.
    target: usize,
    closed: bool,
    /// One entry per open connection, holding its lease while checked out
    /// (entries stay empty when leak detection is off).
    leases: Leases,
    /// The sweeper found no waiter and sleeps until told otherwise.
    sweeper_parked: bool,
    /// Leases held now, per lane (checked against `rules.lanes`).
    held: Held,
    /// Leases lent on a higher lane's reserve (lane lending).
    lent: Vec<preempt::Lent>,
    rules: Rules,
}

/// What a transition works with besides the state: the circuit breaker that
/// admits connects, and the work it leaves for after the lock.
pub(crate) struct Step<'a, M: Manager> {
    pub gate: &'a Breaker<M::Error>,
    pub after: After<M::Connection>,
}

impl<'a, M: Manager> Step<'a, M> {
    pub fn new(gate: &'a Breaker<M::Error>) -> Self {
        Self {
            gate,
            after: After::default(),
        }
    }
}

/// What [`State::checkout`] found.
pub(crate) enum Checkout<C> {
    /// The pool is closed.
    Closed,
    /// An idle connection, nobody ahead in the queue.
    Idle(Live<C>),
    /// Nothing idle for this caller: it must queue.
    Queue,
}

/// Who joins the queue, for [`State::join_queue`].
pub(crate) struct Waiter<'w> {
    pub priority: Priority,
    pub deadline: Instant,
    /// When the caller's `get()` began (read before the lock is taken).
    pub since: Instant,
    pub waker: &'w Waker,
    /// Served once already (its connection failed validation): keeps its
    /// turn at the front of its lane.
    pub again: bool,
}

impl<M: Manager> State<M> {
    /// An empty, open pool built with `cfg`.
    pub fn new(cfg: &Config) -> Self {
        Self {
            idle: VecDeque::with_capacity(cfg.max_size),
            waiters: WaitQueue::default(),
            size: 0,
            connecting: 0,
            pinging: 0,
            max_size: cfg.max_size,
            target: cfg.adaptive.as_ref().map_or(usize::MAX, |a| a.min),
            closed: false,
            leases: Leases::default(),
            sweeper_parked: false,
            held: Held::default(),
            lent: Vec::new(),
            rules: Rules {
                reuse_order: cfg.reuse_order,
                core: cfg.core(),
                min_idle: cfg.min_idle,
                lanes: cfg.lanes,
                lanes_on: cfg.lanes.is_active(),
            },
        }
    }

    /// The counts `Pool::status` reports.
    pub fn status(&self) -> Status {
        Status {
            size: self.size,
            idle: self.idle.len(),
            in_use: self.size - self.idle.len(),
            waiters: self.waiters.len(),
            connecting: self.connecting,
            max_size: self.max_size,
            target_size: self.cap(),
            min_idle: self.rules.min_idle,
            in_use_by_lane: self.held.all(),
        }
    }

    /// Whether `close()` was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Connections open or being opened (what `close()` waits to reach zero).
    pub fn outstanding(&self) -> usize {
        self.size + self.connecting
    }

    /// Whether a connect retry still serves someone (a waiter, or `min_idle`).
    pub fn connect_still_needed(&self) -> bool {
        !self.closed
            && (!self.waiters.is_empty() || self.size + self.connecting <= self.rules.min_idle)
    }

    /// Leases held past `threshold`; `only_new` reports each one once.
    pub fn overdue_leases(
        &self,
        now: Instant,
        threshold: std::time::Duration,
        only_new: bool,
    ) -> Vec<LeakReport> {
        self.leases.over(now, threshold, only_new)
    }

    /// Take idle: an idle connection for a caller in `lane`, when its lane
    /// is within its limits and nobody who could be served waits in it or
    /// above; in reuse order.
    pub fn checkout(&mut self, lane: Priority) -> Checkout<M::Connection> {
        if self.closed {
            return Checkout::Closed;
        }
        if !self.admits(lane) || self.servable_from(lane).is_some() {
            return Checkout::Queue;
        }
        let live = match self.rules.reuse_order {
            ReuseOrder::Lifo => self.idle.pop_back(),
            ReuseOrder::Fifo => self.idle.pop_front(),
        };
        live.map_or(Checkout::Queue, |mut live| {
            self.hold(&mut live, lane);
            Checkout::Idle(live)
        })
    }

    /// The lease on `live` ends (it is out for a reset; the caller ended its
    /// leak-detection record): its lane no longer holds it.
    pub fn end_lease(&mut self, live: &mut Live<M::Connection>, step: &mut Step<'_, M>) {
        self.unhold(live, step);
    }

    /// Joins the queue (waking a parked sweeper) and reserves a connect for
    /// it if none in flight covers it; returns the waiter's key.
    pub fn join_queue(&mut self, w: Waiter<'_>, step: &mut Step<'_, M>) -> usize {
        let key = if w.again {
            self.waiters
                .push_front(w.priority, w.deadline, w.since, w.waker)
        } else {
            self.waiters.push(w.priority, w.deadline, w.since, w.waker)
        };
        if self.sweeper_parked || self.may_preempt_for(w.priority) {
            self.sweeper_parked = false;
            step.after.wake_sweeper = true;
        }
        self.spawn_for_waiters(step);
        key
    }

    /// What was delivered to the waiter `key`, if anything (else its waker is
    /// stored for the delivery to wake).
    pub fn take_delivery(&mut self, key: usize, waker: &Waker) -> Option<Delivery<M>> {
        self.waiters.poll_take(key, waker)
    }

    /// Cancel waiter: `key` leaves the queue; a connection delivered to it
    /// meanwhile goes back as if returned, a connect failure meant for it goes
    /// to the next waiter.
    pub fn cancel_waiter(&mut self, key: usize, step: &mut Step<'_, M>) {
        match self.waiters.cancel(key) {
            Some(Delivery::Conn(mut live)) => {
                self.unhold(&mut live, step);
                self.return_conn(live, step);
            }
            Some(Delivery::Failed(e)) => {
                if let Ok(w) = self.waiters.deliver(Delivery::Failed(e)) {
                    step.after.wakers.extend(w);
                }
            }
            Some(Delivery::TimedOut) | None => {}
        }
    }

    /// Return: a checked-out connection comes back (the caller ended its
    /// leak-detection record); its lane no longer holds it.
    pub fn put_back(&mut self, mut live: Live<M::Connection>, step: &mut Step<'_, M>) {
        if let Some(lane) = live.lane.take() {
            self.release_lane(live.slot, lane);
        }
        self.return_conn(live, step);
        self.serve_idle(step);
    }

    /// A connection not in the idle list goes back: closed if the pool is
    /// closed, shrunk, or above `core_size` with nobody waiting; else to the
    /// oldest waiter, or idle.
    pub fn return_conn(&mut self, live: Live<M::Connection>, step: &mut Step<'_, M>) {
        if self.closed {
            self.close_conn(live, CloseReason::PoolClosed, step);
        } else if self.size > self.cap() {
            self.close_conn(live, CloseReason::Resize, step);
        } else if self.waiters.is_empty() && self.size > self.rules.core {
            self.close_conn(live, CloseReason::Overflow, step);
        } else {
            self.hand_off(live, step);
        }
    }

    /// Close: a connection not in the idle list leaves the pool (its lease
    /// entry with it); connects start for waiters if that made room.
    // The box is where every `Live` lives; this is where it ends.
    #[allow(clippy::boxed_local)]
    pub fn close_conn(
        &mut self,
        mut live: Live<M::Connection>,
        reason: CloseReason,
        step: &mut Step<'_, M>,
    ) {
        if let Some(lane) = live.lane.take() {
            self.release_lane(live.slot, lane);
        }
        self.size -= 1;
        self.leases.close(live.slot);
        step.after.closed.push((live.conn, reason));
        self.serve_idle(step);
        self.spawn_for_waiters(step);
    }

    /// Detach: the checked-out connection in `slot` leaves the pool for good,
    /// freeing its place.
    pub fn detach(&mut self, slot: usize, lane: Option<Priority>, step: &mut Step<'_, M>) {
        if let Some(lane) = lane {
            self.release_lane(slot, lane);
            self.serve_idle(step);
        }
        self.leases.close(slot);
        self.size -= 1;
        step.after.freed = true;
        self.spawn_for_waiters(step);
    }

    /// Connect finished: the reserved connect's new connection joins the
    /// pool — to the oldest waiter, else idle; closed at once if the pool
    /// closed or shrank meanwhile.
    pub fn connected(&mut self, mut live: Live<M::Connection>, step: &mut Step<'_, M>) {
        self.connecting -= 1;
        self.size += 1;
        live.slot = self.leases.open(Arc::clone(&live.lease));
        if self.closed {
            self.close_conn(live, CloseReason::PoolClosed, step);
        } else if self.size > self.cap() {
            self.close_conn(live, CloseReason::Resize, step);
        } else {
            self.hand_off(live, step);
            // A closed breaker (after a successful trial) may now admit more.
            self.spawn_for_waiters(step);
        }
    }

    /// Connect failed: the reservation is released and the oldest waiter gets
    /// `err`; when the breaker is open every other waiter fails fast too,
    /// else connects start for them.
    pub fn connect_failed(&mut self, err: Error<M::Error>, step: &mut Step<'_, M>) {
        self.connecting -= 1;
        step.after.freed = true;
        if let Ok(w) = self.waiters.deliver(Delivery::Failed(Box::new(err))) {
            step.after.wakers.extend(w);
        }
        if step.gate.state() == BreakerState::Open {
            let err = Error::CircuitOpen {
                retry_in: step.gate.retry_in(Instant::now()),
                last_error: step.gate.last_error(),
            };
            self.fail_waiters(|| err.clone(), step);
        } else {
            self.spawn_for_waiters(step);
        }
    }

    /// Hand to the oldest waiter of the highest lane that may take it, or
    /// park idle.
    fn hand_off(&mut self, live: Live<M::Connection>, step: &mut Step<'_, M>) {
        match self.servable_from(Priority::Background) {
            Some(lane) => self.deliver_to(lane, live, step),
            None => self.idle.push_back(live),
        }
    }

    /// Fail waiting: every waiter gets `make()` (the pool closed, the
    /// breaker opened, or the backend found the database unavailable);
    /// returns how many.
    pub fn fail_waiters(
        &mut self,
        mut make: impl FnMut() -> Error<M::Error>,
        step: &mut Step<'_, M>,
    ) -> usize {
        let failed = self.waiters.len();
        let wakers = self
            .waiters
            .deliver_all(|| Delivery::Failed(Box::new(make())));
        step.after.wakers.extend(wakers);
        failed
    }

    /// Starts connects for waiters no connect in flight already covers.
    fn spawn_for_waiters(&mut self, step: &mut Step<'_, M>) {
        let want = self.servable_waiters().saturating_sub(self.connecting);
        let trials = self.reserve(want, step);
        step.after.spawn.extend(trials);
    }

    /// Open slot: reserves up to `want` connects within the cap, as the
    /// breaker admits; returns their `trial` flags.
    fn reserve(&mut self, want: usize, step: &mut Step<'_, M>) -> Vec<bool> {
        let mut trials = Vec::new();
        if self.closed {
            return trials;
        }
        let room = self.cap().saturating_sub(self.size + self.connecting);
        for _ in 0..want.min(room) {
            let (admission, t) = step.gate.admit(Instant::now());
            step.after.transitions.extend(t);
            match admission {
                Admission::Allowed { trial } => {
                    self.connecting += 1;
                    trials.push(trial);
                }
                Admission::Rejected => break,
            }
        }
        trials
    }

    /// The connections in the idle list (for the model check's invariants).
    #[cfg(test)]
    pub fn idle_conns(&self) -> impl Iterator<Item = &M::Connection> {
        self.idle.iter().map(|l| &l.conn)
    }

    /// Whether the waiter `key` still waits for a delivery.
    #[cfg(test)]
    pub fn is_queued(&self, key: usize) -> bool {
        self.waiters.is_queued(key)
    }

    /// Connections out for a keepalive ping.
    #[cfg(test)]
    pub fn pings_out(&self) -> usize {
        self.pinging
    }

    /// Entries in the lease registry (one per open connection).
    #[cfg(test)]
    pub fn lease_entries(&self) -> usize {
        self.leases.len()
    }
}

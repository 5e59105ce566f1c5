//! The pool's shared state and the operations that move connections between
//! idle, in use and waiters. Every state change happens under one lock; wakers
//! are woken and connections dropped only after it is released.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Waker;

use parking_lot::{Mutex, MutexGuard};
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::breaker::{Admission, Breaker, BreakerState, Transition};
use crate::config::{Config, ReuseOrder};
use crate::error::Error;
use crate::leaks::Leases;
use crate::manager::Manager;
use crate::observer::{Event, Observer};
use crate::stats::{bump, CloseReason, Stats};
use crate::waiters::WaitQueue;

/// A connection with its bookkeeping.
pub(crate) struct Live<C> {
    pub conn: C,
    pub id: u64,
    pub created: Instant,
    pub expires: Option<Instant>,
    /// When a caller last returned it (what `idle_timeout` counts from).
    pub last_used: Instant,
    /// When it was last known good: returned, or passed a keepalive ping
    /// (what the validation bypass and keepalive count from).
    pub last_checked: Instant,
    /// Its entry in the lease registry (set when it joins the pool).
    pub slot: usize,
}

impl<C> Live<C> {
    pub fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|e| now >= e)
    }

    /// Time since the connection was last known good.
    pub fn unchecked_for(&self, now: Instant) -> std::time::Duration {
        now.saturating_duration_since(self.last_used.max(self.last_checked))
    }
}

/// What a waiter receives.
pub(crate) enum Delivery<M: Manager> {
    Conn(Live<M::Connection>),
    Failed(Error<M::Error>),
    /// Its deadline passed (delivered by the sweeper).
    TimedOut,
}

pub(crate) struct State<M: Manager> {
    pub idle: VecDeque<Live<M::Connection>>,
    pub waiters: WaitQueue<Delivery<M>>,
    /// Open connections: idle plus in use (connects in flight not included).
    pub size: usize,
    pub connecting: usize,
    /// Idle connections out for a keepalive ping (counted in `size`).
    pub pinging: usize,
    pub max_size: usize,
    pub closed: bool,
    /// One entry per open connection, holding its lease while checked out
    /// (entries stay empty when leak detection is off).
    pub leases: Leases,
    /// The sweeper found no waiter and sleeps until told otherwise.
    pub sweeper_parked: bool,
}

pub(crate) struct Shared<M: Manager> {
    pub manager: M,
    pub cfg: Config,
    pub state: Mutex<State<M>>,
    pub stats: Stats,
    pub breaker: Breaker<M::Error>,
    pub observer: Option<Arc<dyn Observer>>,
    pub runtime: Handle,
    /// Signalled whenever a slot frees up: a connection closed, a failed
    /// connect, a detach (what `close()` waits on).
    pub returned: Notify,
    /// Wakes the sweeper (a waiter joined an empty queue, or the pool is gone).
    pub sweep: Arc<Notify>,
    /// Live `Pool` handles (guards and tasks hold `Arc<Shared>` too, but only
    /// handles can call `get()`); maintenance stops when this reaches zero.
    pub handles: AtomicUsize,
    pub started: Instant,
    /// Milliseconds after `started` of the last maintenance run (liveness).
    pub heartbeat_ms: AtomicU64,
    next_id: AtomicU64,
}

/// Wakers to wake once the lock is released. Almost always zero or one (a
/// return hands its connection to one waiter), kept inline so that common
/// case allocates nothing.
#[derive(Default)]
pub(crate) struct Wakers {
    one: Option<Waker>,
    more: Vec<Waker>,
}

impl Wakers {
    pub fn is_empty(&self) -> bool {
        self.one.is_none() && self.more.is_empty()
    }

    fn wake_all(self) {
        if let Some(w) = self.one {
            w.wake();
        }
        for w in self.more {
            w.wake();
        }
    }
}

impl Extend<Waker> for Wakers {
    fn extend<I: IntoIterator<Item = Waker>>(&mut self, iter: I) {
        for w in iter {
            match self.one {
                None => self.one = Some(w),
                Some(_) => self.more.push(w),
            }
        }
    }
}

/// Things to do once the lock is released.
pub(crate) struct After<C> {
    pub wakers: Wakers,
    closed: Vec<(C, CloseReason)>,
    spawn: Vec<bool>,
    transitions: Vec<Transition>,
    pub wake_sweeper: bool,
    /// A slot was freed without closing a connection (a failed connect, a
    /// detach): `close()` may be waiting for that.
    pub freed: bool,
}

impl<C> After<C> {
    fn is_empty(&self) -> bool {
        self.wakers.is_empty()
            && self.closed.is_empty()
            && self.spawn.is_empty()
            && self.transitions.is_empty()
            && !self.wake_sweeper
            && !self.freed
    }
}

impl<C> Default for After<C> {
    fn default() -> Self {
        Self {
            wakers: Wakers::default(),
            closed: Vec::new(),
            spawn: Vec::new(),
            transitions: Vec::new(),
            wake_sweeper: false,
            freed: false,
        }
    }
}

impl<M: Manager> Shared<M> {
    pub fn new(
        manager: M,
        cfg: Config,
        observer: Option<Arc<dyn Observer>>,
        runtime: Handle,
    ) -> Self {
        Self {
            state: Mutex::new(State {
                idle: VecDeque::with_capacity(cfg.max_size),
                waiters: WaitQueue::default(),
                size: 0,
                connecting: 0,
                pinging: 0,
                max_size: cfg.max_size,
                closed: false,
                leases: Leases::default(),
                sweeper_parked: false,
            }),
            breaker: Breaker::new(cfg.breaker.clone()),
            manager,
            cfg,
            stats: Stats::default(),
            observer,
            runtime,
            returned: Notify::new(),
            sweep: Arc::new(Notify::new()),
            handles: AtomicUsize::new(0),
            started: Instant::now(),
            heartbeat_ms: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State<M>> {
        self.state.lock()
    }

    pub fn emit(&self, event: Event<'_>) {
        if let Some(o) = &self.observer {
            o.on_event(&event);
        }
    }

    /// Wraps a fresh connection with its id and (jittered) expiry.
    pub fn wrap(&self, conn: M::Connection, now: Instant) -> Live<M::Connection> {
        let expires = self.cfg.max_lifetime.map(|life| {
            let jitter = life.mul_f64(self.cfg.lifetime_jitter * fastrand::f64());
            crate::time::add(now, life.saturating_sub(jitter))
        });
        Live {
            conn,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            created: now,
            expires,
            last_used: now,
            last_checked: now,
            slot: usize::MAX,
        }
    }

    pub fn pop_idle(&self, st: &mut State<M>) -> Option<Live<M::Connection>> {
        match self.cfg.reuse_order {
            ReuseOrder::Lifo => st.idle.pop_back(),
            ReuseOrder::Fifo => st.idle.pop_front(),
        }
    }

    /// Gives a connection to the oldest waiter, or parks it idle.
    pub fn hand_off(
        &self,
        st: &mut State<M>,
        live: Live<M::Connection>,
        after: &mut After<M::Connection>,
    ) {
        if st.waiters.is_empty() {
            st.idle.push_back(live);
            return;
        }
        match st.waiters.deliver(Delivery::Conn(live)) {
            Ok(w) => after.wakers.extend(w),
            Err(Delivery::Conn(live)) => st.idle.push_back(live),
            Err(Delivery::Failed(_) | Delivery::TimedOut) => {}
        }
    }

    /// Removes a connection from the count and schedules replacements if needed.
    pub fn close_locked(
        &self,
        st: &mut State<M>,
        live: Live<M::Connection>,
        reason: CloseReason,
        after: &mut After<M::Connection>,
    ) {
        st.size -= 1;
        st.leases.close(live.slot);
        after.closed.push((live.conn, reason));
        self.spawn_for_waiters(st, after);
    }

    /// Starts connects for waiters no connect in flight already covers.
    pub fn spawn_for_waiters(&self, st: &mut State<M>, after: &mut After<M::Connection>) {
        let want = st.waiters.len().saturating_sub(st.connecting);
        self.spawn_up_to(st, want, after);
    }

    /// Starts connects to bring the pool up to `min_idle`.
    pub fn spawn_for_min_idle(&self, st: &mut State<M>, after: &mut After<M::Connection>) {
        let want = self.min_idle_missing(st);
        self.spawn_up_to(st, want, after);
    }

    /// Idle connections short of `min_idle`, counting connects and keepalive
    /// pings in flight (a pinged connection comes back idle).
    fn min_idle_missing(&self, st: &State<M>) -> usize {
        let have = st.idle.len() + st.connecting + st.pinging;
        self.cfg.min_idle.saturating_sub(have)
    }

    /// Like `spawn_for_min_idle`, but returns the reserved connects (their
    /// `trial` flags) for the caller to run: `warm_up` awaits them.
    pub fn reserve_for_min_idle(
        &self,
        st: &mut State<M>,
        after: &mut After<M::Connection>,
    ) -> Vec<bool> {
        let want = self.min_idle_missing(st);
        self.reserve(st, want, after)
    }

    fn spawn_up_to(&self, st: &mut State<M>, want: usize, after: &mut After<M::Connection>) {
        let trials = self.reserve(st, want, after);
        after.spawn.extend(trials);
    }

    /// Reserves up to `want` connects within `max_size`, as the breaker admits.
    fn reserve(
        &self,
        st: &mut State<M>,
        want: usize,
        after: &mut After<M::Connection>,
    ) -> Vec<bool> {
        let mut trials = Vec::new();
        if st.closed {
            return trials;
        }
        let room = st.max_size.saturating_sub(st.size + st.connecting);
        for _ in 0..want.min(room) {
            let (admission, t) = self.breaker.admit(Instant::now());
            after.transitions.extend(t);
            match admission {
                Admission::Allowed { trial } => {
                    st.connecting += 1;
                    trials.push(trial);
                }
                Admission::Rejected => break,
            }
        }
        trials
    }

    /// Fails every waiter with `make()`.
    pub fn fail_waiters(
        &self,
        st: &mut State<M>,
        make: impl FnMut() -> Error<M::Error>,
        after: &mut After<M::Connection>,
    ) {
        let mut make = make;
        let wakers = st.waiters.deliver_all(|| Delivery::Failed(make()));
        after.wakers.extend(wakers);
    }

    /// The error for callers while the breaker is open.
    pub fn circuit_open_error(&self) -> Error<M::Error> {
        Error::CircuitOpen {
            retry_in: self.breaker.retry_in(Instant::now()),
            last_error: self.breaker.last_error(),
        }
    }

    /// Runs the deferred work: wakes waiters, drops closed connections, spawns connects.
    pub fn finish(self: &Arc<Self>, after: After<M::Connection>) {
        if after.is_empty() {
            return; // the common case: a plain return or checkout
        }
        if after.wake_sweeper {
            self.sweep.notify_one();
        }
        for t in after.transitions {
            self.record_transition(t);
        }
        after.wakers.wake_all();
        let any_closed = after.freed || !after.closed.is_empty();
        for (conn, reason) in after.closed {
            self.stats.count_close(reason);
            self.emit(Event::Closed { reason });
            tracing::debug!(reason = reason.as_str(), "lido: connection closed");
            drop(conn);
        }
        if any_closed {
            self.returned.notify_waiters();
        }
        for trial in after.spawn {
            crate::connector::spawn(self, trial);
        }
    }

    pub fn record_transition(&self, t: Transition) {
        match t.to {
            BreakerState::Open => {
                bump(&self.stats.breaker_opened);
                tracing::warn!(from = %t.from, "lido: circuit breaker opened: connects keep failing, get() fails fast");
            }
            BreakerState::HalfOpen => {
                bump(&self.stats.breaker_half_opened);
                tracing::info!("lido: circuit breaker half-open: trying a connect");
            }
            BreakerState::Closed => {
                bump(&self.stats.breaker_closed);
                tracing::info!("lido: circuit breaker closed: database reachable again");
            }
        }
        self.emit(Event::Breaker(t));
    }

    /// Puts a connection back (from a guard, a ping, a reset): to a waiter,
    /// idle, or closed when the pool is closed, shrunk, or above `core_size`.
    /// Its lease, if one was registered, ends under the same lock. The caller
    /// has set `last_used`/`last_checked`.
    pub fn put_back(self: &Arc<Self>, live: Live<M::Connection>) {
        let mut after = After::default();
        {
            let mut st = self.lock();
            st.leases.end(live.slot);
            self.return_locked(&mut st, live, &mut after);
        }
        self.finish(after);
    }

    /// `put_back`'s decision, under the lock: close if the pool is closed,
    /// shrunk or above `core_size` with nobody waiting, else hand it on.
    pub fn return_locked(
        &self,
        st: &mut State<M>,
        live: Live<M::Connection>,
        after: &mut After<M::Connection>,
    ) {
        if st.closed {
            self.close_locked(st, live, CloseReason::PoolClosed, after);
        } else if st.size > st.max_size {
            self.close_locked(st, live, CloseReason::Resize, after);
        } else if st.waiters.is_empty() && st.size > self.cfg.core() {
            self.close_locked(st, live, CloseReason::Overflow, after);
        } else {
            self.hand_off(st, live, after);
        }
    }

    /// Closes a connection that is not in the idle list (checked out or being
    /// pinged); its lease entry goes with it, under the same lock.
    pub fn discard(self: &Arc<Self>, live: Live<M::Connection>, reason: CloseReason) {
        let mut after = After::default();
        {
            let mut st = self.lock();
            self.close_locked(&mut st, live, reason, &mut after);
        }
        self.finish(after);
    }
}

impl<M: Manager> Drop for Shared<M> {
    fn drop(&mut self) {
        // The last handle is gone: let the sweeper see it and stop.
        self.sweep.notify_one();
    }
}

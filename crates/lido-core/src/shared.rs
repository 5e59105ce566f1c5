//! [`Shared`]: what every handle, guard and background task of one pool
//! shares — the manager, the settings, the locked [`State`], statistics, the
//! circuit breaker and the observer. Changing the state goes through
//! `commit` (a transition under the lock, then its deferred work).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use tokio::runtime::Handle;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::breaker::{Breaker, BreakerState, Transition};
use crate::config::Config;
use crate::live::Live;
use crate::manager::Manager;
use crate::observer::{Event, Observer};
use crate::state::State;
use crate::stats::{bump, Stats};

pub(crate) struct Shared<M: Manager> {
    pub manager: M,
    pub cfg: Config,
    state: Mutex<State<M>>,
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
    /// Set when the last handle is dropped or the pool closes: the periodic
    /// tasks (maintenance, adaptive sizing) stop at once, not at their next
    /// round, so a dropped pool leaves no timer in the runtime.
    pub done: watch::Sender<bool>,
    pub started: Instant,
    /// Milliseconds after `started` of the last maintenance run (liveness).
    pub heartbeat_ms: AtomicU64,
    next_id: AtomicU64,
}

impl<M: Manager> Shared<M> {
    pub fn new(
        manager: M,
        cfg: Config,
        observer: Option<Arc<dyn Observer>>,
        runtime: Handle,
    ) -> Self {
        Self {
            state: Mutex::new(State::new(&cfg)),
            breaker: Breaker::new(cfg.breaker.clone()),
            manager,
            cfg,
            stats: Stats::default(),
            observer,
            runtime,
            returned: Notify::new(),
            sweep: Arc::new(Notify::new()),
            handles: AtomicUsize::new(0),
            done: watch::Sender::new(false),
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
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let preempt = match self.cfg.lanes.preempt_after {
            Some(_) => self.manager.preempt_handle(&conn),
            None => None,
        };
        let mut live = crate::live::new(conn, id, now, expires);
        live.preempt = preempt;
        live
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
}

impl<M: Manager> Drop for Shared<M> {
    fn drop(&mut self) {
        // The last handle is gone: let the sweeper see it and stop.
        self.sweep.notify_one();
    }
}

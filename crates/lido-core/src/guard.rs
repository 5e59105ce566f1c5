//! [`Pooled`]: the RAII lease that derefs to the connection and goes back on drop.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::Arc;

use tokio::time::{Duration, Instant};

use crate::commit::{apply, discard, put_back};
use crate::live::Live;
use crate::manager::Manager;
use crate::observer::Event;
use crate::out::{Out, Work};
use crate::shared::Shared;
use crate::stats::CloseReason;

/// A connection leased from a [`Pool`](crate::Pool). Derefs to the connection;
/// dropping it returns the connection to the pool (or closes it when broken,
/// expired, or above the pool's size).
pub struct Pooled<M: Manager> {
    live: Option<Live<M::Connection>>,
    shared: Arc<Shared<M>>,
    acquired: Instant,
    location: &'static Location<'static>,
    /// Still being validated by `get()`: if dropped now, the checkout was cancelled.
    validating: bool,
    discard: bool,
}

impl<M: Manager> Pooled<M> {
    /// A lease being validated (`get()` registered it for leak detection
    /// while taking the connection).
    pub(crate) fn new(
        shared: Arc<Shared<M>>,
        live: Live<M::Connection>,
        location: &'static Location<'static>,
        now: Instant,
    ) -> Self {
        Self {
            live: Some(live),
            shared,
            acquired: now,
            location,
            validating: true,
            discard: false,
        }
    }

    pub(crate) fn live_mut(&mut self) -> &mut Live<M::Connection> {
        self.live.as_mut().expect("live until dropped")
    }

    /// Validation passed: the lease's hold time starts now.
    pub(crate) fn activate(&mut self, now: Instant) {
        self.validating = false;
        self.acquired = now;
    }

    /// Closes the connection inside the guard with `reason` (during validation).
    pub(crate) fn close(mut self, reason: CloseReason) {
        if let Some(live) = self.live.take() {
            discard(&self.shared, live, reason);
        }
    }

    fn live(&self) -> &Live<M::Connection> {
        self.live.as_ref().expect("live until dropped")
    }

    /// Takes the connection out of the pool for good. The pool forgets it and
    /// may open another in its place.
    pub fn detach(mut self) -> M::Connection {
        let live = self.live.take().expect("live until dropped");
        apply(&self.shared, |st, step| {
            st.detach(live.slot, live.lane, step)
        });
        self.shared.stats.count_close(CloseReason::Detached);
        self.shared.emit(Event::Closed {
            reason: CloseReason::Detached,
        });
        live.conn
    }

    /// Marks the connection as unfit for reuse: it is closed instead of returned.
    pub fn discard_on_drop(&mut self) {
        self.discard = true;
    }

    pub(crate) fn keep_on_drop(&mut self) {
        self.discard = false;
    }

    /// The pool's id of this connection (stable for its lifetime).
    pub fn id(&self) -> u64 {
        self.live().id
    }

    /// How long this connection has existed.
    pub fn age(&self) -> Duration {
        self.live().created.elapsed()
    }

    /// How long this lease has been held.
    pub fn held_for(&self) -> Duration {
        self.acquired.elapsed()
    }

    /// When this lease was taken.
    pub fn acquired_at(&self) -> Instant {
        self.acquired
    }

    /// The source location of the `get()` call that took this lease.
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    fn release(&mut self, mut live: Live<M::Connection>) {
        let shared = &self.shared;
        if shared.cfg.leak_threshold.is_some() {
            live.lease.end();
        }
        let now = Instant::now();
        let held = now.saturating_duration_since(self.acquired);
        if shared.cfg.statistics {
            shared.stats.hold_time.record(held);
        }
        shared.emit(Event::Released { held });
        let reason = if self.discard || shared.manager.has_broken(&mut live.conn) {
            Some(CloseReason::Broken)
        } else if shared.cfg.max_lease.is_some_and(|m| held > m) {
            Some(CloseReason::MaxLease)
        } else if live.expired(now) {
            Some(CloseReason::Lifetime)
        } else {
            None
        };
        if let Some(reason) = reason {
            discard(shared, live, reason);
        } else if shared.manager.needs_reset(&mut live.conn) {
            apply(shared, |st, step| st.end_lease(&mut live, step));
            spawn_reset(Arc::clone(shared), live);
        } else {
            live.last_used = now;
            put_back(shared, live);
        }
    }
}

/// Resets a connection on a background task, then returns or closes it.
fn spawn_reset<M: Manager>(shared: Arc<Shared<M>>, live: Live<M::Connection>) {
    let rt = shared.runtime.clone();
    let mut out = Out::new(shared, live, Work::Reset);
    rt.spawn(async move {
        let shared = Arc::clone(out.shared());
        let limit = shared.cfg.check_timeout;
        let Some(conn) = out.conn() else { return };
        let failed = match tokio::time::timeout(limit, shared.manager.reset(conn)).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "lido: reset of a returned connection failed; closing it");
                Some(CloseReason::FailedReset)
            }
            Err(_) => {
                tracing::warn!(?limit, "lido: reset of a returned connection timed out; closing it");
                Some(CloseReason::FailedReset)
            }
        };
        out.finish(failed);
    });
}

impl<M: Manager> Drop for Pooled<M> {
    fn drop(&mut self) {
        let Some(live) = self.live.take() else {
            return;
        };
        if self.validating {
            discard(&self.shared, live, CloseReason::Cancelled);
        } else {
            self.release(live);
        }
    }
}

impl<M: Manager> Deref for Pooled<M> {
    type Target = M::Connection;
    fn deref(&self) -> &M::Connection {
        &self.live().conn
    }
}

impl<M: Manager> DerefMut for Pooled<M> {
    fn deref_mut(&mut self) -> &mut M::Connection {
        &mut self.live_mut().conn
    }
}

impl<M: Manager> fmt::Debug for Pooled<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("id", &self.live.as_ref().map(|l| l.id))
            .field("held_for", &self.acquired.elapsed())
            .field("acquired_at", &format_args!("{}", self.location))
            .finish()
    }
}

//! [`After`]: what a state transition leaves to do once the pool's lock is
//! released (wake waiters, drop closed connections, start connects, record
//! breaker transitions). Transitions only fill it in; the caller runs it.

use std::task::Waker;

use crate::breaker::Transition;
use crate::stats::CloseReason;

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

    pub fn wake_all(self) {
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
    /// Connections that left the pool, to drop (and count) outside the lock.
    pub closed: Vec<(C, CloseReason)>,
    /// Connects reserved in `connecting`, to start (their `trial` flags).
    pub spawn: Vec<bool>,
    /// Circuit-breaker state changes, to record.
    pub transitions: Vec<Transition>,
    pub wake_sweeper: bool,
    /// A slot was freed without closing a connection (a failed connect, a
    /// detach): `close()` may be waiting for that.
    pub freed: bool,
}

impl<C> After<C> {
    /// Nothing to do (the common case: a plain return or checkout).
    pub fn is_empty(&self) -> bool {
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

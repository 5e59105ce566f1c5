//! The administrative and background transitions of [`State`]: closing the
//! pool, expiring waiters, resizing, reaping idle connections, connections
//! coming back from a reset or keepalive ping, `retain`, and the connects
//! that keep `min_idle`.

use std::collections::VecDeque;
use std::task::Waker;
use std::time::Duration;

use tokio::time::Instant;

use super::{State, Step};
use crate::error::Error;
use crate::live::{Delivery, Live};
use crate::manager::Manager;
use crate::stats::CloseReason;

/// When idle connections are due for reaping, for [`State::reap`].
#[derive(Clone, Copy)]
pub(crate) struct Reaping {
    pub now: Instant,
    pub idle_timeout: Option<Duration>,
    pub keepalive: Option<Duration>,
}

impl<M: Manager> State<M> {
    /// Close the pool: no new acquires, every waiter fails with
    /// [`Error::Closed`], idle connections close; leased ones close as they
    /// come back.
    pub fn close(&mut self, step: &mut Step<'_, M>) {
        self.closed = true;
        self.fail_waiters(|| Error::Closed, step);
        while let Some(live) = self.idle.pop_front() {
            self.close_conn(live, CloseReason::PoolClosed, step);
        }
    }

    /// Expire waiters: every waiter whose deadline is at or before `now` gets
    /// `TimedOut` (wakers into `wakers`). Returns the next deadline; with
    /// none, the sweeper parks until a waiter joins.
    pub fn expire_waiters(&mut self, now: Instant, wakers: &mut Vec<Waker>) -> Option<Instant> {
        let next = self.waiters.expire(now, || Delivery::TimedOut, wakers);
        self.sweeper_parked = next.is_none();
        next
    }

    /// Resize: a new `max_size`. Shrinking closes idle connections above it
    /// at once (leased ones as they come back); growing serves waiters.
    pub fn resize(&mut self, max_size: usize, step: &mut Step<'_, M>) {
        self.max_size = max_size;
        self.fit_cap(step);
    }

    /// Adaptive sizing's new target: like `resize`, under `max_size`.
    pub fn set_target(&mut self, target: usize, step: &mut Step<'_, M>) {
        self.target = target;
        self.fit_cap(step);
    }

    /// Connections the pool may have open or opening now: `max_size`, or
    /// adaptive sizing's target when lower.
    pub(super) fn cap(&self) -> usize {
        self.max_size.min(self.target)
    }

    /// Closes idle connections above the cap (leased ones close as they
    /// come back); serves waiters when there is room.
    fn fit_cap(&mut self, step: &mut Step<'_, M>) {
        while self.size > self.cap() {
            let Some(live) = self.idle.pop_front() else {
                break;
            };
            self.close_conn(live, CloseReason::Resize, step);
        }
        self.spawn_for_waiters(step);
    }

    /// Shrink: closes expired and idle-timed-out connections (never taking
    /// the idle count below `min_idle`) and takes out those due a keepalive
    /// ping, counted in `pinging` until they come back.
    pub fn reap(&mut self, r: Reaping, step: &mut Step<'_, M>) -> Vec<Live<M::Connection>> {
        let idle = std::mem::take(&mut self.idle);
        let mut pings = Vec::new();
        // Idle connections not (yet) closed: idle_timeout never takes the
        // pool's idle count below min_idle, however many are in use.
        let mut idle_left = idle.len();
        // Oldest-returned first, so the longest idle go first.
        for live in idle {
            let idle_for = r.now.saturating_duration_since(live.last_used);
            if live.expired(r.now) {
                idle_left -= 1;
                self.close_conn(live, CloseReason::Lifetime, step);
            } else if r.idle_timeout.is_some_and(|t| idle_for >= t)
                && idle_left > self.rules.min_idle
            {
                idle_left -= 1;
                self.close_conn(live, CloseReason::Idle, step);
            } else if r.keepalive.is_some_and(|k| live.unchecked_for(r.now) >= k) {
                self.pinging += 1;
                pings.push(live);
            } else {
                self.idle.push_back(live);
            }
        }
        pings
    }

    /// A connection out for a reset or a keepalive ping (`pinged`) comes
    /// back: closed with `failed`'s reason, else returned.
    pub fn come_back(
        &mut self,
        live: Live<M::Connection>,
        pinged: bool,
        failed: Option<CloseReason>,
        step: &mut Step<'_, M>,
    ) {
        if pinged {
            self.pinging -= 1;
        }
        match failed {
            Some(reason) => self.close_conn(live, reason, step),
            None => self.return_conn(live, step),
        }
    }

    /// Lends every idle connection to `retain`'s predicate; meanwhile they
    /// count as in use. They come back through [`State::retained`].
    pub fn lend_idle(&mut self) -> VecDeque<Live<M::Connection>> {
        std::mem::take(&mut self.idle)
    }

    /// `retain` is done: `rejected` close, `kept` go back.
    pub fn retained(
        &mut self,
        rejected: impl IntoIterator<Item = Live<M::Connection>>,
        kept: impl IntoIterator<Item = Live<M::Connection>>,
        step: &mut Step<'_, M>,
    ) {
        for live in rejected {
            self.close_conn(live, CloseReason::Retain, step);
        }
        for live in kept {
            self.return_conn(live, step);
        }
    }

    /// Starts connects to bring the pool up to `min_idle`.
    pub fn spawn_for_min_idle(&mut self, step: &mut Step<'_, M>) {
        let trials = self.reserve_for_min_idle(step);
        step.after.spawn.extend(trials);
    }

    /// Like `spawn_for_min_idle`, but returns the reserved connects (their
    /// `trial` flags) for the caller to run: `warm_up` awaits them.
    pub fn reserve_for_min_idle(&mut self, step: &mut Step<'_, M>) -> Vec<bool> {
        let want = self.min_idle_missing();
        self.reserve(want, step)
    }

    /// Idle connections short of `min_idle`, counting connects and keepalive
    /// pings in flight (a pinged connection comes back idle).
    fn min_idle_missing(&self) -> usize {
        let have = self.idle.len() + self.connecting + self.pinging;
        self.rules.min_idle.saturating_sub(have)
    }
}

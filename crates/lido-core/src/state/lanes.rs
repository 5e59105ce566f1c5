//! The pool state's lane rules: who may take a connection (limits, and
//! borrowing when lending is on), leases held per lane, and handing idle
//! connections to the highest lane that may take one.

use crate::config::ReuseOrder;
use crate::live::{Delivery, Live};
use crate::manager::Manager;
use crate::state::{State, Step};
use crate::waiters::Priority;

impl<M: Manager> State<M> {
    /// Whether `lane` may take one more connection within the limits.
    pub(super) fn may_take(&self, lane: Priority) -> bool {
        if !self.rules.lanes_on {
            // No reserve, no share: every lane rule reduces to this.
            return self.held.total() < self.cap();
        }
        self.held.may_take(lane, &self.rules.lanes, self.cap())
    }

    /// Whether `lane` may take one more: within the limits, or borrowed
    /// from a higher lane's reserve when lending is on.
    pub(super) fn admits(&self, lane: Priority) -> bool {
        if !self.rules.lanes_on {
            return self.held.total() < self.cap();
        }
        self.held.admits(lane, &self.rules.lanes, self.cap())
    }

    /// The highest lane, down to `lowest`, with a waiter that may be served now.
    pub(super) fn servable_from(&self, lowest: Priority) -> Option<Priority> {
        if !self.rules.lanes_on {
            // Without limits every lane is admitted alike: check once.
            if !self.admits(Priority::Critical) {
                return None;
            }
            return Priority::ALL
                .into_iter()
                .take_while(|&p| p <= lowest)
                .find(|&p| self.waiters.lane_len(p) > 0);
        }
        Priority::ALL
            .into_iter()
            .take_while(|&p| p <= lowest)
            .find(|&p| self.waiters.lane_len(p) > 0 && self.admits(p))
    }

    /// `live` is leased to `lane` (lent, when only lending admits it).
    pub(super) fn hold(&mut self, live: &mut Live<M::Connection>, lane: Priority) {
        if !self.may_take(lane) {
            self.lend(live, lane);
        }
        live.lane = Some(lane);
        self.held.add(lane);
    }

    /// The lease in `slot` no longer counts against `lane`.
    pub(super) fn release_lane(&mut self, slot: usize, lane: Priority) {
        self.held.remove(lane);
        self.unlend(slot);
    }

    /// `live`'s lease (if any) no longer counts against its lane; with lane
    /// limits on, a waiter that may now be served gets an idle connection.
    pub(super) fn unhold(&mut self, live: &mut Live<M::Connection>, step: &mut Step<'_, M>) {
        if let Some(lane) = live.lane.take() {
            self.release_lane(live.slot, lane);
            self.serve_idle(step);
        }
    }

    /// With lane limits on, idle connections can wait while a capped lane's
    /// callers wait: once a lane may take again, hand them over.
    pub(super) fn serve_idle(&mut self, step: &mut Step<'_, M>) {
        if !self.rules.lanes_on {
            return;
        }
        while let Some(lane) = self.servable_from(Priority::Background) {
            let live = match self.rules.reuse_order {
                ReuseOrder::Lifo => self.idle.pop_back(),
                ReuseOrder::Fifo => self.idle.pop_front(),
            };
            let Some(live) = live else { break };
            self.deliver_to(lane, live, step);
        }
    }

    /// Hands `live` to the oldest waiter of `lane` (which has one).
    pub(super) fn deliver_to(
        &mut self,
        lane: Priority,
        mut live: Live<M::Connection>,
        step: &mut Step<'_, M>,
    ) {
        self.hold(&mut live, lane);
        match self.waiters.deliver_to(lane, Delivery::Conn(live)) {
            Ok(w) => step.after.wakers.extend(w),
            Err(Delivery::Conn(mut live)) => {
                live.lane = None;
                self.release_lane(live.slot, lane);
                self.idle.push_back(live);
            }
            Err(Delivery::Failed(_) | Delivery::TimedOut) => {}
        }
    }

    /// Waiters a new connection could serve: all of them, or with lane
    /// limits on, as many as their lanes may take (less idle connections
    /// already there for them).
    pub(super) fn servable_waiters(&self) -> usize {
        if !self.rules.lanes_on {
            return self.waiters.len();
        }
        let mut held = self.held;
        let mut n: usize = 0;
        for lane in Priority::ALL {
            for _ in 0..self.waiters.lane_len(lane) {
                if !held.admits(lane, &self.rules.lanes, self.cap()) {
                    break;
                }
                held.add(lane);
                n += 1;
            }
        }
        n.saturating_sub(self.idle.len())
    }
}

//! Lane lending's preemption ([`LaneLimits::lend`](crate::LaneLimits::lend)):
//! the leases lent to lower lanes on a higher lane's reserve, and the
//! sweeper's round that picks which lent call to stop when a higher-lane
//! waiter has waited past the budget.

use tokio::time::Instant;

use crate::live::Live;
use crate::manager::{Manager, PreemptHandle};
use crate::state::State;
use crate::waiters::Priority;

/// A lease lent on a higher lane's reserve.
pub(crate) struct Lent {
    slot: usize,
    lane: Priority,
    handle: Option<PreemptHandle>,
    /// Its call was asked to stop; the lease has not ended yet.
    preempted: bool,
}

/// What a preemption round decided.
#[derive(Default)]
pub(crate) struct Preemption {
    /// Handles to call once the lock is released, with the lane each
    /// lent lease was in.
    pub stop: Vec<(PreemptHandle, Priority)>,
    /// When to look again (a waiter's budget runs out then).
    pub next: Option<Instant>,
}

impl<M: Manager> State<M> {
    /// `live`'s lease in `lane` is lent on a higher lane's reserve.
    pub(super) fn lend(&mut self, live: &Live<M::Connection>, lane: Priority) {
        self.lent.push(Lent {
            slot: live.slot,
            lane,
            handle: live.preempt.clone(),
            preempted: false,
        });
    }

    /// The lease in `slot` ended (or was never lent).
    pub(super) fn unlend(&mut self, slot: usize) {
        if let Some(i) = self.lent.iter().position(|l| l.slot == slot) {
            self.lent.swap_remove(i);
        }
    }

    /// Leases lent now (for the model check).
    #[cfg(test)]
    pub fn lent_len(&self) -> usize {
        self.lent.len()
    }

    /// Whether a waiter joining `lane` may need a lent call stopped (the
    /// sweeper then wakes to time its budget).
    pub(super) fn may_preempt_for(&self, lane: Priority) -> bool {
        self.rules.lanes.preempt_after.is_some() && self.lent.iter().any(|l| l.lane > lane)
    }

    /// The preemption round: for each lane, highest first, the waiters that
    /// joined at least the budget ago and that no connect in flight will
    /// serve each get one lent call of a lower lane stopped (the lowest
    /// lane's first), less the stops already under way.
    pub fn preempt_due(&mut self, now: Instant) -> Preemption {
        let mut out = Preemption::default();
        let Some(budget) = self.rules.lanes.preempt_after else {
            return out;
        };
        if self.lent.is_empty() {
            return out;
        }
        if self.size + self.connecting < self.cap() {
            // A connect can serve the next waiter: look again later.
            out.next = Some(now + budget);
            return out;
        }
        let cutoff = now.checked_sub(budget).unwrap_or(now);
        let mut under_way = self.lent.iter().filter(|l| l.preempted).count();
        for lane in Priority::ALL {
            let (due, oldest) = self.waiters.joined_by(lane, cutoff);
            if due == 0 {
                if let Some(joined) = oldest {
                    let at = joined + budget;
                    out.next = Some(out.next.map_or(at, |n| n.min(at)));
                }
                continue;
            }
            let covered = under_way.min(due);
            under_way -= covered;
            for _ in covered..due {
                let Some(victim) = self.victim_below(lane) else {
                    break;
                };
                victim.preempted = true;
                if let Some(h) = victim.handle.clone() {
                    out.stop.push((h, victim.lane));
                }
            }
        }
        out
    }

    /// The lent lease to stop for a waiter of `lane`: one of the lowest lane
    /// below it that can be stopped and is not stopping already.
    fn victim_below(&mut self, lane: Priority) -> Option<&mut Lent> {
        self.lent
            .iter_mut()
            .filter(|l| l.lane > lane && !l.preempted && l.handle.is_some())
            .max_by_key(|l| l.lane)
    }
}

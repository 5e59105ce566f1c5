//! The gate's state: the tenants waiting, in weighted deficit round-robin
//! order, the holders, and the reclaims asked of them. Runs under the
//! gate's lock.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::tenants::slot::Slot;

pub(crate) struct Waiter {
    id: u64,
    tx: oneshot::Sender<()>,
}

/// A waiting tenant's queue in the round-robin ring.
pub(crate) struct Queue {
    slot: Arc<Slot>,
    waiters: VecDeque<Waiter>,
    deficit: u32,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) held: usize,
    pub(crate) waiting: usize,
    next_id: u64,
    /// Tenants with waiting connects, in round-robin order (front: current).
    ring: VecDeque<Queue>,
    /// Tenants holding permits (candidates to give one back).
    holders: Vec<Arc<Slot>>,
    /// Tenants asked to give connections back.
    pub(crate) shedding: Vec<Arc<Slot>>,
    /// When a waiter next asks them for an idle connection.
    pub(crate) next_idle_round: Option<tokio::time::Instant>,
}

impl State {
    pub(crate) fn take(&mut self, slot: &Arc<Slot>) {
        self.held += 1;
        if slot.held.fetch_add(1, Ordering::AcqRel) == 0 {
            self.holders.push(Arc::clone(slot));
        }
    }

    pub(crate) fn put(&mut self, slot: &Arc<Slot>) {
        self.held = self.held.saturating_sub(1);
        if slot.held.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.holders.retain(|s| !Arc::ptr_eq(s, slot));
            // Nothing left to give back.
            slot.shed.store(0, Ordering::Release);
        }
    }

    pub(crate) fn enqueue(&mut self, slot: &Arc<Slot>, tx: oneshot::Sender<()>) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.waiting += 1;
        slot.queued.fetch_add(1, Ordering::SeqCst);
        slot.waiting.fetch_add(1, Ordering::SeqCst);
        let waiter = Waiter { id, tx };
        match self.ring.iter_mut().find(|q| Arc::ptr_eq(&q.slot, slot)) {
            Some(q) => q.waiters.push_back(waiter),
            None => self.ring.push_back(Queue {
                slot: Arc::clone(slot),
                waiters: VecDeque::from([waiter]),
                deficit: 0,
            }),
        }
        id
    }

    /// Removes waiter `id`; `false` when it was already served.
    pub(crate) fn dequeue(&mut self, slot: &Arc<Slot>, id: u64) -> bool {
        let Some(qi) = self.ring.iter().position(|q| Arc::ptr_eq(&q.slot, slot)) else {
            return false;
        };
        let q = &mut self.ring[qi];
        let Some(wi) = q.waiters.iter().position(|w| w.id == id) else {
            return false;
        };
        q.waiters.remove(wi);
        if q.waiters.is_empty() {
            self.ring.remove(qi);
        }
        self.waiting -= 1;
        slot.waiting.fetch_sub(1, Ordering::Relaxed);
        true
    }

    /// Grants free permits: a tenant under its minimum first, else the
    /// round robin's current tenant, `weight` grants per turn.
    pub(crate) fn dispatch(&mut self, cap: usize) {
        while self.held < cap && !self.ring.is_empty() {
            let qi = self
                .ring
                .iter()
                .position(|q| q.slot.held() < q.slot.min)
                .unwrap_or(0);
            let under_min = qi != 0 || self.ring[0].slot.held() < self.ring[0].slot.min;
            let q = &mut self.ring[qi];
            let Some(w) = q.waiters.pop_front() else {
                self.ring.remove(qi);
                continue;
            };
            let slot = Arc::clone(&q.slot);
            if !under_min {
                if q.deficit == 0 {
                    q.deficit = slot.weight;
                }
                q.deficit -= 1;
            }
            let (empty, turn_over) = (q.waiters.is_empty(), q.deficit == 0);
            if empty {
                self.ring.remove(qi);
            } else if turn_over && qi == 0 {
                self.ring.rotate_left(1);
            }
            self.waiting -= 1;
            slot.waiting.fetch_sub(1, Ordering::Relaxed);
            self.take(&slot);
            if w.tx.send(()).is_err() {
                self.put(&slot); // unreachable: a waiter leaves the queue before its receiver goes
            }
        }
    }

    fn pending_reclaims(&self) -> usize {
        self.shedding
            .iter()
            .map(|s| s.shed.load(Ordering::Acquire))
            .sum()
    }

    /// Drops reclaim requests beyond the connects still waiting.
    pub(crate) fn trim_reclaims(&mut self) {
        let mut excess = self.pending_reclaims().saturating_sub(self.waiting);
        for s in &self.shedding {
            while excess > 0 && s.take_shed() {
                excess -= 1;
            }
        }
        self.shedding.retain(|s| s.shed.load(Ordering::Acquire) > 0);
    }

    /// While the cap is reached and more connects wait than connections
    /// were asked back, asks the tenant most over its share for one more.
    pub(crate) fn plan_reclaims(&mut self, cap: usize) -> Vec<Arc<Slot>> {
        let mut out = Vec::new();
        if self.held < cap {
            return out;
        }
        let mut pending = self.pending_reclaims();
        let mut planned: Vec<(usize, usize)> = Vec::new(); // (ring index, extra)
        while pending < self.waiting {
            let Some((qi, extra)) = self.neediest(&planned) else {
                break;
            };
            let w = Arc::clone(&self.ring[qi].slot);
            let Some(v) = self.victim(&w, w.held() + extra) else {
                break;
            };
            v.shed.fetch_add(1, Ordering::AcqRel);
            if !self.shedding.iter().any(|s| Arc::ptr_eq(s, &v)) {
                self.shedding.push(Arc::clone(&v));
            }
            match planned.iter_mut().find(|(i, _)| *i == qi) {
                Some(p) => p.1 += 1,
                None => planned.push((qi, 1)),
            }
            pending += 1;
            out.push(v);
        }
        out
    }

    /// The waiting tenant with the smallest share (under its minimum
    /// first), counting reclaims planned for it in this round; each
    /// waiting tenant at most as many as it has waiters.
    fn neediest(&self, planned: &[(usize, usize)]) -> Option<(usize, usize)> {
        let extra = |i: usize| planned.iter().find(|p| p.0 == i).map_or(0, |p| p.1);
        let rank = |(i, q): (usize, &Queue)| {
            let have = q.slot.held() + extra(i);
            let under = have < q.slot.min;
            // Smaller is needier: under-minimum first, then have/weight.
            (
                !under,
                have as u64 * 1_000_000 / u64::from(q.slot.weight),
                i,
            )
        };
        self.ring
            .iter()
            .enumerate()
            .filter(|(i, q)| extra(*i) < q.waiters.len())
            .min_by_key(|x| rank(*x))
            .map(|(i, _)| (i, extra(i)))
    }

    /// The holder most over its share that may give one back to `w`
    /// (holding `have`): above its own minimum, and above `w`'s share
    /// after the grant, or holding any while `w` holds none or is under
    /// its minimum.
    fn victim(&self, w: &Arc<Slot>, have: usize) -> Option<Arc<Slot>> {
        let starving = have == 0 || have < w.min;
        self.holders
            .iter()
            .filter(|v| !Arc::ptr_eq(v, w))
            .filter(|v| {
                let kept = v.kept() as u64;
                let over_min = kept > v.min as u64;
                let over_share =
                    kept * u64::from(w.weight) > (have as u64 + 1) * u64::from(v.weight);
                over_min && (starving && kept > 0 || over_share)
            })
            .max_by(|a, b| {
                let ka = a.kept() as u64 * u64::from(b.weight);
                let kb = b.kept() as u64 * u64::from(a.weight);
                ka.cmp(&kb)
            })
            .cloned()
    }
}

//! The wait queue: strict first-come-first-served lanes, one per [`Priority`].
//!
//! Waiters live in a slab (no allocation per wait once warm). A returned
//! connection is stored straight into the oldest waiter's slot, so nobody can
//! barge past the queue, and the waiter takes it on its next poll.
//!
//! Every waiter carries its deadline. All waiters of a pool wait for the same
//! `acquire_timeout`, so within a lane deadlines never decrease from front to
//! back: [`WaitQueue::expire`] only ever looks at the three lane fronts, and
//! one timer per pool (the sweeper) replaces a timer per waiter.

use std::collections::VecDeque;
use std::task::Waker;

use slab::Slab;
use tokio::time::Instant;

/// Who is served first when several callers wait.
///
/// Lanes are served strictly in order: every `Critical` waiter before any
/// `Normal` one, every `Normal` one before any `Background` one; within a
/// lane, first come, first served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Priority {
    /// Latency-critical traffic (user-facing requests).
    Critical = 0,
    /// Ordinary traffic (the default).
    #[default]
    Normal = 1,
    /// Reports, batch jobs, anything that may wait.
    Background = 2,
}

impl Priority {
    /// Every priority, highest first.
    pub const ALL: [Priority; 3] = [Self::Critical, Self::Normal, Self::Background];
}

struct Slot<T> {
    waker: Option<Waker>,
    item: Option<T>,
    priority: Priority,
    deadline: Instant,
    /// When it joined (what lane lending's preemption budget counts from).
    since: Instant,
}

/// Waiters in FIFO lanes; `T` is what gets delivered (a connection or an error).
pub(crate) struct WaitQueue<T> {
    slots: Slab<Slot<T>>,
    lanes: [VecDeque<usize>; 3],
}

impl<T> Default for WaitQueue<T> {
    fn default() -> Self {
        Self {
            slots: Slab::new(),
            lanes: Default::default(),
        }
    }
}

impl<T> WaitQueue<T> {
    /// Waiters not yet served.
    pub fn len(&self) -> usize {
        self.lanes.iter().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.lanes.iter().all(VecDeque::is_empty)
    }

    /// Whether `key` still waits in its lane (nothing delivered to it yet).
    #[cfg(test)]
    pub fn is_queued(&self, key: usize) -> bool {
        self.lanes.iter().any(|lane| lane.contains(&key))
    }

    /// Joins the back of `priority`'s lane, to be woken through `waker`;
    /// returns the waiter's key. `deadline` must not be earlier than that of
    /// any waiter already in the lane.
    pub fn push(
        &mut self,
        priority: Priority,
        deadline: Instant,
        since: Instant,
        waker: &Waker,
    ) -> usize {
        let key = self.insert(priority, deadline, since, waker);
        self.lanes[priority as usize].push_back(key);
        key
    }

    /// Joins the front of `priority`'s lane: for a caller served once already
    /// whose connection failed validation, who keeps its turn. Its deadline is
    /// from before everyone now queued behind it, so the order holds.
    pub fn push_front(
        &mut self,
        priority: Priority,
        deadline: Instant,
        since: Instant,
        waker: &Waker,
    ) -> usize {
        let key = self.insert(priority, deadline, since, waker);
        self.lanes[priority as usize].push_front(key);
        key
    }

    fn insert(
        &mut self,
        priority: Priority,
        deadline: Instant,
        since: Instant,
        waker: &Waker,
    ) -> usize {
        // `since` comes from the caller: no clock read under the pool's lock.
        self.slots.insert(Slot {
            waker: Some(waker.clone()),
            item: None,
            priority,
            deadline,
            since,
        })
    }

    /// How many of `lane`'s waiters joined at or before `cutoff`, and when
    /// the oldest one still queued joined.
    pub fn joined_by(&self, lane: Priority, cutoff: Instant) -> (usize, Option<Instant>) {
        let queue = &self.lanes[lane as usize];
        let oldest = queue.front().map(|&k| self.slots[k].since);
        let due = queue
            .iter()
            .take_while(|&&k| self.slots[k].since <= cutoff)
            .count();
        (due, oldest)
    }

    /// Waiters not yet served in `lane`.
    pub fn lane_len(&self, lane: Priority) -> usize {
        self.lanes[lane as usize].len()
    }

    /// Hands `item` to the oldest waiter of `lane`. Returns the waker to
    /// wake once the lock is released, or the item back if nobody waits there.
    pub fn deliver_to(&mut self, lane: Priority, item: T) -> Result<Option<Waker>, T> {
        let Some(key) = self.lanes[lane as usize].pop_front() else {
            return Err(item);
        };
        let slot = &mut self.slots[key];
        slot.item = Some(item);
        Ok(slot.waker.take())
    }

    /// Hands `item` to the oldest waiter of the highest lane. Returns the
    /// waker to wake once the lock is released, or the item back if nobody waits.
    pub fn deliver(&mut self, item: T) -> Result<Option<Waker>, T> {
        let Some(key) = self.lanes.iter_mut().find_map(VecDeque::pop_front) else {
            return Err(item);
        };
        let slot = &mut self.slots[key];
        slot.item = Some(item);
        Ok(slot.waker.take())
    }

    /// Takes the delivered item, or stores the waker and returns `None`.
    pub fn poll_take(&mut self, key: usize, waker: &Waker) -> Option<T> {
        let slot = self.slots.get_mut(key)?;
        if slot.item.is_some() {
            return self.slots.remove(key).item;
        }
        match &mut slot.waker {
            Some(w) if w.will_wake(waker) => {}
            w => *w = Some(waker.clone()),
        }
        None
    }

    /// Removes a waiter that gave up; returns what was delivered to it, if anything,
    /// so the caller can pass it on.
    pub fn cancel(&mut self, key: usize) -> Option<T> {
        let slot = self.slots.try_remove(key)?;
        if slot.item.is_none() {
            let lane = &mut self.lanes[slot.priority as usize];
            if let Some(pos) = lane.iter().position(|k| *k == key) {
                lane.remove(pos);
            }
        }
        slot.item
    }

    /// Delivers `make()` to every waiter whose deadline is at or before `now`
    /// (their wakers go into `wakers`); returns the earliest deadline still
    /// queued, if any.
    pub fn expire(
        &mut self,
        now: Instant,
        mut make: impl FnMut() -> T,
        wakers: &mut Vec<Waker>,
    ) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for lane in &mut self.lanes {
            while let Some(&key) = lane.front() {
                let slot = &mut self.slots[key];
                if slot.deadline > now {
                    next = Some(next.map_or(slot.deadline, |n| n.min(slot.deadline)));
                    break;
                }
                lane.pop_front();
                slot.item = Some(make());
                wakers.extend(slot.waker.take());
            }
        }
        next
    }

    /// Delivers `make()` to every waiter (used to fail them all); returns their wakers.
    pub fn deliver_all(&mut self, mut make: impl FnMut() -> T) -> Vec<Waker> {
        let mut wakers = Vec::new();
        while let Ok(w) = self.deliver(make()) {
            wakers.extend(w);
        }
        wakers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn at(ms: u64) -> Instant {
        base() + std::time::Duration::from_millis(ms)
    }

    fn base() -> Instant {
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *BASE.get_or_init(Instant::now)
    }

    #[test]
    fn fifo_within_lane_and_priority_across_lanes() {
        let mut q = WaitQueue::default();
        let a = q.push(Priority::Normal, at(1), at(0), Waker::noop());
        let b = q.push(Priority::Background, at(2), at(0), Waker::noop());
        let c = q.push(Priority::Normal, at(3), at(0), Waker::noop());
        let d = q.push(Priority::Critical, at(4), at(0), Waker::noop());
        for i in 0..4 {
            assert!(q.deliver(i).is_ok());
        }
        let w = Waker::noop();
        assert_eq!(q.poll_take(d, w), Some(0));
        assert_eq!(q.poll_take(a, w), Some(1));
        assert_eq!(q.poll_take(c, w), Some(2));
        assert_eq!(q.poll_take(b, w), Some(3));
        assert!(matches!(q.deliver(9), Err(9)));
    }

    #[test]
    fn cancel_removes_waiter_and_returns_delivered_item() {
        let mut q = WaitQueue::default();
        let a = q.push(Priority::Normal, at(1), at(0), Waker::noop());
        let b = q.push(Priority::Normal, at(2), at(0), Waker::noop());
        assert_eq!(q.cancel(a), None);
        assert_eq!(q.len(), 1);
        q.deliver(7).ok();
        assert_eq!(q.cancel(b), Some(7));
        assert!(q.is_empty());
        assert_eq!(q.slots.len(), 0);
    }

    #[test]
    fn expire_fails_only_overdue_fronts_and_reports_the_next_deadline() {
        let mut q = WaitQueue::default();
        let a = q.push(Priority::Normal, at(10), at(0), Waker::noop());
        let b = q.push(Priority::Critical, at(20), at(0), Waker::noop());
        let c = q.push(Priority::Normal, at(30), at(0), Waker::noop());
        let mut wakers = Vec::new();
        assert_eq!(q.expire(at(5), || -1, &mut wakers), Some(at(10)));
        assert_eq!(q.len(), 3);
        assert_eq!(q.expire(at(20), || -1, &mut wakers), Some(at(30)));
        let w = Waker::noop();
        assert_eq!(q.poll_take(a, w), Some(-1));
        assert_eq!(q.poll_take(b, w), Some(-1));
        assert_eq!(q.poll_take(c, w), None);
        assert_eq!(q.len(), 1);
        // A delivered waiter is out of its lane: expiry never touches it.
        q.deliver(7).ok();
        assert_eq!(q.expire(at(99), || -1, &mut wakers), None);
        assert_eq!(q.poll_take(c, w), Some(7));
        assert!(q.is_empty());
    }
}

//! A tenant's account at the gate, and the tenant's side of reclaiming.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Weak;

/// A tenant's side of reclaiming: close one idle connection now.
pub(crate) trait Reclaim: Send + Sync {
    /// Closes one idle connection if the tenant has one and a reclaim is
    /// still asked of it (see [`Slot::take_shed`]); whether it did.
    fn close_idle(&self) -> bool;
    /// The tenant's last connection closed: its pool may go.
    fn emptied(&self);
}

/// One tenant's account at the gate.
pub(crate) struct Slot {
    pub(crate) weight: u32,
    pub(crate) min: usize,
    /// Permits (server connections, open or opening) held.
    pub(crate) held: AtomicUsize,
    /// Connections asked back from this tenant and not yet closed.
    pub(crate) shed: AtomicUsize,
    /// Connects of this tenant waiting at the gate.
    pub(crate) waiting: AtomicUsize,
    pub(crate) owner: Weak<dyn Reclaim>,
    /// Connects of this tenant that have queued at the gate, ever (counted
    /// when they join the queue, before `waiting`).
    pub(crate) queued: AtomicUsize,
}

impl Slot {
    pub(crate) fn new(weight: u32, min: usize, owner: Weak<dyn Reclaim>) -> Self {
        Slot {
            weight: weight.max(1),
            min,
            held: AtomicUsize::new(0),
            shed: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            owner,
            queued: AtomicUsize::new(0),
        }
    }

    /// Permits held now.
    pub(crate) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Connects waiting at the gate now.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// A mark to pass to [`Slot::queued_since`] later.
    pub(crate) fn queue_mark(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Whether a connect of this tenant waits at the gate now, or joined
    /// its queue after `mark` was taken. Both counts move under the gate's
    /// lock and `queued` never goes back, so a connect that queued and left
    /// meanwhile (timed out, or granted) is still seen, however the threads
    /// interleave.
    pub(crate) fn queued_since(&self, mark: usize) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0 || self.queued.load(Ordering::SeqCst) != mark
    }

    /// Consumes one reclaim request: `true` when one of this tenant's
    /// connections should close now.
    pub(crate) fn take_shed(&self) -> bool {
        self.shed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Held less what is asked back: what this tenant keeps.
    pub(crate) fn kept(&self) -> usize {
        self.held()
            .saturating_sub(self.shed.load(Ordering::Acquire))
    }
}

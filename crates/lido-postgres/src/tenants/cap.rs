//! The global cap: a gate every tenant pool's connect goes through. A
//! permit is one server connection; the connection keeps it until it is
//! dropped. When the cap is reached, waiting connects are served by
//! weighted deficit round robin over the tenants waiting (a tenant under
//! its guaranteed minimum first), and the gate asks the tenant most over
//! its share to give one back: an idle connection at once, else one it
//! returns after `min_hold` (work-conserving: a waiter waits about one
//! connect time, not another tenant's idle timeout).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::conn::pgconn::GatePermit;
use crate::tenants::drr::State;
use crate::tenants::slot::Slot;

/// Gate counters (monotonic).
#[derive(Default)]
pub(crate) struct GateCounters {
    pub(crate) granted: AtomicU64,
    pub(crate) waited: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) reclaims: AtomicU64,
    pub(crate) wait_nanos: AtomicU64,
}

/// The global cap's gate.
pub(crate) struct Gate {
    cap: usize,
    min_hold: Duration,
    state: Mutex<State>,
    pub(crate) counters: GateCounters,
}

/// One server connection's permit: released when dropped.
pub(crate) struct Permit {
    gate: Arc<Gate>,
    slot: Arc<Slot>,
    /// Checkouts and returns of its connection so far.
    checks: AtomicU32,
    /// Its connection's first checkout.
    first_use: OnceLock<Instant>,
}

/// A connection asked back closes at a later return or checkout, but
/// never at its first checkout (every connection serves one lease) nor
/// before `min_hold` has passed since that checkout: tenants taking turns
/// at the cap get work done for each connect. One that goes idle instead
/// is taken by the waiters' periodic idle reclaim (see `Gate::wait_for`).
impl GatePermit for Permit {
    fn shed(&self) -> bool {
        let first_use = *self.first_use.get_or_init(Instant::now);
        let first = self.checks.fetch_add(1, Ordering::Relaxed) == 0;
        if first || self.slot.shed.load(Ordering::Acquire) == 0 {
            return false;
        }
        if first_use.elapsed() < self.gate.min_hold {
            return false;
        }
        let shed = self.slot.take_shed();
        if shed {
            self.gate.reclaimed();
        }
        shed
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.release(&self.slot);
    }
}

/// No permit within the wait limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CapTimeout {
    pub(crate) cap: usize,
    pub(crate) waited: Duration,
}

impl Gate {
    pub(crate) fn new(cap: usize, min_hold: Duration) -> Arc<Self> {
        Arc::new(Gate {
            cap,
            min_hold,
            state: Mutex::new(State::default()),
            counters: GateCounters::default(),
        })
    }

    /// The cap.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Permits held and connects waiting, now.
    pub(crate) fn load(&self) -> (usize, usize) {
        let st = self.state.lock();
        (st.held, st.waiting)
    }

    /// Waits up to `limit` for a permit for `slot`'s tenant.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        limit: Duration,
    ) -> Result<Permit, CapTimeout> {
        let started = Instant::now();
        let (rx, id, victims) = {
            let mut st = self.state.lock();
            if st.held < self.cap && st.waiting == 0 {
                st.take(slot);
                drop(st);
                self.counters.granted.fetch_add(1, Ordering::Relaxed);
                return Ok(self.permit(slot));
            }
            let (tx, rx) = oneshot::channel();
            let id = st.enqueue(slot, tx);
            let victims = st.plan_reclaims(self.cap);
            (rx, id, victims)
        };
        self.counters.waited.fetch_add(1, Ordering::Relaxed);
        self.reclaim_idle(victims);
        let mut wait = Waiting {
            gate: self,
            slot,
            id,
            rx: Some(rx),
        };
        let granted = match wait.rx.as_mut() {
            Some(rx) => self.wait_for(rx, started + limit).await,
            None => false,
        };
        let granted = if granted {
            wait.rx = None;
            true
        } else {
            wait.cancel()
        };
        let waited = started.elapsed();
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.counters.wait_nanos.fetch_add(nanos, Ordering::Relaxed);
        if granted {
            self.counters.granted.fetch_add(1, Ordering::Relaxed);
            Ok(self.permit(slot))
        } else {
            self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
            Err(CapTimeout {
                cap: self.cap,
                waited,
            })
        }
    }

    /// Waits for the grant until `deadline`. Meanwhile, every `min_hold / 2`
    /// (10 ms to 250 ms) the tenants asked for a connection are asked
    /// again for an idle one: a connection asked back may go idle without
    /// being checked again (its tenant stopped, or it was still opening).
    async fn wait_for(&self, rx: &mut oneshot::Receiver<()>, deadline: Instant) -> bool {
        let every =
            (self.min_hold / 2).clamp(Duration::from_millis(10), Duration::from_millis(250));
        loop {
            let next = (Instant::now() + every).min(deadline);
            tokio::select! {
                granted = &mut *rx => return granted.is_ok(),
                () = tokio::time::sleep_until(next) => {}
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // One waiter a round asks, however many wait.
            let asked = {
                let mut st = self.state.lock();
                if st.next_idle_round.is_some_and(|t| now < t) {
                    continue;
                }
                st.next_idle_round = Some(now + every);
                st.shedding.clone()
            };
            self.reclaim_idle(asked);
        }
    }

    fn permit(self: &Arc<Self>, slot: &Arc<Slot>) -> Permit {
        Permit {
            gate: Arc::clone(self),
            slot: Arc::clone(slot),
            checks: AtomicU32::new(0),
            first_use: OnceLock::new(),
        }
    }

    /// A permit came back: serve the waiters, then drop reclaim requests
    /// nobody needs any more.
    fn release(&self, slot: &Arc<Slot>) {
        let victims = {
            let mut st = self.state.lock();
            st.put(slot);
            st.dispatch(self.cap);
            st.trim_reclaims();
            st.plan_reclaims(self.cap)
        };
        self.reclaim_idle(victims);
        if slot.held() == 0 {
            if let Some(owner) = slot.owner.upgrade() {
                owner.emptied();
            }
        }
    }

    /// Asks each victim to close an idle connection now (outside the lock).
    fn reclaim_idle(&self, victims: Vec<Arc<Slot>>) {
        for v in victims {
            if v.owner.upgrade().is_some_and(|o| o.close_idle()) {
                self.reclaimed();
            }
        }
    }

    /// Counts a reclaim carried out (a connection closed on request).
    pub(crate) fn reclaimed(&self) {
        self.counters.reclaims.fetch_add(1, Ordering::Relaxed);
    }
}

/// A connect waiting for its permit; dropped unserved, it leaves the queue
/// (and gives back a permit granted in the meantime).
struct Waiting<'a> {
    gate: &'a Arc<Gate>,
    slot: &'a Arc<Slot>,
    id: u64,
    rx: Option<oneshot::Receiver<()>>,
}

impl Waiting<'_> {
    /// Leaves the queue; `true` when a permit was granted meanwhile (kept).
    fn cancel(&mut self) -> bool {
        let Some(mut rx) = self.rx.take() else {
            return false;
        };
        let mut st = self.gate.state.lock();
        if st.dequeue(self.slot, self.id) {
            st.trim_reclaims();
            return false;
        }
        rx.try_recv().is_ok()
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.rx.is_some() && self.cancel() {
            self.gate.release(self.slot);
        }
    }
}

#[cfg(test)]
#[path = "cap_tests.rs"]
mod tests;

//! The claim on a queued job, shared by its caller and the thread that runs
//! it (the writer lane's and the reader threads' queues): whichever comes
//! first wins. The caller withdraws the job when it stops waiting (its
//! [`Ticket`] is dropped, or cancelled on a timeout); the thread runs the job
//! only if it can still [`start`](Claim::start) it.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const CANCELLED: u8 = 2;

/// The caller's side: withdraws the job unless it has started.
pub(crate) struct Ticket(Arc<AtomicU8>);

/// The thread's side: starts the job unless it was withdrawn.
pub(crate) struct Claim(Arc<AtomicU8>);

/// A fresh, queued job's two sides.
pub(crate) fn pair() -> (Ticket, Claim) {
    let state = Arc::new(AtomicU8::new(QUEUED));
    (Ticket(Arc::clone(&state)), Claim(state))
}

impl Ticket {
    /// Withdraws the job; `false` when the thread already started it.
    pub(crate) fn cancel(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl Claim {
    /// Starts the job; `false` when its caller withdrew it.
    pub(crate) fn start(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_one_wins() {
        let (ticket, claim) = pair();
        assert!(claim.start());
        assert!(!ticket.cancel(), "a started job cannot be withdrawn");
        let (ticket, claim) = pair();
        drop(ticket);
        assert!(!claim.start(), "a withdrawn job never runs");
    }
}

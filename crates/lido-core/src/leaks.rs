//! Leak detection: every lease is registered with its call site; the
//! maintenance task reports, once, each lease held past `leak_threshold`.

use std::backtrace::Backtrace;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use slab::Slab;
use tokio::time::Instant;

/// A lease held past `leak_threshold`.
#[derive(Debug, Clone)]
pub struct LeakReport {
    /// The pool's id of the leased connection.
    pub conn_id: u64,
    /// How long it has been held.
    pub held: Duration,
    /// Where `get()` was called.
    pub location: &'static Location<'static>,
    /// The backtrace at checkout, when `leak_backtrace` is on.
    pub backtrace: Option<Arc<Backtrace>>,
}

struct Lease {
    since: Instant,
    location: &'static Location<'static>,
    conn_id: u64,
    reported: bool,
    backtrace: Option<Arc<Backtrace>>,
}

/// Registered leases; its own lock, held only for an insert or a remove.
#[derive(Default)]
pub(crate) struct Leases {
    slab: Mutex<Slab<Lease>>,
}

impl Leases {
    pub fn insert(
        &self,
        conn_id: u64,
        since: Instant,
        location: &'static Location<'static>,
        backtrace: bool,
    ) -> usize {
        let backtrace = backtrace.then(|| Arc::new(Backtrace::force_capture()));
        self.slab.lock().insert(Lease {
            since,
            location,
            conn_id,
            reported: false,
            backtrace,
        })
    }

    pub fn remove(&self, key: usize) {
        self.slab.lock().try_remove(key);
    }

    /// Leases held past `threshold`; `only_new` returns each one once.
    pub fn over(&self, now: Instant, threshold: Duration, only_new: bool) -> Vec<LeakReport> {
        let mut slab = self.slab.lock();
        let mut out = Vec::new();
        for (_, lease) in slab.iter_mut() {
            let held = now.saturating_duration_since(lease.since);
            if held < threshold || (only_new && lease.reported) {
                continue;
            }
            lease.reported = true;
            out.push(LeakReport {
                conn_id: lease.conn_id,
                held,
                location: lease.location,
                backtrace: lease.backtrace.clone(),
            });
        }
        out
    }
}

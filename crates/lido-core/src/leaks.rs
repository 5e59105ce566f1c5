//! Leak detection: every lease is registered with its call site; the
//! maintenance task reports, once, each lease held past `leak_threshold`.

use std::backtrace::Backtrace;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

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

/// Registered leases. Lives in the pool's state, so registering and
/// removing a lease rides on the lock `get()` and the return take anyway.
#[derive(Default)]
pub(crate) struct Leases {
    slab: Slab<Lease>,
}

impl Leases {
    pub fn insert(
        &mut self,
        conn_id: u64,
        since: Instant,
        location: &'static Location<'static>,
        backtrace: Option<Arc<Backtrace>>,
    ) -> usize {
        self.slab.insert(Lease {
            since,
            location,
            conn_id,
            reported: false,
            backtrace,
        })
    }

    pub fn remove(&mut self, key: usize) {
        self.slab.try_remove(key);
    }

    /// Leases held past `threshold`; `only_new` returns each one once.
    pub fn over(&mut self, now: Instant, threshold: Duration, only_new: bool) -> Vec<LeakReport> {
        let mut out = Vec::new();
        for (_, lease) in self.slab.iter_mut() {
            let held = now.saturating_duration_since(lease.since);
            if held < threshold || (only_new && lease.reported) {
                continue;
            }
            if only_new {
                lease.reported = true;
            }
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

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

/// The lease registry: one entry per open connection (opened when the
/// connection joins the pool, closed when it leaves), holding its current
/// lease while checked out. Lives in the pool's state, so beginning and
/// ending a lease is a store into an existing entry under the lock `get()`
/// and the return take anyway: no allocation, no free-list work per lease.
#[derive(Default)]
pub(crate) struct Leases {
    slab: Slab<Option<Lease>>,
}

impl Leases {
    /// A new connection's entry; its key goes in the connection's `slot`.
    pub fn open(&mut self) -> usize {
        self.slab.insert(None)
    }

    /// Entries (one per open connection).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// The connection left the pool (closed or detached).
    pub fn close(&mut self, slot: usize) {
        self.slab.try_remove(slot);
    }

    /// A lease on the connection in `slot` begins.
    pub fn begin(
        &mut self,
        slot: usize,
        conn_id: u64,
        since: Instant,
        location: &'static Location<'static>,
        backtrace: Option<Arc<Backtrace>>,
    ) {
        let Some(entry) = self.slab.get_mut(slot) else {
            return;
        };
        *entry = Some(Lease {
            since,
            location,
            conn_id,
            reported: false,
            backtrace,
        });
    }

    /// The lease on the connection in `slot` ended (it came back).
    pub fn end(&mut self, slot: usize) {
        // Read first: with leak detection off there is never a lease, and
        // not writing keeps the entry's cache line shared between cores.
        if let Some(entry) = self.slab.get_mut(slot).filter(|e| e.is_some()) {
            *entry = None;
        }
    }

    /// Leases held past `threshold`; `only_new` returns each one once.
    pub fn over(&mut self, now: Instant, threshold: Duration, only_new: bool) -> Vec<LeakReport> {
        let mut out = Vec::new();
        for lease in self.slab.iter_mut().filter_map(|(_, l)| l.as_mut()) {
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

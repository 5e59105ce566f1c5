//! Leak detection: every lease is registered with its call site; the
//! maintenance task reports, once, each lease held past `leak_threshold`.
//!
//! Each connection carries its own [`LeaseCell`], made when it opens. A
//! lease begins and ends in that cell, outside the pool's lock: the cell
//! travels with the connection, while the pool's lock is what every `get()`
//! and return contend for. The registry ([`Leases`]) only holds a handle to
//! each open connection's cell, for the sweep to read.

use std::backtrace::Backtrace;
use std::panic::Location;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
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

/// Where the current lease was taken (read by the sweep, under the cell's lock).
struct Site {
    location: &'static Location<'static>,
    backtrace: Option<Arc<Backtrace>>,
    /// The `since` mark of the lease last reported (reported once each).
    reported: u64,
}

/// One connection's current lease, when it is checked out and leak
/// detection is on.
///
/// Only the connection's holder writes it, and the pool's lock orders one
/// holder after the next. Ending a lease is one store; beginning one is a
/// store too when the call site is the one of the last lease (the usual
/// case); a new call site or a backtrace takes the cell's lock, which the
/// sweep takes to read it.
pub(crate) struct LeaseCell {
    conn_id: u64,
    /// What `since` counts from (the connection's opening).
    epoch: Instant,
    /// Nanoseconds after `epoch` when the current lease began, plus one;
    /// 0 while the connection is not leased. Every lease gets a larger mark
    /// than the last (even with a paused clock), so a mark names a lease.
    since: AtomicU64,
    /// The last mark handed out (written by the holder only).
    last: AtomicU64,
    /// `Site::location` of the last lease, only ever compared, never read
    /// through.
    site_ptr: AtomicPtr<Location<'static>>,
    site: Mutex<Site>,
}

impl LeaseCell {
    /// The cell of the connection `conn_id`, opened at `epoch`, with no lease.
    pub fn new(conn_id: u64, epoch: Instant) -> Arc<Self> {
        Arc::new(Self {
            conn_id,
            epoch,
            since: AtomicU64::new(0),
            last: AtomicU64::new(0),
            site_ptr: AtomicPtr::new(std::ptr::null_mut()),
            site: Mutex::new(Site {
                location: Location::caller(),
                backtrace: None,
                reported: 0,
            }),
        })
    }

    /// A lease begins at `since`, taken at `location`.
    pub fn begin(
        &self,
        since: Instant,
        location: &'static Location<'static>,
        backtrace: Option<Arc<Backtrace>>,
    ) {
        let elapsed = since.saturating_duration_since(self.epoch).as_nanos();
        let elapsed = u64::try_from(elapsed).unwrap_or(u64::MAX - 1);
        let mark = elapsed
            .saturating_add(1)
            .max(self.last.load(Ordering::Relaxed).saturating_add(1));
        self.last.store(mark, Ordering::Relaxed);
        let ptr = std::ptr::from_ref(location).cast_mut();
        if backtrace.is_none() && self.site_ptr.load(Ordering::Relaxed) == ptr {
            self.since.store(mark, Ordering::Release);
            return;
        }
        let mut site = self.site.lock();
        site.location = location;
        site.backtrace = backtrace;
        self.site_ptr.store(ptr, Ordering::Relaxed);
        self.since.store(mark, Ordering::Release);
    }

    /// The lease ended (the connection came back).
    pub fn end(&self) {
        self.since.store(0, Ordering::Release);
    }

    /// The lease, when held past `threshold` (and not reported yet, with
    /// `only_new`, which marks it reported).
    fn over(&self, now: Instant, threshold: Duration, only_new: bool) -> Option<LeakReport> {
        let mut site = self.site.lock();
        let mark = self.since.load(Ordering::Acquire);
        if mark == 0 {
            return None;
        }
        let since = crate::time::add(self.epoch, Duration::from_nanos(mark - 1));
        let held = now.saturating_duration_since(since);
        if held < threshold || (only_new && site.reported == mark) {
            return None;
        }
        if only_new {
            site.reported = mark;
        }
        Some(LeakReport {
            conn_id: self.conn_id,
            held,
            location: site.location,
            backtrace: site.backtrace.clone(),
        })
    }
}

/// The lease registry: one entry per open connection (opened when the
/// connection joins the pool, closed when it leaves), holding its cell.
/// Lives in the pool's state; the entry's key is the connection's `slot`.
#[derive(Default)]
pub(crate) struct Leases {
    slab: Slab<Arc<LeaseCell>>,
}

impl Leases {
    /// A new connection's entry; its key goes in the connection's `slot`.
    pub fn open(&mut self, cell: Arc<LeaseCell>) -> usize {
        self.slab.insert(cell)
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

    /// Leases held past `threshold`; `only_new` returns each one once.
    pub fn over(&self, now: Instant, threshold: Duration, only_new: bool) -> Vec<LeakReport> {
        self.slab
            .iter()
            .filter_map(|(_, cell)| cell.over(now, threshold, only_new))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_reported_once_past_the_threshold_and_not_after_it_ends() {
        let mut reg = Leases::default();
        let cell = LeaseCell::new(7, Instant::now());
        reg.open(Arc::clone(&cell));
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let here = Location::caller();
        cell.begin(t0, here, None);
        assert!(reg.over(at(5), Duration::from_secs(10), true).is_empty());
        let found = reg.over(at(11), Duration::from_secs(10), true);
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].conn_id, found[0].held),
            (7, Duration::from_secs(11))
        );
        assert!(reg.over(at(12), Duration::from_secs(10), true).is_empty());
        assert_eq!(reg.over(at(12), Duration::from_secs(10), false).len(), 1);
        cell.end();
        assert!(reg.over(at(99), Duration::from_secs(10), false).is_empty());
    }

    #[test]
    fn a_closed_connection_leaves_the_registry() {
        let mut reg = Leases::default();
        let cell = LeaseCell::new(1, Instant::now());
        let slot = reg.open(Arc::clone(&cell));
        cell.begin(Instant::now(), Location::caller(), None);
        reg.close(slot);
        assert_eq!(reg.len(), 0);
        assert!(reg.over(Instant::now(), Duration::ZERO, false).is_empty());
    }

    #[test]
    fn each_lease_is_its_own_even_at_the_same_instant_and_site() {
        let mut reg = Leases::default();
        let t0 = Instant::now();
        let cell = LeaseCell::new(3, t0);
        reg.open(Arc::clone(&cell));
        let threshold = Duration::from_secs(1);
        let later = t0 + Duration::from_secs(5);
        let first = Location::caller();
        let second = Location::caller();
        assert_ne!(first, second);
        cell.begin(t0, first, None);
        assert_eq!(reg.over(later, threshold, true)[0].location, first);
        cell.end();
        // Same instant, same site: the fast path; still a new lease.
        cell.begin(t0, first, None);
        assert_eq!(reg.over(later, threshold, true).len(), 1);
        assert!(reg.over(later, threshold, true).is_empty());
        cell.end();
        // Another site is recorded as such.
        cell.begin(t0, second, None);
        let found = reg.over(later, threshold, true);
        assert_eq!(found[0].location, second);
        assert!(found[0].held > Duration::from_secs(4));
    }
}

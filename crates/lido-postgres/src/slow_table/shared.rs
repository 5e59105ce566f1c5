//! Counters and signals the pool and its writer task share, and the
//! writer's warning rate limit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

/// How often a dropped row or a write failure is warned about at most.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(30);

/// Counters and signals shared by the pool and its writer task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) queued: AtomicU64,
    pub(crate) written: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) failed_batches: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) plans: AtomicU64,
    pub(crate) plan_failures: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) connected: AtomicBool,
    /// Rows the writer holds (taken from the queue, not yet written).
    pub(crate) in_hand: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
    /// Set when the pool closes: write what is queued, then stop.
    pub(crate) closing: watch::Sender<bool>,
    /// Set by the writer when it has stopped.
    pub(crate) done: watch::Sender<bool>,
    /// When the last drop warning was logged (ms since `born`).
    pub(crate) last_drop_warn: AtomicU64,
    born: Instant,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Self {
            queued: AtomicU64::new(0),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            failed_batches: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            plans: AtomicU64::new(0),
            plan_failures: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            in_hand: AtomicU64::new(0),
            last_error: Mutex::new(None),
            closing: watch::Sender::new(false),
            done: watch::Sender::new(false),
            last_drop_warn: AtomicU64::new(0),
            born: Instant::now(),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Marks the writer stopped.
    pub(crate) fn finished(&self) {
        self.connected.store(false, Ordering::Relaxed);
        self.done.send_replace(true);
    }

    /// Whether a rate-limited warning may be logged now (and notes it).
    pub(crate) fn may_warn(&self, last: &AtomicU64) -> bool {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        let every = u64::try_from(WARN_EVERY.as_millis()).unwrap_or(u64::MAX);
        let before = last.load(Ordering::Relaxed);
        (before == 0 || now.saturating_sub(before) >= every)
            && last
                .compare_exchange(before, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

/// A rate limiter for the writer's own warnings.
#[derive(Debug, Default)]
pub(crate) struct Every {
    last: Option<Instant>,
}

impl Every {
    /// Whether to warn now (at most once per [`WARN_EVERY`]).
    pub(crate) fn due(&mut self) -> bool {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < WARN_EVERY => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

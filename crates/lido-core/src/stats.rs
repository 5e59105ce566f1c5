//! Pool statistics: a point-in-time [`Status`] and cumulative [`Stats`].

use std::sync::atomic::{AtomicU64, Ordering};

use crate::histogram::Histogram;
use crate::stripe::Counter;

/// Why a connection was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// `has_broken` said so on return or checkout.
    Broken,
    /// The validation `check` failed or timed out.
    FailedCheck,
    /// `reset` failed or timed out.
    FailedReset,
    /// Older than `max_lifetime`.
    Lifetime,
    /// Idle past `idle_timeout` above `min_idle`.
    Idle,
    /// Above `max_size` after a `resize`.
    Resize,
    /// Above `core_size` on return with nobody waiting.
    Overflow,
    /// Rejected by a `retain` predicate.
    Retain,
    /// Taken out of the pool with `detach`.
    Detached,
    /// The pool was closed.
    PoolClosed,
    /// A checkout was cancelled while validating it.
    Cancelled,
    /// Held longer than `max_lease`.
    MaxLease,
}

impl CloseReason {
    /// Every reason, in a stable order.
    pub const ALL: [CloseReason; 12] = [
        Self::Broken,
        Self::FailedCheck,
        Self::FailedReset,
        Self::Lifetime,
        Self::Idle,
        Self::Resize,
        Self::Overflow,
        Self::Retain,
        Self::Detached,
        Self::PoolClosed,
        Self::Cancelled,
        Self::MaxLease,
    ];

    /// A stable snake_case name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Broken => "broken",
            Self::FailedCheck => "failed_check",
            Self::FailedReset => "failed_reset",
            Self::Lifetime => "lifetime",
            Self::Idle => "idle",
            Self::Resize => "resize",
            Self::Overflow => "overflow",
            Self::Retain => "retain",
            Self::Detached => "detached",
            Self::PoolClosed => "pool_closed",
            Self::Cancelled => "cancelled",
            Self::MaxLease => "max_lease",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// A point-in-time view of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// Open connections (idle + in use), not counting ones being created.
    pub size: usize,
    /// Idle connections.
    pub idle: usize,
    /// Connections checked out (or being validated, reset or pinged).
    pub in_use: usize,
    /// Callers waiting for a connection.
    pub waiters: usize,
    /// Connects in flight.
    pub connecting: usize,
    /// Current `max_size`.
    pub max_size: usize,
    /// Connections the pool may have open now: adaptive sizing's target
    /// when it is on (never above `max_size`), else `max_size`.
    pub target_size: usize,
    /// Configured `min_idle`.
    pub min_idle: usize,
    /// Leases held now per priority lane (index: `Priority as usize`).
    pub in_use_by_lane: [usize; 3],
}

/// Cumulative counters and time distributions since the pool was built.
#[derive(Debug)]
pub struct Stats {
    pub(crate) gets_waited: Counter,
    pub(crate) acquire_timeouts: AtomicU64,
    pub(crate) get_errors: AtomicU64,
    pub(crate) created: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) closed: [AtomicU64; CloseReason::ALL.len()],
    pub(crate) breaker_opened: AtomicU64,
    pub(crate) breaker_half_opened: AtomicU64,
    pub(crate) breaker_closed: AtomicU64,
    pub(crate) leaks: AtomicU64,
    pub(crate) preemptions: AtomicU64,
    pub(crate) target_changes: AtomicU64,
    /// Time callers waited in `get()` (striped: recorded on every `get()`;
    /// the zero waits of direct gets are always counted, even with
    /// `statistics` off, since they are the `gets_direct` counter).
    pub acquire_wait: Histogram,
    /// Time connections were held by callers (striped: recorded on every return).
    pub hold_time: Histogram,
    /// Time successful connects took.
    pub connect_time: Histogram,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            gets_waited: Counter::default(),
            acquire_timeouts: AtomicU64::new(0),
            get_errors: AtomicU64::new(0),
            created: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            closed: Default::default(),
            breaker_opened: AtomicU64::new(0),
            breaker_half_opened: AtomicU64::new(0),
            breaker_closed: AtomicU64::new(0),
            leaks: AtomicU64::new(0),
            preemptions: AtomicU64::new(0),
            target_changes: AtomicU64::new(0),
            acquire_wait: Histogram::striped(),
            hold_time: Histogram::striped(),
            connect_time: Histogram::default(),
        }
    }
}

fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

pub(crate) fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    /// `get()` calls served at once from an idle connection.
    pub fn gets_direct(&self) -> u64 {
        // Every direct get records a zero wait, in a striped counter of its
        // own: that counter is this one (one add per get, not two).
        self.acquire_wait.zeros()
    }
    /// `get()` calls that had to wait (for a return or a new connection).
    pub fn gets_waited(&self) -> u64 {
        self.gets_waited.get()
    }
    /// `get()` calls that ran past `acquire_timeout`.
    pub fn acquire_timeouts(&self) -> u64 {
        get(&self.acquire_timeouts)
    }
    /// `get()` calls that failed for another reason (connect error, breaker open, closed).
    pub fn get_errors(&self) -> u64 {
        get(&self.get_errors)
    }
    /// Connections opened.
    pub fn created(&self) -> u64 {
        get(&self.created)
    }
    /// Connect attempts that failed.
    pub fn connect_failures(&self) -> u64 {
        get(&self.connect_failures)
    }
    /// Connections closed for `reason`.
    pub fn closed(&self, reason: CloseReason) -> u64 {
        get(&self.closed[reason.index()])
    }
    /// Connections closed for any reason.
    pub fn closed_total(&self) -> u64 {
        self.closed.iter().map(get).sum()
    }
    /// Times the breaker opened.
    pub fn breaker_opened(&self) -> u64 {
        get(&self.breaker_opened)
    }
    /// Times the breaker turned half-open.
    pub fn breaker_half_opened(&self) -> u64 {
        get(&self.breaker_half_opened)
    }
    /// Times the breaker closed again.
    pub fn breaker_closed(&self) -> u64 {
        get(&self.breaker_closed)
    }

    /// Lent calls the pool asked the backend to stop for a higher-lane
    /// waiter (lane lending's preemption).
    pub fn preemptions(&self) -> u64 {
        get(&self.preemptions)
    }

    /// Leases reported as possible leaks (held past `leak_threshold`).
    pub fn leaks(&self) -> u64 {
        get(&self.leaks)
    }

    /// Times adaptive sizing changed the target size.
    pub fn target_changes(&self) -> u64 {
        get(&self.target_changes)
    }

    pub(crate) fn count_close(&self, reason: CloseReason) {
        bump(&self.closed[reason.index()]);
    }
}

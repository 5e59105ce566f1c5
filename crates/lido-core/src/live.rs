//! What the pool's state holds: a connection with its bookkeeping
//! ([`Live`]), and what a waiter receives ([`Delivery`]).

use std::sync::Arc;

use tokio::time::Instant;

use crate::error::Error;
use crate::leaks::LeaseCell;
use crate::manager::Manager;

/// A connection with its bookkeeping, boxed: it moves between the idle
/// list, waiters and leases on every `get()` and return, and a pointer moves
/// for free where the whole record (over 100 bytes) would be copied. The box
/// is made once per connection, when it opens.
pub(crate) type Live<C> = Box<Entry<C>>;

/// What [`Live`] points to.
pub(crate) struct Entry<C> {
    pub conn: C,
    pub id: u64,
    pub created: Instant,
    pub expires: Option<Instant>,
    /// When a caller last returned it (what `idle_timeout` counts from).
    pub last_used: Instant,
    /// When it was last known good: returned, or passed a keepalive ping
    /// (what the validation bypass and keepalive count from).
    pub last_checked: Instant,
    /// Its entry in the lease registry (set when it joins the pool).
    pub slot: usize,
    /// Its current lease, for leak detection (begun and ended outside the
    /// pool's lock; the registry holds a handle to it).
    pub lease: Arc<LeaseCell>,
    /// The lane holding it while it is leased (counted in the state's
    /// per-lane holdings until it comes back).
    pub lane: Option<crate::waiters::Priority>,
    /// Stops the call running on it (lane lending's preemption).
    pub preempt: Option<crate::manager::PreemptHandle>,
}

/// A connection opened at `now`, not yet in the lease registry.
pub fn new<C>(conn: C, id: u64, now: Instant, expires: Option<Instant>) -> Live<C> {
    Box::new(Entry {
        conn,
        id,
        created: now,
        expires,
        last_used: now,
        last_checked: now,
        slot: usize::MAX,
        lease: LeaseCell::new(id, now),
        lane: None,
        preempt: None,
    })
}

impl<C> Entry<C> {
    pub fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|e| now >= e)
    }

    /// Time since the connection was last known good.
    pub fn unchecked_for(&self, now: Instant) -> std::time::Duration {
        now.saturating_duration_since(self.last_used.max(self.last_checked))
    }
}

/// What a waiter receives.
pub(crate) enum Delivery<M: Manager> {
    Conn(Live<M::Connection>),
    /// Boxed: a failure is rare, and a waiter's slot stays small.
    Failed(Box<Error<M::Error>>),
    /// Its deadline passed (delivered by the sweeper).
    TimedOut,
}

//! A cap on open connections shared by many pools ([`SqliteFiles`](crate::SqliteFiles)).
//!
//! Every connection a capped pool opens holds a permit until it is closed.
//! When none is free, the cap first asks its owner to free some (close idle
//! readers and idle pools), then waits.
//!
//! Opening a pool takes two permits at once: one for its writer and one kept
//! in the pool's [`Reserve`] for a reader. A reader's permit goes back to the
//! reserve when it closes, so every open pool can always read and write, and
//! pools that hold all permits can never wait on each other.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ConnectError;

/// Frees connections when the cap is full.
pub(crate) type Reclaim = Box<dyn Fn() + Send + Sync>;

pub(crate) struct Cap {
    sem: Arc<Semaphore>,
    limit: usize,
    wait: Duration,
    reclaim: Reclaim,
}

impl fmt::Debug for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cap")
            .field("limit", &self.limit)
            .field("available", &self.sem.available_permits())
            .finish()
    }
}

const RECLAIM_EVERY: Duration = Duration::from_millis(50);

/// One open connection's share of the cap.
pub(crate) type Permit = OwnedSemaphorePermit;

impl Cap {
    pub fn new(limit: usize, wait: Duration, reclaim: Reclaim) -> Self {
        Self {
            sem: Arc::new(Semaphore::new(limit)),
            limit,
            wait,
            reclaim,
        }
    }

    /// Connections open under the cap.
    pub fn in_use(&self) -> usize {
        self.limit - self.sem.available_permits()
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Takes `n` permits at once, reclaiming idle connections elsewhere while
    /// too few are free (again every 50 ms, as pools fall idle), for up to
    /// `wait`. Gives up early once `abandoned` says nobody needs it any more.
    pub async fn acquire(
        &self,
        n: u32,
        abandoned: impl Fn() -> bool,
    ) -> Result<Permit, ConnectError> {
        if let Ok(p) = Arc::clone(&self.sem).try_acquire_many_owned(n) {
            return Ok(p);
        }
        let deadline = tokio::time::Instant::now() + self.wait;
        let acquire = Arc::clone(&self.sem).acquire_many_owned(n);
        tokio::pin!(acquire);
        loop {
            if abandoned() {
                return Err(ConnectError::Closed);
            }
            (self.reclaim)();
            let step = (tokio::time::Instant::now() + RECLAIM_EVERY).min(deadline);
            match tokio::time::timeout_at(step, acquire.as_mut()).await {
                Ok(Ok(p)) => return Ok(p),
                Ok(Err(_)) => break,
                Err(_) if step >= deadline => break,
                Err(_) => {}
            }
        }
        Err(ConnectError::CapReached { cap: self.limit })
    }
}

/// A capped pool's reserved reader permit (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Reserve {
    slot: Mutex<Option<Permit>>,
    closed: AtomicBool,
}

impl Reserve {
    /// The pool is gone: free the reserved permit, stop waiting for new ones.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        drop(self.slot.lock().take());
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Takes a reader's permit: the reserved one if free, else one from the cap.
    pub async fn acquire(&self, cap: &Cap) -> Result<Permit, ConnectError> {
        if self.is_closed() {
            return Err(ConnectError::Closed);
        }
        if let Some(p) = self.slot.lock().take() {
            return Ok(p);
        }
        cap.acquire(1, || self.is_closed()).await
    }

    /// Keeps a closing reader's permit for the next reader when the slot is empty.
    pub fn release(&self, permit: Permit) {
        if self.is_closed() {
            return;
        }
        let mut slot = self.slot.lock();
        if slot.is_none() {
            *slot = Some(permit);
        }
    }
}

/// A new capped pool's permits: its writer's, and its reader reserve.
pub(crate) async fn acquire_pool(cap: &Cap) -> Result<(Permit, Arc<Reserve>), ConnectError> {
    let mut writer = cap.acquire(2, || false).await?;
    let reserve = Reserve {
        slot: Mutex::new(writer.split(1)),
        closed: AtomicBool::new(false),
    };
    Ok((writer, Arc::new(reserve)))
}

//! [`Waiting`]: a weak handle on the callers waiting in a pool's `get()`,
//! for a backend that learns the database is unavailable some other way
//! than a failed connect (a watchdog that sees the server stop answering)
//! and wants those callers to fail now rather than wait out
//! `acquire_timeout` behind connections stuck on it.
//!
//! The handle does not keep the pool alive, and costs `get()` nothing: the
//! waiters it fails are those already in the pool's queue.

use std::sync::Weak;

use crate::commit::apply;
use crate::error::Error;
use crate::manager::Manager;
use crate::pool::Pool;
use crate::shared::Shared;

/// Fails the callers waiting in a pool's `get()`; see the module docs.
///
/// ```
/// # use lido_core::{Error, ConnectFailure, Manager, Pool};
/// # use std::sync::Arc;
/// # struct Nop;
/// # impl Manager for Nop {
/// #     type Connection = ();
/// #     type Error = std::io::Error;
/// #     async fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
/// #     async fn check(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Pool::builder(Nop).max_size(1).build().await?;
/// let waiting = pool.waiting();
/// let held = pool.get().await?;
/// let second = tokio::spawn({
///     let pool = pool.clone();
///     async move { pool.get().await.map(drop) }
/// });
/// while pool.status().waiters == 0 {
///     tokio::task::yield_now().await;
/// }
/// let down = Arc::new(std::io::Error::other("server not answering"));
/// let failed = waiting.fail_all(|| Error::Unavailable {
///     cause: ConnectFailure::Backend(Arc::clone(&down)),
/// });
/// assert_eq!(failed, 1);
/// assert!(matches!(second.await?, Err(Error::Unavailable { .. })));
/// drop(held);
/// # Ok(()) }
/// ```
pub struct Waiting<M: Manager> {
    shared: Weak<Shared<M>>,
}

impl<M: Manager> Clone for Waiting<M> {
    fn clone(&self) -> Self {
        Self {
            shared: Weak::clone(&self.shared),
        }
    }
}

impl<M: Manager> std::fmt::Debug for Waiting<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("pool_alive", &(self.shared.strong_count() > 0))
            .finish()
    }
}

impl<M: Manager> Waiting<M> {
    /// Fails every caller now waiting in `get()` with `make()` (one error
    /// each); returns how many. Zero once the pool is gone.
    pub fn fail_all(&self, make: impl FnMut() -> Error<M::Error>) -> usize {
        let Some(shared) = self.shared.upgrade() else {
            return 0;
        };
        apply(&shared, |st, step| st.fail_waiters(make, step))
    }
}

impl<M: Manager> Pool<M> {
    /// A weak handle that fails the callers waiting in this pool's `get()`
    /// (see [`Waiting`]).
    pub fn waiting(&self) -> Waiting<M> {
        Waiting {
            shared: std::sync::Arc::downgrade(&self.shared),
        }
    }
}

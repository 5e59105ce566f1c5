//! The pool for programs without an async runtime: [`BlockingPool`] owns a
//! small tokio runtime, and `get()` blocks the calling thread (up to
//! `acquire_timeout`) instead of returning a future.

use std::future::Future;
use std::sync::Arc;

use tokio::runtime::{Handle, Runtime};

use crate::builder::PoolBuilder;
use crate::error::{BuildError, Error};
use crate::guard::Pooled;
use crate::manager::Manager;
use crate::pool::Pool;

/// Why a blocking call could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlockingError<E: std::error::Error + 'static> {
    /// The pool refused or timed out.
    #[error(transparent)]
    Pool(#[from] Error<E>),
    /// Called from a thread that runs a tokio runtime, where blocking would
    /// stall the executor: use the async [`Pool`] there.
    #[error(
        "lido's blocking API was called from inside a tokio runtime; use the async Pool there"
    )]
    InsideRuntime,
}

/// A [`Pool`] for plain threads. Cheap to clone; the runtime lives as long as any clone.
///
/// ```
/// # use lido_core::{blocking::BlockingPool, Manager, Pool};
/// # struct Nop;
/// # impl Manager for Nop {
/// #     type Connection = u32;
/// #     type Error = std::io::Error;
/// #     async fn connect(&self) -> Result<u32, std::io::Error> { Ok(7) }
/// #     async fn check(&self, _: &mut u32) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// let pool = BlockingPool::build(Pool::builder(Nop).max_size(4))?;
/// let handles: Vec<_> = (0..8)
///     .map(|_| {
///         let pool = pool.clone();
///         std::thread::spawn(move || *pool.get().expect("get"))
///     })
///     .collect();
/// for h in handles {
///     assert_eq!(h.join().unwrap(), 7);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BlockingPool<M: Manager> {
    pool: Pool<M>,
    runtime: Arc<Owner>,
}

/// Owns the runtime. Dropping a tokio `Runtime` from async code panics
/// ("cannot drop a runtime in a context where blocking is not allowed"), and
/// the last clone of a `BlockingPool` may well be dropped there (moved into a
/// task, say), so the owner shuts the runtime down in the background instead.
struct Owner(Option<Runtime>);

impl Owner {
    fn get(&self) -> &Runtime {
        self.0
            .as_ref()
            .expect("the runtime lives until the owner drops")
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl<M: Manager> Clone for BlockingPool<M> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            runtime: Arc::clone(&self.runtime),
        }
    }
}

impl<M: Manager> BlockingPool<M> {
    /// Starts a two-thread runtime and builds the pool on it (warming up to `min_idle`).
    pub fn build(builder: PoolBuilder<M>) -> Result<Self, BuildError> {
        Self::from_async(|| builder.build())?
    }

    /// Starts the runtime and runs `make` on it to build the pool — for
    /// backends with their own builders (`PgPool::builder(..).build()` then
    /// `.core().clone()`). The outer `Result` says whether the runtime started.
    pub fn from_async<F, Fut, E>(make: F) -> Result<Result<Self, E>, BuildError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Pool<M>, E>>,
    {
        if Handle::try_current().is_ok() {
            return Err(BuildError::InsideRuntime);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lido-pool")
            .enable_all()
            .build()
            .map_err(|e| BuildError::Runtime(e.to_string()))?;
        Ok(runtime.block_on(make()).map(|pool| Self {
            pool,
            runtime: Arc::new(Owner(Some(runtime))),
        }))
    }

    /// Leases a connection, blocking up to `acquire_timeout`. The guard goes
    /// back to the pool when dropped, on any thread.
    #[track_caller]
    pub fn get(&self) -> Result<Pooled<M>, BlockingError<M::Error>> {
        self.get_with_priority(crate::Priority::Normal)
    }

    /// [`get`](Self::get) in `priority`'s lane (see [`crate::LaneLimits`]).
    #[track_caller]
    pub fn get_with_priority(
        &self,
        priority: crate::Priority,
    ) -> Result<Pooled<M>, BlockingError<M::Error>> {
        let fut = self
            .pool
            .get_tracked(priority, std::panic::Location::caller());
        self.block_on(fut)?.map_err(BlockingError::Pool)
    }

    /// Runs a future (a query on a leased connection, say) to completion on the pool's runtime.
    pub fn block_on<F: Future>(&self, fut: F) -> Result<F::Output, BlockingError<M::Error>> {
        if Handle::try_current().is_ok() {
            return Err(BlockingError::InsideRuntime);
        }
        Ok(self.runtime.get().block_on(fut))
    }

    /// The async pool underneath (status, stats, resize, …).
    pub fn pool(&self) -> &Pool<M> {
        &self.pool
    }
}

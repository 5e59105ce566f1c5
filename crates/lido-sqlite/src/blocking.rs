//! A blocking API for plain threads: no tokio runtime needed in the caller.
//!
//! [`BlockingPool`] owns a small runtime (one worker thread) for the pool's
//! timers and connects. Reads run on the calling thread on a leased reader;
//! writes go to the writer lane and the caller blocks for the result. Every
//! wait is bounded by `acquire_timeout`.
//!
//! ```
//! use lido_sqlite::blocking::BlockingPool;
//! use lido_sqlite::SqlitePool;
//!
//! # fn main() -> Result<(), lido_sqlite::Error> {
//! let db = BlockingPool::open(SqlitePool::memory("blocking_doc"))?;
//! db.write(|c| c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (7)"))?;
//! let handles: Vec<_> = (0..4)
//!     .map(|_| {
//!         let db = db.clone();
//!         std::thread::spawn(move || db.read(|c| c.query_row("SELECT x FROM t", [], |r| r.get::<_, i64>(0))))
//!     })
//!     .collect();
//! for h in handles {
//!     assert_eq!(h.join().expect("thread")?, 7);
//! }
//! let conn = db.get()?; // a leased reader; back to the pool on drop
//! let n: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?;
//! assert_eq!(n, 1);
//! # Ok(()) }
//! ```

use std::fmt;
use std::ops::Deref;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use lido_core::{CloseReport, Pooled, Priority};
use parking_lot::lock_api::ArcRwLockReadGuard;
use rusqlite::{Connection, Transaction};
use tokio::runtime::{Handle, Runtime};

use crate::error::{Error, Result};
use crate::exec::Mode;
use crate::manager::SqliteManager;
use crate::options::Builder;
use crate::pool::SqlitePool;
use crate::reads::read_on;

/// Shuts the owned runtime down without blocking, wherever it is dropped.
struct Owner(Option<Runtime>);

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A [`SqlitePool`] for synchronous code. Cheap to clone; share it between threads.
#[derive(Clone)]
pub struct BlockingPool {
    pool: SqlitePool,
    handle: Handle,
    _owner: Arc<Owner>,
}

impl fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BlockingPool").field(&self.pool).finish()
    }
}

/// A leased read-only connection. Derefs to [`rusqlite::Connection`]; goes
/// back to the pool on drop (after rolling back anything left open).
pub struct ReadGuard {
    conn: Pooled<SqliteManager>,
    _shared: Option<ArcRwLockReadGuard<parking_lot::RawRwLock, ()>>,
}

impl Deref for ReadGuard {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        if let Some(c) = self.conn.connection() {
            if !c.is_autocommit() && c.execute_batch("ROLLBACK").is_err() {
                self.conn.discard_on_drop();
            }
        }
    }
}

impl fmt::Debug for ReadGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReadGuard").field(&self.conn).finish()
    }
}

fn outside_runtime() -> Result<()> {
    match Handle::try_current() {
        Ok(_) => Err(Error::InsideRuntime),
        Err(_) => Ok(()),
    }
}

impl BlockingPool {
    /// Starts a one-worker runtime and builds the pool on it.
    pub fn open(builder: Builder) -> Result<Self> {
        outside_runtime()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("lido-sqlite-rt")
            .enable_all()
            .build()
            .map_err(Error::Spawn)?;
        let pool = rt.block_on(builder.build())?;
        Ok(Self {
            pool,
            handle: rt.handle().clone(),
            _owner: Arc::new(Owner(Some(rt))),
        })
    }

    /// The async handle to the same pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Leases a reader, blocking up to `acquire_timeout`. On an in-memory
    /// database a held guard also holds off writes (they fail with
    /// [`Error::WriterTimeout`] after `acquire_timeout`): keep it short.
    /// Leak reports for the guard name the line that called `get`.
    #[track_caller]
    pub fn get(&self) -> Result<ReadGuard> {
        outside_runtime()?;
        let conn = self.lease(Priority::Normal, Location::caller())?;
        let wait = self.pool.acquire_timeout();
        let shared = match self.pool.gate() {
            Some(g) => Some(g.try_read_arc_for(wait).ok_or(Error::WriterTimeout {
                waited: wait,
                queued: 0,
            })?),
            None => None,
        };
        Ok(ReadGuard {
            conn,
            _shared: shared,
        })
    }

    /// Runs `f` on a reader, on this thread.
    #[track_caller]
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        self.read_at(Priority::Normal, Location::caller(), f)
    }

    /// [`read`](Self::read) in `priority`'s lane of the readers' pool
    /// (served before lower lanes, within the readers' lane limits).
    #[track_caller]
    pub fn read_with_priority<T>(
        &self,
        priority: Priority,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.read_at(priority, Location::caller(), f)
    }

    fn read_at<T>(
        &self,
        priority: Priority,
        at: &'static Location<'static>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        outside_runtime()?;
        let mut guard = self.lease(priority, at)?;
        read_on(&mut guard, self.pool.gate(), self.pool.acquire_timeout(), f)
    }

    fn lease(
        &self,
        priority: Priority,
        at: &'static Location<'static>,
    ) -> Result<Pooled<SqliteManager>> {
        let get = self.pool.readers().get_tracked(priority, at);
        Ok(self.handle.block_on(get)?)
    }

    /// Runs `f` on the writer lane and blocks for its result.
    pub fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        outside_runtime()?;
        self.handle.block_on(self.pool.write(f))
    }

    /// Runs `f` in a transaction on the writer lane and blocks for its result.
    pub fn transaction<T, F>(&self, mode: Mode, f: F) -> Result<T>
    where
        F: FnOnce(&mut Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        outside_runtime()?;
        self.handle.block_on(self.pool.transaction(mode, f))
    }

    /// [`SqlitePool::transaction_with_retry`], blocking.
    pub fn transaction_with_retry<T, F>(&self, mode: Mode, f: F) -> Result<T>
    where
        F: FnMut(&mut Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        outside_runtime()?;
        self.handle
            .block_on(self.pool.transaction_with_retry(mode, f))
    }

    /// `PRAGMA quick_check`.
    #[track_caller]
    pub fn quick_check(&self) -> Result<()> {
        outside_runtime()?;
        self.handle.block_on(self.pool.quick_check())
    }

    /// Closes the pool, waiting up to `deadline` for leased readers.
    pub fn close(&self, deadline: Duration) -> Result<CloseReport> {
        outside_runtime()?;
        Ok(self.handle.block_on(self.pool.close(deadline)))
    }
}

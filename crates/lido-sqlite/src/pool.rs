//! [`SqlitePool`]: one writer lane plus a lido-core pool of read-only readers.

use std::future::Future;
use std::panic::Location;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_core::{CloseReport, Pool, Priority};
use rusqlite::{Connection, Transaction};

use crate::cap::{self, Reserve};
use crate::database::Database;
use crate::error::{Error, Result};
use crate::exec::{self, Mode, Outcome};
use crate::manager::SqliteManager;
use crate::options::{Builder, Role, Source};
use crate::reads::Lane;
use crate::writer::Gate;

/// A SQLite database behind one FIFO writer lane and a pool of readers.
/// Cheap to clone: clones share everything.
///
/// * [`read`](Self::read) runs a closure on a read-only connection from a
///   [`lido_core::Pool`], on a blocking thread; reads run in parallel.
/// * [`write`](Self::write) and [`transaction`](Self::transaction) run on the
///   single writer connection, on its own thread, in arrival order, so
///   writers never fight over the write lock (no `SQLITE_BUSY` between them).
///
/// Closures never run on the async executor. A panic in one is caught: its
/// transaction rolls back, the call returns [`Error::Panic`], and the
/// connection goes back to the pool.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use lido_sqlite::{Mode, SqlitePool};
///
/// let db = SqlitePool::memory("pool_doc").build().await?;
/// db.write(|c| c.execute_batch("CREATE TABLE acct(id INTEGER PRIMARY KEY, cents INTEGER)")).await?;
/// db.transaction(Mode::Immediate, |tx| {
///     tx.execute("INSERT INTO acct VALUES (1, 100), (2, 0)", [])?;
///     tx.execute("UPDATE acct SET cents = cents - 40 WHERE id = 1", [])?;
///     tx.execute("UPDATE acct SET cents = cents + 40 WHERE id = 2", [])?;
///     Ok(())
/// })
/// .await?;
/// let total: i64 = db.read(|c| c.query_row("SELECT sum(cents) FROM acct", [], |r| r.get(0))).await?;
/// assert_eq!(total, 100);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqlitePool {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    readers: Pool<SqliteManager>,
    /// The reader threads that run reads, in arrival order.
    lane: Arc<Lane>,
    /// The writer lane and gate, shared with other pools on the same in-memory name.
    pub(crate) db: Arc<Database>,
    pub(crate) opts: Arc<Builder>,
    closed: AtomicBool,
    /// The reader permit reserved under a [`SqliteFiles`](crate::SqliteFiles) cap.
    reserve: Option<Arc<Reserve>>,
    /// Counters per query class (see `classes.rs`).
    pub(crate) tally: lido_core::ClassTally,
    /// Class calls' deadlines and their one timer (see `deadline.rs`).
    pub(crate) deadlines: crate::deadline::Deadlines,
    /// The result cache, when asked for (see `cache.rs`).
    pub(crate) cache: Option<crate::cache::store::ResultCache>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.lane.close();
        // Readers still connecting hold the reader pool alive; free the cap now.
        if let Some(r) = &self.reserve {
            r.close();
        }
    }
}

impl std::fmt::Debug for SqlitePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlitePool")
            .field("source", &self.inner.opts.source)
            .field("readers", &self.inner.readers.status())
            .field("reads_queued", &self.inner.lane.queued())
            .field("writes_queued", &self.inner.db.writer.queued())
            .finish()
    }
}

/// The current tokio runtime, or the error saying one is needed.
fn runtime() -> Result<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current()
        .map_err(|_| Error::Build(lido_core::BuildError::NoRuntime))
}

/// Runs the integrity check (when asked for) and the startup hook on the lane.
async fn startup(db: &Database, opts: &Builder) -> Result<()> {
    let hook = opts.on_startup.clone();
    let quick = opts.quick_check_on_open;
    if hook.is_none() && !quick {
        return Ok(());
    }
    db.writer
        .submit(opts.readers.acquire_timeout, move |c| {
            if quick {
                if let Err(e) = exec::integrity(c, "PRAGMA quick_check") {
                    return Outcome {
                        result: Err(e),
                        healthy: true,
                    };
                }
            }
            match hook {
                Some(hook) => exec::run_write(c, move |c| hook(c)),
                None => Outcome {
                    result: Ok(()),
                    healthy: true,
                },
            }
        })
        .await
        .map_err(|e| match e {
            Error::Sqlite(e) => Error::Startup(e),
            other => other,
        })?;
    tracing::info!(source = %opts.source.describe(), quick_check = quick, "lido-sqlite: startup done");
    Ok(())
}

impl Builder {
    /// Builds the pool: opens the writer, runs the startup hook, starts the
    /// writer thread and warms up `min_idle` readers.
    pub async fn build(self) -> Result<SqlitePool> {
        runtime()?;
        self.validate()?;
        let opts = Arc::new(self);
        let (permit, reserve) = match &opts.cap {
            Some(cap) => {
                let (p, r) = cap::acquire_pool(cap).await?;
                (Some(p), Some(r))
            }
            None => (None, None),
        };
        let db = Database::open(&opts, permit).await?;
        startup(&db, &opts).await?;
        let manager = SqliteManager::shared(Arc::clone(&opts), Role::Reader, reserve.clone());
        let readers = Pool::builder(manager)
            .config(opts.readers.clone())
            .build_lazy()?;
        let tally = lido_core::ClassTally::new(&opts.classes);
        let cache = opts.cache.map(crate::cache::store::ResultCache::new);
        let inner = Arc::new(Inner {
            tally,
            deadlines: Default::default(),
            cache,
            lane: Arc::new(Lane::new(opts.readers.max_size, opts.readers.lanes)),
            readers,
            db,
            opts,
            closed: AtomicBool::new(false),
            reserve,
        });
        inner.readers.warm_up().await?;
        tracing::info!(source = %inner.opts.source.describe(), max_readers = inner.opts.readers.max_size,
            "lido-sqlite: pool ready");
        Ok(SqlitePool { inner })
    }
}

impl SqlitePool {
    /// Configures a pool on a database file.
    pub fn file(path: impl AsRef<std::path::Path>) -> Builder {
        Builder::file(path)
    }

    /// Configures a pool on a named, shared in-memory database.
    pub fn memory(name: impl Into<String>) -> Builder {
        Builder::memory(name)
    }

    /// Configures a pool on `source`.
    pub fn builder(source: Source) -> Builder {
        Builder::new(source)
    }

    /// Runs `f` on a read-only connection, on a reader thread. Reads queue
    /// in arrival order for the pool's reader threads (at most `max_size`
    /// of them); a thread that finishes a read takes the next one at once
    /// with the reader it just gave back, leased from
    /// [`readers`](Self::readers) on that thread. Waits up to
    /// `acquire_timeout` for a thread to take it. `f` may open a
    /// transaction for a consistent snapshot (`conn.unchecked_transaction()`);
    /// whatever it leaves open is rolled back. Dropping the future withdraws
    /// a read still queued; a closure already running finishes. A leak report
    /// for a lease held past `leak_threshold` names the line that called `read`.
    #[track_caller]
    pub fn read<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send + '_
    where
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.read_at(Priority::Normal, Location::caller(), f)
    }

    /// [`read`](Self::read) in `priority`'s lane: queued reads of a higher
    /// priority run first, and the readers' [`LaneLimits`](lido_core::LaneLimits)
    /// (set with [`SqliteOptions::reader_config`](crate::SqliteOptions::reader_config))
    /// apply: readers reserved for `Critical` are never taken by
    /// `Background` reads, and a lane's share cap holds.
    ///
    /// ```
    /// # async fn demo(pool: lido_sqlite::SqlitePool) -> lido_sqlite::Result<()> {
    /// use lido_sqlite::lido_core::Priority;
    /// let n: i64 = pool
    ///     .read_with_priority(Priority::Critical, |c| c.query_row("SELECT 1", [], |r| r.get(0)))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn read_with_priority<T, F>(
        &self,
        priority: Priority,
        f: F,
    ) -> impl Future<Output = Result<T>> + Send + '_
    where
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.read_at(priority, Location::caller(), f)
    }

    async fn read_at<T, F>(
        &self,
        priority: Priority,
        at: &'static Location<'static>,
        f: F,
    ) -> Result<T>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.read_within(priority, at, self.acquire_timeout(), f)
            .await
    }

    /// A read waiting at most `wait` for a reader thread and a lease.
    pub(crate) async fn read_within<T, F>(
        &self,
        priority: Priority,
        at: &'static Location<'static>,
        wait: Duration,
        f: F,
    ) -> Result<T>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let gate = self.inner.db.gate.clone();
        let how = (gate, wait, at, priority);
        self.inner.lane.read(&self.inner.readers, how, f).await
    }

    /// Runs `f` on the writer connection in autocommit mode, after every
    /// write queued before it. Each statement commits on its own; use
    /// [`transaction`](Self::transaction) to group them. A transaction `f`
    /// leaves open is rolled back ([`Error::TransactionLeftOpen`]).
    ///
    /// Each statement takes the write lock as it starts, waiting up to
    /// `busy_timeout`. A closure that opens its own deferred transaction
    /// (`c.transaction()`), or writes while one of its queries is still
    /// being stepped, upgrades a read lock to a write lock instead and can
    /// get `SQLITE_BUSY` (see [`Mode`]); [`transaction`](Self::transaction)
    /// never does.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.submit(move |c| exec::run_write(c, f)).await
    }

    /// Runs `f` in a transaction on the writer lane: `BEGIN <mode>`, then
    /// `COMMIT` if `f` returns `Ok`, `ROLLBACK` if it returns `Err` or panics.
    /// Every mode takes the write lock at `BEGIN` (see [`Mode`]), so lido's
    /// own readers and writers never make it fail with `SQLITE_BUSY`.
    /// Nest savepoints with [`savepoint`](crate::savepoint) or `tx.savepoint()`.
    pub async fn transaction<T, F>(&self, mode: Mode, f: F) -> Result<T>
    where
        F: FnOnce(&mut Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.submit(move |c| exec::run_tx(c, mode, f)).await
    }

    /// Like [`transaction`](Self::transaction), but when `f` fails with
    /// `SQLITE_BUSY` or `SQLITE_LOCKED` (another process or a connection
    /// outside this pool held the lock past `busy_timeout`) the transaction
    /// is rolled back and `f` runs again, after a short pause, for up to
    /// `acquire_timeout`. `f` must be safe to re-run: its database effects
    /// are rolled back, anything else it does is not.
    pub async fn transaction_with_retry<T, F>(&self, mode: Mode, f: F) -> Result<T>
    where
        F: FnMut(&mut Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let limit = self.acquire_timeout();
        self.submit(move |c| exec::run_tx_retry(c, mode, f, limit))
            .await
    }

    async fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Outcome<T> + Send + 'static,
    ) -> Result<T> {
        self.submit_within(self.acquire_timeout(), f).await
    }

    /// Queues `f` on the writer lane, waiting at most `wait` for its turn.
    pub(crate) async fn submit_within<T: Send + 'static>(
        &self,
        wait: Duration,
        f: impl FnOnce(&mut Connection) -> Outcome<T> + Send + 'static,
    ) -> Result<T> {
        runtime()?;
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.inner.db.writer.submit(wait, f).await
    }

    /// `PRAGMA quick_check` on a reader: `Ok` when SQLite answers `ok`,
    /// [`Error::Integrity`] with its findings otherwise.
    #[track_caller]
    pub fn quick_check(&self) -> impl Future<Output = Result<()>> + Send + '_ {
        self.check_pragma("PRAGMA quick_check")
    }

    /// `PRAGMA integrity_check` (slower, more thorough than [`quick_check`](Self::quick_check)).
    #[track_caller]
    pub fn integrity_check(&self) -> impl Future<Output = Result<()>> + Send + '_ {
        self.check_pragma("PRAGMA integrity_check")
    }

    #[track_caller]
    fn check_pragma(&self, sql: &'static str) -> impl Future<Output = Result<()>> + Send + '_ {
        let read = self.read(move |c| Ok(exec::integrity_rows(c, sql)));
        async move { exec::verdict(read.await?) }
    }

    /// Runs `SELECT 1` on a reader and on the writer; returns the reader's
    /// round trip (queue, lease and reader-thread hop included).
    #[track_caller]
    pub fn ping(&self) -> impl Future<Output = Result<Duration>> + Send + '_ {
        let started = std::time::Instant::now();
        let read = self.read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)));
        async move {
            read.await?;
            let took = started.elapsed();
            self.write(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
                .await?;
            Ok(took)
        }
    }

    /// The lido-core pool of readers: status, stats, resize, breaker state.
    /// [`read`](Self::read) leases from it on a reader thread; reads still
    /// waiting for a thread are counted by [`reads_queued`](Self::reads_queued),
    /// not by its `status().waiters`.
    pub fn readers(&self) -> &Pool<SqliteManager> {
        &self.inner.readers
    }

    /// Reads waiting for a reader thread (they lease a reader once one takes
    /// them, so the readers' `status().waiters` does not count them).
    pub fn reads_queued(&self) -> usize {
        self.inner.lane.queued()
    }

    /// Writes waiting for the writer lane (of every pool sharing it).
    pub fn writes_queued(&self) -> usize {
        self.inner.db.writer.queued()
    }

    /// Whether both handles are clones of one pool.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether both pools write through the same writer lane (clones, or
    /// pools on the same in-memory name).
    pub fn shares_writer_with(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner.db, &other.inner.db)
    }

    /// Where the database lives.
    pub fn source(&self) -> &Source {
        &self.inner.opts.source
    }

    /// Closes the pool: readers as they come back (waiting up to
    /// `deadline`), then the writer after the writes already queued. A pool
    /// sharing its in-memory database's lane with other open pools waits
    /// for the queued writes and leaves the lane to them.
    pub async fn close(&self, deadline: Duration) -> CloseReport {
        self.inner.closed.store(true, Ordering::Release);
        let report = self.inner.readers.close(deadline).await;
        let db = &self.inner.db;
        if Arc::strong_count(db) == 1 {
            db.shutdown().await;
        } else {
            let done = |_: &mut Connection| Outcome {
                result: Ok(()),
                healthy: true,
            };
            let _ = db.writer.submit(deadline, done).await;
        }
        if let Some(r) = &self.inner.reserve {
            r.close();
        }
        report
    }

    pub(crate) fn gate(&self) -> &Gate {
        &self.inner.db.gate
    }

    pub(crate) fn acquire_timeout(&self) -> Duration {
        self.inner.opts.readers.acquire_timeout
    }
}

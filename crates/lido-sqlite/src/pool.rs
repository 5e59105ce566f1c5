//! [`SqlitePool`]: one writer lane plus a lido-core pool of read-only readers.

use std::sync::Arc;
use std::time::Duration;

use lido_core::{CloseReport, Pool, Pooled};
use parking_lot::Mutex;
use rusqlite::{Connection, Transaction};

use crate::cap::{self, Reserve};
use crate::connect;
use crate::error::{ConnectError, Error, Result};
use crate::exec::{self, Mode, Outcome};
use crate::manager::SqliteManager;
use crate::options::{Builder, Role, Source};
use crate::writer::{Gate, Writer};

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
    writer: Writer,
    gate: Gate,
    opts: Arc<Builder>,
    /// Keeps a shared in-memory database alive while the pool exists.
    anchor: Mutex<Option<Connection>>,
    /// The reader permit reserved under a [`SqliteFiles`](crate::SqliteFiles) cap.
    reserve: Option<Arc<Reserve>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
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
            .field("writes_queued", &self.inner.writer.queued())
            .finish()
    }
}

/// The current tokio runtime, or the error saying one is needed.
fn runtime() -> Result<tokio::runtime::Handle> {
    tokio::runtime::Handle::try_current()
        .map_err(|_| Error::Build(lido_core::BuildError::NoRuntime))
}

/// Runs `f` on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f).await?
}

/// Opens the writer (and the anchor of an in-memory database) and runs the startup hook.
fn open_writer(opts: &Builder) -> Result<(Connection, Option<Connection>)> {
    let anchor = match &opts.source {
        Source::Memory(name) => Some(connect::open_anchor(name)?),
        Source::File(_) => None,
    };
    let mut conn = connect::open(opts, Role::Writer)?;
    if let Some(hook) = opts.on_startup.clone() {
        let out = exec::run_write(&mut conn, move |c| hook(c));
        out.result.map_err(|e| match e {
            Error::Sqlite(e) => Error::Startup(e),
            other => other,
        })?;
        tracing::info!(source = %opts.source.describe(), "lido-sqlite: startup hook done");
    }
    Ok((conn, anchor))
}

pub(crate) async fn build(opts: Builder) -> Result<SqlitePool> {
    runtime()?;
    opts.validate()?;
    let opts = Arc::new(opts);
    let (permit, reserve) = match &opts.cap {
        Some(cap) => {
            let (p, r) = cap::acquire_pool(cap).await?;
            (Some(p), Some(r))
        }
        None => (None, None),
    };
    let o = Arc::clone(&opts);
    let (conn, anchor) = tokio::task::spawn_blocking(move || open_writer(&o))
        .await
        .map_err(|e| match e.try_into_panic() {
            Ok(p) => Error::Connect(ConnectError::Panic(crate::error::panic_message(&*p))),
            Err(e) => Error::Join(e),
        })??;
    let gate: Gate = opts
        .source
        .is_memory()
        .then(|| Arc::new(parking_lot::RwLock::new(())));
    let writer = Writer::start(conn, Arc::clone(&opts), gate.clone(), permit)?;
    let manager = SqliteManager::shared(Arc::clone(&opts), Role::Reader, reserve.clone());
    let readers = Pool::builder(manager)
        .config(opts.readers.clone())
        .build_lazy()?;
    let inner = Arc::new(Inner {
        readers,
        writer,
        gate,
        opts,
        anchor: Mutex::new(anchor),
        reserve,
    });
    inner.readers.warm_up().await?;
    tracing::info!(source = %inner.opts.source.describe(), max_readers = inner.opts.readers.max_size,
        "lido-sqlite: pool ready");
    Ok(SqlitePool { inner })
}

/// Runs a read closure on a leased reader (blocking thread or caller thread).
pub(crate) fn read_on<T>(
    guard: &mut Pooled<SqliteManager>,
    gate: &Gate,
    wait: Duration,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T> {
    let _shared = match gate {
        Some(g) => Some(g.try_read_for(wait).ok_or(Error::WriterTimeout {
            waited: wait,
            queued: 0,
        })?),
        None => None,
    };
    let Some(conn) = guard.conn.as_ref() else {
        guard.discard_on_drop();
        return Err(Error::Connect(ConnectError::Lost));
    };
    let Outcome { result, healthy } = exec::run_read(conn, f);
    if !healthy {
        guard.broken = true;
    }
    result
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

    /// Runs `f` on a read-only connection, on a blocking thread. Waits up to
    /// `acquire_timeout` for a reader (on that blocking thread, so a returned
    /// reader passes straight to it). `f` may open a transaction for a
    /// consistent snapshot (`conn.unchecked_transaction()`); whatever it
    /// leaves open is rolled back. Dropping the future stops the wait; a
    /// closure already running finishes.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let readers = self.inner.readers.clone();
        let gate = self.inner.gate.clone();
        let wait = self.inner.opts.readers.acquire_timeout;
        let handle = runtime()?;
        // Dropped with this future: a caller that gives up stops the wait.
        let (_caller, gone) = tokio::sync::oneshot::channel::<()>();
        blocking(move || {
            // Waiting here, not on the executor, hands a returned reader
            // straight to this thread: one thread switch fewer per read
            // when callers queue for readers.
            let leased = handle.block_on(async {
                tokio::select! {
                    biased;
                    got = readers.get() => Some(got),
                    _ = gone => None,
                }
            });
            let mut guard = leased.ok_or(Error::Closed)??;
            read_on(&mut guard, &gate, wait, f)
        })
        .await
    }

    /// Runs `f` on the writer connection in autocommit mode, after every
    /// write queued before it. Each statement commits on its own; use
    /// [`transaction`](Self::transaction) to group them. A transaction `f`
    /// leaves open is rolled back ([`Error::TransactionLeftOpen`]).
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        runtime()?;
        self.inner
            .writer
            .submit(move |c| exec::run_write(c, f))
            .await
    }

    /// Runs `f` in a transaction on the writer lane: `BEGIN <mode>`, then
    /// `COMMIT` if `f` returns `Ok`, `ROLLBACK` if it returns `Err` or panics.
    /// Nest savepoints with [`savepoint`](crate::savepoint) or `tx.savepoint()`.
    pub async fn transaction<T, F>(&self, mode: Mode, f: F) -> Result<T>
    where
        F: FnOnce(&mut Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        runtime()?;
        self.inner
            .writer
            .submit(move |c| exec::run_tx(c, mode, f))
            .await
    }

    /// Like [`transaction`](Self::transaction), but when `f` fails with
    /// `SQLITE_BUSY` or `SQLITE_LOCKED` (a [`Mode::Deferred`] upgrade that
    /// lost a race, another process holding the lock) the transaction is
    /// rolled back and `f` runs again, after a short pause, for up to
    /// `acquire_timeout`. `f` must be safe to re-run: its database effects
    /// are rolled back, anything else it does is not.
    pub async fn transaction_with_retry<T, F>(&self, mode: Mode, f: F) -> Result<T>
    where
        F: FnMut(&mut Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        runtime()?;
        let limit = self.inner.opts.readers.acquire_timeout;
        self.inner
            .writer
            .submit(move |c| exec::run_tx_retry(c, mode, f, limit))
            .await
    }

    /// `PRAGMA quick_check` on a reader: `Ok` when SQLite answers `ok`,
    /// [`Error::Integrity`] with its findings otherwise.
    pub async fn quick_check(&self) -> Result<()> {
        self.check_pragma("PRAGMA quick_check").await
    }

    /// `PRAGMA integrity_check` (slower, more thorough than [`quick_check`](Self::quick_check)).
    pub async fn integrity_check(&self) -> Result<()> {
        self.check_pragma("PRAGMA integrity_check").await
    }

    async fn check_pragma(&self, sql: &'static str) -> Result<()> {
        let rows = self
            .read(move |c| {
                let mut stmt = c.prepare(sql)?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        if rows.len() == 1 && rows[0] == "ok" {
            Ok(())
        } else {
            Err(Error::Integrity(rows))
        }
    }

    /// Runs `SELECT 1` on a reader and on the writer; returns the reader's
    /// round trip (lease and blocking-thread hop included).
    pub async fn ping(&self) -> Result<Duration> {
        let started = std::time::Instant::now();
        self.read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
            .await?;
        let took = started.elapsed();
        self.write(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
            .await?;
        Ok(took)
    }

    /// The lido-core pool of readers: status, stats, resize, breaker state.
    pub fn readers(&self) -> &Pool<SqliteManager> {
        &self.inner.readers
    }

    /// Writes waiting for the writer lane.
    pub fn writes_queued(&self) -> usize {
        self.inner.writer.queued()
    }

    /// Whether both handles are clones of one pool.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Where the database lives.
    pub fn source(&self) -> &Source {
        &self.inner.opts.source
    }

    /// Closes the pool: readers as they come back (waiting up to
    /// `deadline`), then the writer after the writes already queued.
    pub async fn close(&self, deadline: Duration) -> CloseReport {
        let report = self.inner.readers.close(deadline).await;
        self.inner.writer.shutdown().await;
        drop(self.inner.anchor.lock().take());
        if let Some(r) = &self.inner.reserve {
            r.close();
        }
        report
    }

    pub(crate) fn gate(&self) -> &Gate {
        &self.inner.gate
    }

    pub(crate) fn acquire_timeout(&self) -> Duration {
        self.inner.opts.readers.acquire_timeout
    }
}

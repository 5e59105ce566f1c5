//! Running closures on a connection: panics caught, transactions committed
//! or rolled back, and nothing left open for the next user of the connection.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::error::{from_closure, panic_message, Error, Result};

/// How a transaction takes its locks (`BEGIN DEFERRED | IMMEDIATE | EXCLUSIVE`).
///
/// Every mode runs on the writer lane, so writers never race each other for
/// the write lock inside one process. Against other connections the mode
/// matters: `Immediate` and `Exclusive` take the write lock at `BEGIN`
/// (waiting up to `busy_timeout` for it), `Deferred` at its first write. In
/// WAL mode `Exclusive` behaves like `Immediate` (readers keep reading); in
/// rollback-journal modes it also keeps other connections from reading until
/// it ends.
///
/// **A `Deferred` transaction that reads before it writes can fail with
/// `SQLITE_BUSY`** when the lock is held at the moment it upgrades: SQLite
/// never runs the busy handler for a read-to-write upgrade. With lido alone
/// on the file this is rare but real (a reader briefly takes the WAL write
/// lock to re-read a WAL-index header the writer was updating: about 1 in
/// 10 000 upgrades under heavy reading). Prefer `Immediate`, which costs
/// nothing extra on the writer lane, or use
/// [`SqlitePool::transaction_with_retry`](crate::SqlitePool::transaction_with_retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// `BEGIN DEFERRED`: locks are taken when first needed.
    Deferred,
    /// `BEGIN IMMEDIATE`: the write lock is taken at once (the default).
    #[default]
    Immediate,
    /// `BEGIN EXCLUSIVE`: the write lock at once; in rollback-journal modes, no readers either.
    Exclusive,
}

impl Mode {
    fn behavior(self) -> TransactionBehavior {
        match self {
            Self::Deferred => TransactionBehavior::Deferred,
            Self::Immediate => TransactionBehavior::Immediate,
            Self::Exclusive => TransactionBehavior::Exclusive,
        }
    }
}

/// A closure's result and whether its connection is still fit for reuse.
pub(crate) struct Outcome<T> {
    pub result: Result<T>,
    pub healthy: bool,
}

/// Rolls back anything the closure left open. Returns (was open, healthy).
fn settle(conn: &Connection) -> (bool, bool) {
    if conn.is_autocommit() {
        return (false, true);
    }
    if let Err(e) = conn.execute_batch("ROLLBACK") {
        tracing::warn!(error = %e, "lido-sqlite: rollback of a transaction left open failed");
    }
    (true, conn.is_autocommit())
}

type Caught<T> = std::thread::Result<rusqlite::Result<T>>;

fn finish<T>(out: Caught<T>, left_open: bool) -> Result<T> {
    match out {
        Err(p) => {
            let message = panic_message(&*p);
            tracing::warn!(%message, "lido-sqlite: closure panicked; rolled back");
            Err(Error::Panic { message })
        }
        Ok(Err(e)) => Err(from_closure(e)),
        Ok(Ok(_)) if left_open => {
            tracing::warn!("lido-sqlite: closure left a transaction open; rolled back");
            Err(Error::TransactionLeftOpen)
        }
        Ok(Ok(v)) => Ok(v),
    }
}

/// Runs a read closure.
pub(crate) fn run_read<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Outcome<T> {
    let out = catch_unwind(AssertUnwindSafe(|| f(conn)));
    let (left_open, healthy) = settle(conn);
    Outcome {
        result: finish(out, left_open),
        healthy,
    }
}

/// Runs a write closure in autocommit mode.
pub(crate) fn run_write<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
) -> Outcome<T> {
    let out = catch_unwind(AssertUnwindSafe(|| f(&mut *conn)));
    let (left_open, healthy) = settle(conn);
    Outcome {
        result: finish(out, left_open),
        healthy,
    }
}

/// Runs `f` in a transaction: commit on `Ok`, rollback on `Err` or panic.
pub(crate) fn run_tx<T>(
    conn: &mut Connection,
    mode: Mode,
    f: impl FnOnce(&mut Transaction<'_>) -> rusqlite::Result<T>,
) -> Outcome<T> {
    let result = match Transaction::new(conn, mode.behavior()) {
        Ok(mut tx) => {
            let out = catch_unwind(AssertUnwindSafe(|| f(&mut tx)));
            end_tx(tx, out)
        }
        Err(e) => Err(Error::Sqlite(e)),
    };
    let (_, healthy) = settle(conn);
    Outcome { result, healthy }
}

/// Like [`run_tx`], but re-runs `f` (after rolling back) while it fails with
/// `SQLITE_BUSY`/`SQLITE_LOCKED`, with a short doubling pause, until `limit`
/// has passed since the first attempt.
pub(crate) fn run_tx_retry<T>(
    conn: &mut Connection,
    mode: Mode,
    mut f: impl FnMut(&mut Transaction<'_>) -> rusqlite::Result<T>,
    limit: Duration,
) -> Outcome<T> {
    let deadline = Instant::now() + limit;
    let mut attempt: u32 = 0;
    loop {
        let out = run_tx(conn, mode, &mut f);
        let now = Instant::now();
        let retry = out.healthy && now < deadline && matches!(&out.result, Err(e) if e.is_busy());
        if !retry {
            return out;
        }
        attempt += 1;
        tracing::debug!(
            attempt,
            "lido-sqlite: transaction hit SQLITE_BUSY; re-running it"
        );
        if attempt > 1 {
            let pause = Duration::from_millis(1 << (attempt - 2).min(6));
            std::thread::sleep(pause.min(deadline - now));
        }
    }
}

fn end_tx<T>(tx: Transaction<'_>, out: Caught<T>) -> Result<T> {
    match out {
        Ok(Ok(v)) => tx.commit().map(|()| v).map_err(Error::Sqlite),
        other => {
            if let Err(e) = tx.rollback() {
                tracing::warn!(error = %e, "lido-sqlite: rollback failed");
            }
            finish(other, false)
        }
    }
}

/// Runs `f` inside a savepoint: released on `Ok`, rolled back to (keeping
/// the outer transaction) on `Err` or panic. Savepoints nest.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use lido_sqlite::{savepoint, Mode, SqlitePool};
///
/// let db = SqlitePool::memory("savepoint_doc").build().await?;
/// db.write(|c| c.execute_batch("CREATE TABLE t(x)")).await?;
/// db.transaction(Mode::Immediate, |tx| {
///     tx.execute("INSERT INTO t VALUES (1)", [])?;
///     let inner = savepoint(tx, |sp| {
///         sp.execute("INSERT INTO t VALUES (2)", [])?;
///         Err::<(), _>(rusqlite::Error::QueryReturnedNoRows)
///     });
///     assert!(inner.is_err()); // row 2 is gone, row 1 stays
///     Ok(())
/// })
/// .await?;
/// let n: i64 = db.read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))).await?;
/// assert_eq!(n, 1);
/// # Ok(()) }
/// ```
pub fn savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.execute_batch("SAVEPOINT lido_sp")?;
    let mut guard = SavepointGuard { conn, done: false };
    let out = f(conn);
    guard.done = true;
    match out {
        Ok(v) => {
            conn.execute_batch("RELEASE lido_sp")?;
            Ok(v)
        }
        Err(e) => {
            rollback_to(conn);
            Err(e)
        }
    }
}

/// Rolls the innermost `lido_sp` back if `f` unwinds.
struct SavepointGuard<'a> {
    conn: &'a Connection,
    done: bool,
}

impl Drop for SavepointGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            rollback_to(self.conn);
        }
    }
}

fn rollback_to(conn: &Connection) {
    if let Err(e) = conn.execute_batch("ROLLBACK TO lido_sp; RELEASE lido_sp") {
        tracing::warn!(error = %e, "lido-sqlite: rollback to savepoint failed");
    }
}

//! Running closures on a connection: panics caught, transactions committed
//! or rolled back, and nothing left open for the next user of the connection.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};

use crate::error::{from_closure, panic_message, Error, Result};

/// How a transaction takes its locks (`BEGIN DEFERRED | IMMEDIATE | EXCLUSIVE`).
///
/// Every mode runs on the writer lane, so writers in this process never race
/// each other for the write lock, and each mode takes SQLite's write lock
/// **at `BEGIN`**, waiting up to `busy_timeout` for it:
///
/// * `Immediate`: `BEGIN IMMEDIATE`.
/// * `Deferred`: also runs as `BEGIN IMMEDIATE` on the lane. SQLite's own
///   `BEGIN DEFERRED` takes the write lock at the first write, and that
///   read-to-write upgrade is the one place SQLite returns `SQLITE_BUSY`
///   without running the busy handler: any moment another connection holds
///   the WAL write lock — even a reader of this pool briefly taking it to
///   re-read a WAL-index header the writer was updating — the upgrade fails.
///   Since the lane already runs one write at a time, taking the lock at
///   `BEGIN` changes nothing for this process's readers and writers, and
///   callers never see `SQLITE_BUSY` from lido's own connections. What does
///   change is visible only to *other* processes or connections on the file:
///   they cannot start a write while a `Deferred` transaction is still
///   reading (they wait their busy timeout, as for `Immediate`). For SQLite's
///   literal `BEGIN DEFERRED`, open it yourself in
///   [`SqlitePool::write`](crate::SqlitePool::write) (`c.transaction()`)
///   and be ready for `SQLITE_BUSY` on its first write.
/// * `Exclusive`: `BEGIN EXCLUSIVE`. In WAL mode it behaves like `Immediate`
///   (readers keep reading); in rollback-journal modes it also keeps other
///   connections from reading until it ends.
///
/// `SQLITE_BUSY` can still reach a caller when another process (or a
/// connection outside this pool) holds the write lock for longer than
/// `busy_timeout`; [`SqlitePool::transaction_with_retry`](crate::SqlitePool::transaction_with_retry)
/// re-runs a transaction then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Runs as `BEGIN IMMEDIATE` on the writer lane (see the type's docs).
    Deferred,
    /// `BEGIN IMMEDIATE`: the write lock is taken at once (the default).
    #[default]
    Immediate,
    /// `BEGIN EXCLUSIVE`: the write lock at once; in rollback-journal modes, no readers either.
    Exclusive,
}

impl Mode {
    /// The `BEGIN` the writer lane issues for this mode.
    fn behavior(self) -> TransactionBehavior {
        match self {
            Self::Deferred | Self::Immediate => TransactionBehavior::Immediate,
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

/// Runs an integrity pragma (`quick_check`, `integrity_check`): `Ok` when
/// SQLite answers `ok`, [`Error::Integrity`] with its findings otherwise.
pub(crate) fn integrity(conn: &Connection, sql: &str) -> Result<()> {
    verdict(integrity_rows(conn, sql))
}

/// What an integrity pragma returned.
pub(crate) fn integrity_rows(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// `ok` passes; findings, or a damaged page that stopped the check, are [`Error::Integrity`].
pub(crate) fn verdict(rows: rusqlite::Result<Vec<String>>) -> Result<()> {
    match rows {
        Ok(rows) if rows.len() == 1 && rows[0] == "ok" => Ok(()),
        Ok(rows) => Err(Error::Integrity(rows)),
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseCorrupt) => {
            Err(Error::Integrity(vec![e.to_string()]))
        }
        Err(e) => Err(Error::Sqlite(e)),
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

//! Transaction modes, savepoints, rollback on error and panic.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lido_sqlite::rusqlite::{self, Connection, ErrorCode};
use lido_sqlite::{abort, savepoint, Error, JournalMode, Mode, SqlitePool};

async fn file_db(dir: &Path, mode: JournalMode) -> (SqlitePool, PathBuf) {
    let path = dir.join("tx.db");
    let db = SqlitePool::file(&path)
        .journal_mode(mode)
        .readers(1)
        .on_startup(|c| c.execute_batch("CREATE TABLE t(x INTEGER)"))
        .build()
        .await
        .expect("build");
    (db, path)
}

/// A second, raw connection that never waits for locks.
fn raw(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(Duration::ZERO)?;
    Ok(c)
}

fn code(r: rusqlite::Result<()>) -> Option<ErrorCode> {
    r.err().and_then(|e| e.sqlite_error_code())
}

/// Whether a raw connection can take the write lock now (released at once).
fn can_lock_for_write(path: &Path) -> rusqlite::Result<Option<ErrorCode>> {
    let c = raw(path)?;
    let r = c.execute_batch("BEGIN IMMEDIATE; ROLLBACK");
    Ok(code(r))
}

fn can_read(path: &Path) -> rusqlite::Result<Option<ErrorCode>> {
    let c = raw(path)?;
    let r = c.query_row("SELECT count(*) FROM t", [], |_| Ok(()));
    Ok(code(r))
}

async fn count(db: &SqlitePool) -> i64 {
    db.read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
        .await
        .expect("count")
}

#[tokio::test]
async fn immediate_takes_the_write_lock_at_begin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, path) = file_db(dir.path(), JournalMode::Wal).await;
    let p = path.clone();
    let seen = db
        .transaction(Mode::Immediate, move |_tx| can_lock_for_write(&p))
        .await
        .expect("tx");
    assert_eq!(
        seen,
        Some(ErrorCode::DatabaseBusy),
        "locked before any write"
    );
    assert_eq!(
        can_lock_for_write(&path).expect("raw"),
        None,
        "released at commit"
    );
}

/// On the writer lane `Deferred` runs as `BEGIN IMMEDIATE` (see `Mode`): the
/// write lock is held from `BEGIN`, so there is no read-to-write upgrade to
/// fail with `SQLITE_BUSY`.
#[tokio::test]
async fn deferred_takes_the_write_lock_at_begin_on_the_lane() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, path) = file_db(dir.path(), JournalMode::Wal).await;
    let p = path.clone();
    let (before, after) = db
        .transaction(Mode::Deferred, move |tx| {
            let before = can_lock_for_write(&p)?;
            tx.execute("INSERT INTO t VALUES (1)", [])?;
            let after = can_lock_for_write(&p)?;
            Ok((before, after))
        })
        .await
        .expect("tx");
    assert_eq!(
        before,
        Some(ErrorCode::DatabaseBusy),
        "locked before any write"
    );
    assert_eq!(after, Some(ErrorCode::DatabaseBusy), "and after it");
    assert_eq!(
        can_lock_for_write(&path).expect("raw"),
        None,
        "released at commit"
    );
    assert_eq!(count(&db).await, 1);
}

#[tokio::test]
async fn exclusive_in_wal_mode_still_lets_readers_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, path) = file_db(dir.path(), JournalMode::Wal).await;
    let p = path.clone();
    let (write, read) = db
        .transaction(Mode::Exclusive, move |tx| {
            tx.execute("INSERT INTO t VALUES (1)", [])?;
            Ok((can_lock_for_write(&p)?, can_read(&p)?))
        })
        .await
        .expect("tx");
    assert_eq!(write, Some(ErrorCode::DatabaseBusy));
    assert_eq!(
        read, None,
        "WAL: EXCLUSIVE behaves like IMMEDIATE, readers go on"
    );
}

#[tokio::test]
async fn exclusive_blocks_readers_in_rollback_journal_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, path) = file_db(dir.path(), JournalMode::Delete).await;
    let p = path.clone();
    let (write, read) = db
        .transaction(Mode::Exclusive, move |_tx| {
            Ok((can_lock_for_write(&p)?, can_read(&p)?))
        })
        .await
        .expect("tx");
    assert_eq!(write, Some(ErrorCode::DatabaseBusy));
    assert_eq!(
        read,
        Some(ErrorCode::DatabaseBusy),
        "no readers during EXCLUSIVE"
    );

    let p = path.clone();
    let read = db
        .transaction(Mode::Immediate, move |tx| {
            tx.execute("INSERT INTO t VALUES (1)", [])?;
            can_read(&p)
        })
        .await
        .expect("tx");
    assert_eq!(
        read, None,
        "IMMEDIATE (RESERVED lock) still lets readers read"
    );
}

#[tokio::test]
async fn savepoint_rollback_keeps_the_outer_transaction() {
    let db = SqlitePool::memory("tx_savepoints")
        .build()
        .await
        .expect("build");
    db.write(|c| c.execute_batch("CREATE TABLE t(x INTEGER)"))
        .await
        .expect("schema");
    db.transaction(Mode::Immediate, |tx| {
        tx.execute("INSERT INTO t VALUES (1)", [])?;
        let failed = savepoint(tx, |sp| {
            sp.execute("INSERT INTO t VALUES (2)", [])?;
            Err::<(), _>(rusqlite::Error::QueryReturnedNoRows)
        });
        assert!(failed.is_err());
        savepoint(tx, |sp| {
            sp.execute("INSERT INTO t VALUES (3)", [])?;
            let inner = savepoint(sp, |sp2| {
                sp2.execute("INSERT INTO t VALUES (4)", [])?;
                Err::<(), _>(rusqlite::Error::QueryReturnedNoRows)
            });
            assert!(inner.is_err());
            sp.execute("INSERT INTO t VALUES (5)", [])?;
            Ok(())
        })?;
        // rusqlite's own savepoints work on the same transaction.
        let sp = tx.savepoint()?;
        sp.execute("INSERT INTO t VALUES (6)", [])?;
        drop(sp); // dropped without commit: rolled back
        Ok(())
    })
    .await
    .expect("tx");
    let rows: Vec<i64> = crate::column(&db, "SELECT x FROM t ORDER BY x").await;
    assert_eq!(rows, vec![1, 3, 5]);
}

#[tokio::test]
async fn err_and_abort_roll_back() {
    let db = SqlitePool::memory("tx_err").build().await.expect("build");
    db.write(|c| c.execute_batch("CREATE TABLE t(x INTEGER)"))
        .await
        .expect("schema");
    let err = db
        .transaction(Mode::Immediate, |tx| {
            tx.execute("INSERT INTO t VALUES (1)", [])?;
            tx.execute("INSERT INTO nope VALUES (1)", [])?;
            Ok(())
        })
        .await
        .expect_err("missing table");
    assert!(matches!(err, Error::Sqlite(_)), "{err:?}");
    let err = db
        .transaction(Mode::Deferred, |tx| -> rusqlite::Result<()> {
            tx.execute("INSERT INTO t VALUES (2)", [])?;
            Err(abort(std::io::Error::other("business rule")))
        })
        .await
        .expect_err("aborted");
    match err {
        Error::Aborted(e) => assert_eq!(e.to_string(), "business rule"),
        other => panic!("expected Aborted, got {other:?}"),
    }
    let n: i64 = db
        .read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
        .await
        .expect("count");
    assert_eq!(n, 0);
}

#[tokio::test]
async fn panics_roll_back_and_do_not_poison_the_pool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, _path) = file_db(dir.path(), JournalMode::Wal).await;
    let err = db
        .transaction(Mode::Immediate, |tx| -> rusqlite::Result<()> {
            tx.execute("INSERT INTO t VALUES (1)", [])?;
            panic!("boom in a transaction");
        })
        .await
        .expect_err("panicked");
    assert!(
        matches!(&err, Error::Panic { message } if message.contains("boom")),
        "{err:?}"
    );

    let err = db
        .write(|c| -> rusqlite::Result<()> {
            c.execute_batch("BEGIN; INSERT INTO t VALUES (2);")?;
            panic!("boom in a write");
        })
        .await
        .expect_err("panicked");
    assert!(matches!(err, Error::Panic { .. }));

    // The single reader survives a panic with a transaction open.
    let err = db
        .read(|c| -> rusqlite::Result<()> {
            c.execute_batch("BEGIN")?;
            panic!("boom in a read");
        })
        .await
        .expect_err("panicked");
    assert!(matches!(err, Error::Panic { .. }));

    assert_eq!(count(&db).await, 0, "nothing from the panicking closures");
    db.write(|c| c.execute("INSERT INTO t VALUES (3)", []))
        .await
        .expect("writer still works");
    assert_eq!(
        count(&db).await,
        1,
        "the reader sees new commits (no stale snapshot)"
    );
}

#[tokio::test]
async fn a_transaction_left_open_is_rolled_back_and_reported() {
    let db = SqlitePool::memory("tx_left_open")
        .build()
        .await
        .expect("build");
    db.write(|c| c.execute_batch("CREATE TABLE t(x INTEGER)"))
        .await
        .expect("schema");
    let err = db
        .write(|c| c.execute_batch("BEGIN; INSERT INTO t VALUES (1);"))
        .await
        .expect_err("left open");
    assert!(matches!(err, Error::TransactionLeftOpen), "{err:?}");
    let n: i64 = db
        .read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
        .await
        .expect("count");
    assert_eq!(n, 0);
}

#[tokio::test]
async fn readers_are_read_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, _path) = file_db(dir.path(), JournalMode::Wal).await;
    let err = db
        .read(|c| c.execute("INSERT INTO t VALUES (1)", []))
        .await
        .expect_err("read-only");
    assert_eq!(err.sqlite_code(), Some(ErrorCode::ReadOnly), "{err:?}");
}

/// SQLITE_BUSY still comes from outside the pool: another connection holding
/// the write lock past `busy_timeout`. `transaction_with_retry` waits it out.
#[tokio::test]
async fn a_lock_held_outside_past_busy_timeout_gives_busy_and_retry_waits_it_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tx.db");
    let db = SqlitePool::file(&path)
        .readers(1)
        .busy_timeout(Duration::from_millis(50))
        .on_startup(|c| c.execute_batch("CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (0)"))
        .build()
        .await
        .expect("build");
    let rmw = |tx: &mut rusqlite::Transaction<'_>| {
        let n: i64 = tx.query_row("SELECT max(x) FROM t", [], |r| r.get(0))?;
        tx.execute("INSERT INTO t VALUES (?1)", [n + 1])?;
        Ok(())
    };
    // Another connection holds the write lock until told to let go.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || -> rusqlite::Result<()> {
        let c = raw(&path)?;
        c.execute_batch("BEGIN IMMEDIATE")?;
        let _ = locked_tx.send(());
        let _ = release_rx.recv();
        c.execute_batch("COMMIT")
    });
    locked_rx.recv().expect("holder locked");

    for mode in [Mode::Deferred, Mode::Immediate, Mode::Exclusive] {
        let err = db
            .transaction(mode, rmw)
            .await
            .expect_err("the lock is taken for longer than busy_timeout");
        assert!(err.is_busy(), "{mode:?}: {err:?}");
    }

    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&runs);
    let retried = tokio::spawn({
        let db = db.clone();
        async move {
            db.transaction_with_retry(Mode::Deferred, move |tx| {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                rmw(tx)
            })
            .await
        }
    });
    // Let go a while after the retrying call started (it waits either way).
    tokio::time::sleep(Duration::from_millis(200)).await;
    release_tx.send(()).expect("release");
    retried
        .await
        .expect("task")
        .expect("re-run until the lock is free");
    holder.join().expect("holder thread").expect("holder");
    assert_eq!(
        runs.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "BEGIN failed until the lock was free; the body ran once"
    );
    assert_eq!(count(&db).await, 2, "exactly one row added");
}

/// What a reader re-reading the WAL-index header does for an instant — hold
/// the WAL write lock — done here for 100 ms by an outside connection. SQLite
/// never waits for that lock when a transaction upgrades from reading to
/// writing; every lane transaction takes it at BEGIN instead, where
/// `busy_timeout` applies, so a brief holder is waited for in every mode.
#[tokio::test]
async fn a_brief_lock_holder_is_waited_for_in_every_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, path) = file_db(dir.path(), JournalMode::Wal).await;
    for mode in [Mode::Deferred, Mode::Immediate, Mode::Exclusive] {
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let p = path.clone();
        let holder = std::thread::spawn(move || -> rusqlite::Result<()> {
            let c = raw(&p)?;
            c.execute_batch("BEGIN IMMEDIATE")?;
            let _ = locked_tx.send(());
            std::thread::sleep(Duration::from_millis(100));
            c.execute_batch("COMMIT")
        });
        locked_rx.recv().expect("holder locked");
        db.transaction(mode, |tx| {
            let n: i64 = tx.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?;
            tx.execute("INSERT INTO t VALUES (?1)", [n])?;
            Ok(())
        })
        .await
        .unwrap_or_else(|e| panic!("{mode:?}: waited for the lock, got {e:?}"));
        holder.join().expect("holder thread").expect("holder");
    }
    assert_eq!(count(&db).await, 3);
}

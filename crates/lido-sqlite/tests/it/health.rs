//! Pragmas, hooks, health checks, recycling and closing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_core::Manager;
use lido_core::{CloseReason, Pool};
use lido_sqlite::rusqlite::{self, limits::Limit, types::Value, Connection};
use lido_sqlite::{Builder, Error, Role, SqliteManager, SqlitePool, Synchronous};

fn pragma(c: &Connection, name: &str) -> rusqlite::Result<String> {
    c.query_row(&format!("PRAGMA {name}"), [], |r| {
        r.get::<_, Value>(0).map(|v| match v {
            Value::Integer(i) => i.to_string(),
            Value::Text(t) => t,
            other => format!("{other:?}"),
        })
    })
}

const NAMES: [&str; 6] = [
    "journal_mode",
    "synchronous",
    "busy_timeout",
    "foreign_keys",
    "cache_size",
    "query_only",
];

fn all_pragmas(c: &Connection) -> rusqlite::Result<Vec<String>> {
    NAMES.iter().map(|n| pragma(c, n)).collect()
}

#[tokio::test]
async fn pragmas_are_applied_to_writer_and_readers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = SqlitePool::file(dir.path().join("p.db"))
        .synchronous(Synchronous::Full)
        .busy_timeout(Duration::from_millis(1234))
        .foreign_keys(true)
        .pragma("cache_size", -4321)
        .build()
        .await
        .expect("build");
    let writer = db.write(|c| all_pragmas(c)).await.expect("writer");
    let reader = db.read(all_pragmas).await.expect("reader");
    assert_eq!(writer, ["wal", "2", "1234", "1", "-4321", "0"]);
    assert_eq!(
        reader,
        ["wal", "2", "1234", "1", "-4321", "1"],
        "readers are query_only"
    );
}

#[tokio::test]
async fn startup_runs_once_and_after_connect_on_every_connection() {
    let startups = Arc::new(AtomicUsize::new(0));
    let writers = Arc::new(AtomicUsize::new(0));
    let readers = Arc::new(AtomicUsize::new(0));
    let (s, w, r) = (startups.clone(), writers.clone(), readers.clone());
    let db = Builder::memory_unique()
        .reader_config(lido_core::Config {
            max_size: 3,
            min_idle: 3,
            ..Default::default()
        })
        .on_startup(move |c| {
            s.fetch_add(1, Ordering::SeqCst);
            c.execute_batch("CREATE TABLE t(x)")
        })
        .after_connect(move |c, role| {
            match role {
                Role::Writer => w.fetch_add(1, Ordering::SeqCst),
                Role::Reader => r.fetch_add(1, Ordering::SeqCst),
            };
            c.execute_batch("PRAGMA temp_store = MEMORY")
        })
        .build()
        .await
        .expect("build");
    for _ in 0..20 {
        db.write(|c| c.execute("INSERT INTO t VALUES (1)", []))
            .await
            .expect("write");
        db.read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)))
            .await
            .expect("read");
    }
    assert_eq!(startups.load(Ordering::SeqCst), 1);
    assert_eq!(writers.load(Ordering::SeqCst), 1);
    assert_eq!(readers.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn connections_are_recycled_by_age_writer_included() {
    let writers = Arc::new(AtomicUsize::new(0));
    let w = writers.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = SqlitePool::file(dir.path().join("r.db"))
        .reader_config(lido_core::Config {
            max_size: 2,
            max_lifetime: Some(Duration::from_millis(100)),
            lifetime_jitter: 0.0,
            ..Default::default()
        })
        .after_connect(move |_, role| {
            if role == Role::Writer {
                w.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        })
        .build()
        .await
        .expect("build");
    let read = || db.read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)));
    read().await.expect("read");
    db.write(|c| c.execute_batch("CREATE TABLE t(x)"))
        .await
        .expect("write");
    let opened_before = writers.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(250)).await;
    read().await.expect("read after expiry");
    db.write(|c| c.execute("INSERT INTO t VALUES (1)", []))
        .await
        .expect("write after expiry");
    let stats = db.readers().stats();
    assert!(
        stats.closed(CloseReason::Lifetime) >= 1,
        "an old reader was closed"
    );
    assert!(stats.created() >= 2, "and replaced");
    assert_eq!(
        writers.load(Ordering::SeqCst),
        opened_before + 1,
        "the expired writer was reopened once"
    );
}

/// Breaks a connection behind the pool's back: no statement longer than one
/// byte prepares any more, `SELECT 1` included.
fn break_it(c: &Connection) -> rusqlite::Result<()> {
    c.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, 1).map(drop)
}

fn count_rows(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
}

fn checked_often() -> lido_core::Config {
    lido_core::Config {
        max_size: 1,
        validation_bypass: Duration::from_millis(1),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_idle_reader_that_fails_select_1_is_replaced() {
    let db = Builder::memory_unique()
        .reader_config(checked_often())
        .on_startup(|c| c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);"))
        .build()
        .await
        .expect("build");
    db.read(break_it).await.expect("break the only reader");
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Without the check this read would run on the broken reader and fail.
    assert_eq!(db.read(count_rows).await.expect("read"), 1);
    let stats = db.readers().stats();
    assert_eq!(
        stats.closed(CloseReason::FailedCheck),
        1,
        "the check caught it"
    );
    assert_eq!(stats.created(), 2, "and a new reader took its place");

    // A healthy idle reader passes the same check and is kept.
    tokio::time::sleep(Duration::from_millis(20)).await;
    db.read(count_rows).await.expect("read");
    assert_eq!(db.readers().stats().created(), 2);
}

#[tokio::test]
async fn an_idle_writer_that_fails_select_1_is_reopened() {
    let opened = Arc::new(AtomicUsize::new(0));
    let o = Arc::clone(&opened);
    let db = Builder::memory_unique()
        .reader_config(checked_often())
        .on_startup(|c| c.execute_batch("CREATE TABLE t(x)"))
        .after_connect(move |_, role| {
            if role == Role::Writer {
                o.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        })
        .build()
        .await
        .expect("build");
    db.write(|c| break_it(c)).await.expect("break the writer");
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The lane's idle check finds it broken and reopens it before this runs.
    db.write(|c| c.execute("INSERT INTO t VALUES (1)", []))
        .await
        .expect("write on a fresh writer");
    assert_eq!(opened.load(Ordering::SeqCst), 2, "reopened once");
    assert_eq!(db.read(count_rows).await.expect("read"), 1);
}

/// A database with its first table's pages overwritten (header and schema intact).
fn damaged_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("damaged.db");
    let c = Connection::open(&path).expect("open");
    c.execute_batch(
        "PRAGMA page_size = 4096;
         CREATE TABLE t(id INTEGER PRIMARY KEY, body TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO t SELECT i, printf('%0100d', i) FROM n;",
    )
    .expect("seed");
    drop(c);
    let mut bytes = std::fs::read(&path).expect("read");
    assert!(bytes.len() > 8 * 4096, "pages to damage");
    bytes[2 * 4096..6 * 4096].fill(0xA5);
    std::fs::write(&path, bytes).expect("write");
    path
}

#[tokio::test]
async fn quick_check_on_open_refuses_a_damaged_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = damaged_file(dir.path());
    let err = SqlitePool::file(&path)
        .quick_check_on_open(true)
        .build()
        .await
        .expect_err("damaged");
    assert!(
        matches!(&err, Error::Integrity(found) if !found.is_empty()),
        "{err:?}"
    );

    // Off (the default) the pool opens, and the check on demand finds the damage.
    let db = SqlitePool::file(&path)
        .build()
        .await
        .expect("opens unchecked");
    let err = db.quick_check().await.expect_err("damaged");
    assert!(matches!(err, Error::Integrity(_)), "{err:?}");

    let healthy = SqlitePool::file(dir.path().join("fine.db"))
        .quick_check_on_open(true)
        .on_startup(|c| c.execute_batch("CREATE TABLE t(x)"))
        .build()
        .await;
    assert!(healthy.is_ok(), "{healthy:?}");
}

#[tokio::test]
async fn the_manager_connects_checks_and_classifies() {
    let opts = Builder::memory_unique();
    let keep_alive = opts.clone().build().await.expect("anchor");
    let manager = SqliteManager::new(opts, Role::Reader);
    let mut conn = manager.connect().await.expect("connect");
    manager.check(&mut conn).await.expect("SELECT 1");
    assert!(!manager.has_broken(&mut conn));
    assert!(!manager.needs_reset(&mut conn));
    let only: i64 = conn
        .query_row("PRAGMA query_only", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(only, 1);
    drop(keep_alive);
}

#[tokio::test]
async fn quick_and_integrity_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = SqlitePool::file(dir.path().join("q.db"))
        .on_startup(|c| c.execute_batch("CREATE TABLE t(x PRIMARY KEY); INSERT INTO t VALUES (1);"))
        .build()
        .await
        .expect("build");
    db.quick_check().await.expect("quick_check");
    db.integrity_check().await.expect("integrity_check");
}

#[tokio::test]
async fn the_manager_resets_connections_returned_inside_a_transaction() {
    let opts = Builder::memory_unique();
    let keep_alive = opts.clone().build().await.expect("anchor");
    let pool = Pool::builder(SqliteManager::new(opts, Role::Reader))
        .max_size(1)
        .build()
        .await
        .expect("pool");
    let conn = pool.get().await.expect("get");
    conn.execute_batch("BEGIN").expect("begin");
    drop(conn);
    let mut clean = false;
    for _ in 0..100 {
        if let Ok(c) = pool.get().await {
            clean = c.is_autocommit();
            if clean {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(clean, "returned connection was rolled back by reset");
    assert_eq!(pool.stats().created(), 1, "reset, not replaced");
    drop(keep_alive);
}

#[tokio::test]
async fn a_closed_pool_refuses_work() {
    let db = Builder::memory_unique().build().await.expect("build");
    let report = db.close(Duration::from_secs(1)).await;
    assert!(report.drained);
    let err = db
        .read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
        .await
        .expect_err("closed");
    assert!(
        matches!(err, Error::Pool(lido_core::Error::Closed)),
        "{err:?}"
    );
    let err = db
        .write(|c| c.execute_batch("SELECT 1"))
        .await
        .expect_err("closed");
    assert!(matches!(err, Error::Closed), "{err:?}");
}

#[tokio::test]
async fn queued_writes_time_out_without_running() {
    let db = Builder::memory_unique()
        .acquire_timeout(Duration::from_millis(100))
        .on_startup(|c| c.execute_batch("CREATE TABLE t(x)"))
        .build()
        .await
        .expect("build");
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let slow = tokio::spawn({
        let db = db.clone();
        async move {
            db.write(move |c| {
                let _ = started_tx.send(());
                let _ = release_rx.recv();
                c.execute("INSERT INTO t VALUES ('slow')", [])
            })
            .await
        }
    });
    tokio::task::spawn_blocking(move || started_rx.recv())
        .await
        .expect("join")
        .expect("slow write started");
    let err = db
        .write(|c| c.execute("INSERT INTO t VALUES ('late')", []))
        .await
        .expect_err("queued too long");
    assert!(err.is_timeout(), "{err:?}");
    release_tx.send(()).expect("release");
    slow.await
        .expect("task")
        .expect("the running write finishes even past the timeout");
    let rows: Vec<String> = crate::column(&db, "SELECT x FROM t").await;
    assert_eq!(rows, ["slow"], "the timed-out write never ran");
}

//! Query classes on SQLite: a call past its class's deadline is stopped
//! (a running statement interrupted, a transaction rolled back, a wait cut
//! short) with `Error::Deadline`; near timeouts and calls are counted per
//! class; a class naming no deadline keeps the pool's settings.

use std::time::Duration;

use lido_core::{Classes, QueryClass};
use lido_sqlite::{Builder, Error, Mode, SqlitePool};

use crate::reads::hold;

/// Counts forever: only an interrupt stops it.
const ENDLESS: &str =
    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n";

async fn pool() -> SqlitePool {
    // Long enough that a trivial call never misses it on a loaded machine.
    let quick = QueryClass::new("quick").deadline(Some(Duration::from_secs(1)));
    let mut watched = QueryClass::new("watched").deadline(Some(Duration::from_secs(5)));
    watched.near_timeout = 0.04; // 200 ms of 5 s
    Builder::memory_unique()
        .readers(1)
        .acquire_timeout(Duration::from_secs(30))
        .classes(Classes::default().with(quick).with(watched))
        .on_startup(|c| c.execute_batch("CREATE TABLE t(x INTEGER)"))
        .build()
        .await
        .expect("build")
}

fn stat(db: &SqlitePool, class: &str) -> lido_core::ClassStat {
    db.class_stats()
        .into_iter()
        .find(|s| s.class == class)
        .expect("class")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_past_its_deadline_is_interrupted_and_counted() {
    let db = pool().await;
    let quick = db.class("quick").expect("class");
    let err = quick
        .read(|c| c.query_row(ENDLESS, [], |r| r.get::<_, i64>(0)))
        .await
        .expect_err("interrupted");
    assert!(
        matches!(&err, Error::Deadline { class, .. } if class == "quick"),
        "{err:?}"
    );
    assert!(err.to_string().contains("deadline"), "{err}");
    // The reader is fine afterwards, and later calls are not interrupted.
    let n: i64 = quick
        .read(|c| c.query_row("SELECT 7", [], |r| r.get(0)))
        .await
        .expect("read");
    assert_eq!(n, 7);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let n: i64 = db
        .read(|c| c.query_row("SELECT 8", [], |r| r.get(0)))
        .await
        .expect("plain read");
    assert_eq!(n, 8);
    let s = stat(&db, "quick");
    assert_eq!((s.calls, s.errors, s.timeouts), (2, 1, 1), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_past_its_deadline_rolls_back() {
    let db = pool().await;
    let err = db
        .class("quick")
        .expect("class")
        .transaction(Mode::Immediate, |tx| {
            tx.execute("INSERT INTO t VALUES (1)", [])?;
            tx.query_row(ENDLESS, [], |r| r.get::<_, i64>(0))
        })
        .await
        .expect_err("interrupted");
    assert!(matches!(err, Error::Deadline { .. }), "{err:?}");
    let rows: i64 = db
        .read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
        .await
        .expect("read");
    assert_eq!(rows, 0, "rolled back");
    db.class("quick")
        .expect("class")
        .write(|c| c.execute("INSERT INTO t VALUES (2)", []))
        .await
        .expect("a write in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_counts_against_the_deadline() {
    let db = pool().await;
    let (release, holder) = hold(&db).await;
    let err = db
        .class("quick")
        .expect("class")
        .read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
        .await
        .expect_err("no reader within the deadline");
    assert!(matches!(err, Error::Deadline { .. }), "{err:?}");
    release.send(()).expect("release");
    holder.await.expect("join").expect("held read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_calls_count_as_near_timeouts() {
    let db = pool().await;
    let watched = db.class("watched").expect("class");
    watched
        .read(|_| {
            std::thread::sleep(Duration::from_millis(400));
            Ok(())
        })
        .await
        .expect("slow but in time");
    watched
        .read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
        .await
        .expect("fast");
    let s = stat(&db, "watched");
    assert_eq!((s.calls, s.errors, s.near_timeouts), (2, 0, 1), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_classes_are_refused_with_the_known_ones() {
    let db = pool().await;
    let err = db.class("nope").expect_err("unknown");
    assert!(err.to_string().contains("quick"), "{err}");
    let bad = Classes::default().table_rule("t", "missing");
    let err = Builder::memory_unique()
        .classes(bad)
        .build()
        .await
        .expect_err("a rule naming no class");
    assert!(
        matches!(err, Error::Config(_)) && err.to_string().contains("missing"),
        "{err}"
    );
}

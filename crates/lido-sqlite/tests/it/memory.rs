//! Shared in-memory databases: one database for every connection of a pool.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use lido_sqlite::{Builder, Error, Mode, SqlitePool};

const READERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_of_the_pool_sees_the_same_database() {
    let db = Builder::memory_unique()
        .readers(READERS)
        .on_startup(|c| c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3);"))
        .build()
        .await
        .expect("build");
    // All readers at once (the barrier holds each until all have one), so
    // every read below runs on a different connection.
    let barrier = Arc::new(Barrier::new(READERS));
    let reads: Vec<_> = (0..READERS)
        .map(|_| {
            let db = db.clone();
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                db.read(move |c| {
                    barrier.wait();
                    c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                })
                .await
            })
        })
        .collect();
    for r in reads {
        assert_eq!(r.await.expect("task").expect("read"), 3);
    }
    assert_eq!(
        db.readers().status().size,
        READERS,
        "{READERS} distinct connections"
    );

    // New connections after a full turnover still see it: the pool keeps it alive.
    db.readers().retain(|_, _| false);
    assert_eq!(db.readers().status().size, 0);
    let n: i64 = db
        .read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
        .await
        .expect("read after turnover");
    assert_eq!(n, 3);
}

#[tokio::test]
async fn names_select_databases() {
    let a = SqlitePool::memory("mem_names_a").build().await.expect("a");
    let a2 = SqlitePool::memory("mem_names_a").build().await.expect("a2");
    let b = SqlitePool::memory("mem_names_b").build().await.expect("b");
    a.write(|c| c.execute_batch("CREATE TABLE only_in_a(x)"))
        .await
        .expect("create");
    let exists = |db: SqlitePool| async move {
        db.read(|c| {
            c.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'only_in_a'",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .await
        .expect("read")
    };
    assert!(a.shares_writer_with(&a2), "same name, one writer lane");
    assert!(!a.shares_writer_with(&b));
    assert_eq!(exists(a2).await, 1, "same name, same database");
    assert_eq!(exists(b).await, 0, "other name, other database");
}

#[tokio::test]
async fn the_database_goes_away_with_its_last_pool() {
    let name = "mem_lifetime";
    let db = SqlitePool::memory(name).build().await.expect("build");
    db.write(|c| c.execute_batch("CREATE TABLE t(x)"))
        .await
        .expect("create");
    db.close(Duration::from_secs(1)).await;
    drop(db);
    let again = SqlitePool::memory(name).build().await.expect("rebuild");
    let tables: i64 = again
        .read(|c| c.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)))
        .await
        .expect("read");
    assert_eq!(tables, 0, "a fresh database, not a leftover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_and_writes_never_see_locked() {
    let db = Builder::memory_unique()
        .readers(4)
        .on_startup(|c| c.execute_batch("CREATE TABLE t(x INTEGER)"))
        .build()
        .await
        .expect("build");
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..4i64 {
        let (db, stop) = (db.clone(), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                db.transaction(Mode::Immediate, move |tx| {
                    tx.execute("INSERT INTO t VALUES (?1)", [w])?;
                    Ok(())
                })
                .await?;
                n += 1;
            }
            Ok::<i64, Error>(n)
        }));
    }
    for _ in 0..8 {
        let (db, stop) = (db.clone(), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                db.read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)))
                    .await?;
            }
            Ok(0)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut written = 0;
    for t in tasks {
        written += t.await.expect("task").expect("no SQLITE_LOCKED or BUSY");
    }
    let n: i64 = db
        .read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
        .await
        .expect("count");
    assert_eq!(n, written);
}

#[tokio::test]
async fn bad_memory_names_are_rejected() {
    let err = SqlitePool::memory("no spaces?")
        .build()
        .await
        .expect_err("bad name");
    assert!(matches!(err, Error::Config(_)), "{err:?}");
}

async fn churn(db: SqlitePool, stop: Arc<AtomicBool>, write: bool) -> Result<i64, Error> {
    let mut n = 0i64;
    while !stop.load(Ordering::Relaxed) {
        if write {
            db.transaction(Mode::Deferred, |tx| {
                tx.execute("INSERT INTO t VALUES (1)", [])?;
                Ok(())
            })
            .await?;
            n += 1;
        } else {
            db.read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)))
                .await?;
        }
    }
    Ok(n)
}

/// Two pools on one name share the writer lane and the in-process lock, so
/// one pool's writes never meet the other's reads or writes with SQLITE_LOCKED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_on_one_name_never_see_locked() {
    let open = || {
        SqlitePool::memory("mem_two_pools")
            .readers(2)
            .on_startup(|c| c.execute_batch("CREATE TABLE IF NOT EXISTS t(x INTEGER)"))
            .build()
    };
    let (a, b) = tokio::join!(open(), open());
    let (a, b) = (a.expect("a"), b.expect("b"));
    assert!(a.shares_writer_with(&b), "built at once, still one lane");
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for db in [&a, &b] {
        for i in 0..6 {
            let task = churn(db.clone(), Arc::clone(&stop), i < 2);
            tasks.push(tokio::spawn(task));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut written = 0;
    for t in tasks {
        written += t.await.expect("task").expect("no SQLITE_LOCKED or BUSY");
    }
    assert!(written > 0);
    let count = |db: SqlitePool| async move {
        db.read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)))
            .await
            .expect("count")
    };
    assert_eq!(count(a.clone()).await, written);

    // Closing one pool leaves the lane to the other.
    a.close(Duration::from_secs(1)).await;
    b.write(|c| c.execute("INSERT INTO t VALUES (2)", []))
        .await
        .expect("the other pool still writes");
    assert_eq!(count(b.clone()).await, written + 1);
    let err = a
        .write(|c| c.execute("INSERT INTO t VALUES (3)", []))
        .await
        .expect_err("closed");
    assert!(matches!(err, Error::Closed), "{err:?}");
}

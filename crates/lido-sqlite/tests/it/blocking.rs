//! The blocking API from plain OS threads, no runtime in the callers.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use lido_sqlite::blocking::BlockingPool;
use lido_sqlite::{Builder, Error, Mode, SqlitePool};

const THREADS: i64 = 64;
const ROUNDS: i64 = 20;

fn open(dir: &std::path::Path) -> BlockingPool {
    let builder = SqlitePool::file(dir.join("b.db"))
        .readers(4)
        .on_startup(|c| c.execute_batch("CREATE TABLE t(thread INTEGER, round INTEGER)"));
    BlockingPool::open(builder).expect("open")
}

fn work(db: &BlockingPool, thread: i64) -> Result<(), Error> {
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            db.write(move |c| c.execute("INSERT INTO t VALUES (?1, ?2)", [thread, round]))?;
        } else {
            db.transaction(Mode::Immediate, move |tx| {
                tx.execute("INSERT INTO t VALUES (?1, ?2)", [thread, round])
            })?;
        }
        let mine: i64 = db.read(|c| {
            c.query_row("SELECT count(*) FROM t WHERE thread = ?1", [thread], |r| {
                r.get(0)
            })
        })?;
        assert_eq!(mine, round + 1, "thread {thread} reads its own writes");
        let conn = db.get()?;
        let all: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?;
        assert!(all > round);
    }
    Ok(())
}

#[test]
fn sixty_four_threads_read_and_write_without_a_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let start = Arc::new(Barrier::new(usize::try_from(THREADS).expect("small")));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (db, start) = (db.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                work(&db, t)
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread").expect("no errors");
    }
    let total: i64 = db
        .read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
        .expect("count");
    assert_eq!(total, THREADS * ROUNDS);
    assert!(db.pool().readers().status().size <= 4);
    db.quick_check().expect("quick_check");
    let report = db.close(Duration::from_secs(2)).expect("close");
    assert!(report.drained, "every guard came back");
}

#[test]
fn guards_return_on_drop_and_waits_are_bounded() {
    let builder = Builder::memory_unique()
        .readers(2)
        .acquire_timeout(Duration::from_millis(100));
    let db = BlockingPool::open(builder).expect("open");
    let a = db.get().expect("first");
    let b = db.get().expect("second");
    let err = db.get().expect_err("both leased");
    assert!(err.is_timeout(), "{err:?}");
    drop(a);
    let c = db.get().expect("returned on drop");
    // A read transaction left open on a guard is rolled back on drop.
    c.execute_batch("BEGIN").expect("begin");
    drop(c);
    let d = db.get().expect("again");
    assert!(d.is_autocommit());
    drop((b, d));
}

#[test]
fn blocking_and_async_handles_share_the_pool() {
    let db = BlockingPool::open(Builder::memory_unique()).expect("open");
    db.write(|c| c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1)"))
        .expect("write");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pool = db.pool().clone();
    let n: i64 = rt
        .block_on(async move {
            pool.read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
                .await
        })
        .expect("async read");
    assert_eq!(n, 1);
    // Calling the blocking API from async code is refused, not a deadlock.
    let err = rt
        .block_on(async { db.read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))) })
        .expect_err("inside a runtime");
    assert!(matches!(err, Error::InsideRuntime));
}

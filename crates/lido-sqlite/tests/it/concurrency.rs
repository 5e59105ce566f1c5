//! Many writers and readers on one file, through the ordinary APIs only (no
//! retry wrapper): every row lands and no caller ever sees SQLITE_BUSY.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_sqlite::{Error, Mode, SqlitePool};

const WRITERS: i64 = 8;
const READERS: usize = 32;
const RUN_FOR: Duration = Duration::from_secs(3);

async fn write_one(db: &SqlitePool, w: i64, seq: i64) -> Result<(), Error> {
    let insert = move |tx: &mut lido_sqlite::rusqlite::Transaction<'_>| {
        tx.execute("INSERT INTO t(w, seq) VALUES (?1, ?2)", [w, seq])?;
        tx.execute("UPDATE totals SET n = n + 1", [])?;
        Ok(())
    };
    match seq % 4 {
        // Autocommit insert.
        0 => db
            .write(move |c| c.execute("INSERT INTO t(w, seq) VALUES (?1, ?2)", [w, seq]))
            .await
            .map(drop),
        // Read-then-write in a DEFERRED transaction: the pattern that fails with
        // SQLITE_BUSY when the read lock is upgraded while anyone holds the
        // WAL write lock, even for an instant.
        1 => {
            db.transaction(Mode::Deferred, move |tx| {
                let n: i64 =
                    tx.query_row("SELECT count(*) FROM t WHERE w = ?1", [w], |r| r.get(0))?;
                assert_eq!(n, seq, "writer {w} sees its own earlier rows");
                insert(tx)
            })
            .await
        }
        2 => db.transaction(Mode::Immediate, insert).await,
        _ => db.transaction(Mode::Exclusive, insert).await,
    }
}

async fn writer(db: SqlitePool, w: i64, stop: Arc<AtomicBool>) -> Result<i64, Error> {
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        write_one(&db, w, seq).await?;
        seq += 1;
    }
    Ok(seq)
}

async fn reader(db: SqlitePool, stop: Arc<AtomicBool>) -> Result<u64, Error> {
    let mut last = 0i64;
    let mut reads = 0;
    while !stop.load(Ordering::Relaxed) {
        let n: i64 = db
            .read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .await?;
        assert!(n >= last, "a reader went back in time: {n} < {last}");
        last = n;
        reads += 1;
    }
    Ok(reads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_writers_and_32_readers_lose_nothing_and_never_see_busy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = SqlitePool::file(dir.path().join("c.db"))
        .readers(8)
        .on_startup(|c| {
            c.execute_batch(
                "CREATE TABLE t(w INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (w, seq));
                 CREATE TABLE totals(n INTEGER NOT NULL); INSERT INTO totals VALUES (0);",
            )
        })
        .build()
        .await
        .expect("build");
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(db.clone(), w, Arc::clone(&stop))))
        .collect();
    let readers: Vec<_> = (0..READERS)
        .map(|_| tokio::spawn(reader(db.clone(), Arc::clone(&stop))))
        .collect();
    tokio::time::sleep(RUN_FOR).await;
    stop.store(true, Ordering::Relaxed);

    let mut written = Vec::new();
    for h in writers {
        match h.await.expect("writer task") {
            Ok(n) => written.push(n),
            Err(e) => panic!("a writer failed (busy: {}): {e}", e.is_busy()),
        }
    }
    let mut reads = 0;
    for h in readers {
        match h.await.expect("reader task") {
            Ok(n) => reads += n,
            Err(e) => panic!("a reader failed (busy: {}): {e}", e.is_busy()),
        }
    }
    assert!(
        written.iter().all(|&n| n > 0),
        "every writer made progress: {written:?}"
    );
    assert!(reads > 0);

    for (w, &n) in written.iter().enumerate() {
        let w = i64::try_from(w).expect("small");
        let (count, max): (i64, Option<i64>) = db
            .read(move |c| {
                c.query_row("SELECT count(*), max(seq) FROM t WHERE w = ?1", [w], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
            })
            .await
            .expect("count");
        assert_eq!(count, n, "writer {w}: every row present");
        assert_eq!(max, Some(n - 1), "writer {w}: no gaps");
    }
    // Every write but the autocommit ones (seq % 4 == 0) bumped the total.
    let in_transactions: i64 = written.iter().map(|&n| n - (n + 3) / 4).sum();
    let totals: i64 = db
        .read(|c| c.query_row("SELECT n FROM totals", [], |r| r.get(0)))
        .await
        .expect("totals");
    assert_eq!(totals, in_transactions, "every transaction committed once");
    assert_eq!(db.readers().stats().acquire_timeouts(), 0);
    db.quick_check().await.expect("quick_check");
}

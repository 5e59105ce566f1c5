//! The writer lane runs writes in arrival order; reads wait for a reader in
//! the read queue, not on a blocking thread.

use std::time::Duration;

use lido_sqlite::{Builder, SqlitePool};

use crate::reads::{now_and_then_slow, wait_until, Ticker};

/// A private in-memory database made with `schema`.
async fn memory_with(schema: &'static str) -> SqlitePool {
    Builder::memory_unique()
        .on_startup(move |c| c.execute_batch(schema))
        .build()
        .await
        .expect("build")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_run_in_arrival_order() {
    let db = memory_with("CREATE TABLE log(name TEXT NOT NULL)").await;
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let blocker = tokio::spawn({
        let db = db.clone();
        async move {
            db.write(move |_| {
                let _ = started_tx.send(());
                let _ = release_rx.recv();
                Ok(())
            })
            .await
        }
    });
    tokio::task::spawn_blocking(move || started_rx.recv())
        .await
        .expect("join")
        .expect("the lane is blocked");
    let mut queued = Vec::new();
    for (i, name) in ["A", "B", "C", "D"].into_iter().enumerate() {
        let db2 = db.clone();
        queued.push(tokio::spawn(async move {
            db2.write(move |c| c.execute("INSERT INTO log VALUES (?1)", [name]))
                .await
        }));
        // The next write is submitted only once this one is in the queue.
        wait_until(|| db.writes_queued() == i + 1).await;
    }
    release_tx.send(()).expect("release");
    blocker.await.expect("task").expect("blocker");
    for q in queued {
        q.await.expect("task").expect("queued write");
    }
    let order: Vec<String> = crate::column(&db, "SELECT name FROM log ORDER BY rowid").await;
    assert_eq!(order, ["A", "B", "C", "D"]);
}

/// Many more readers than blocking threads: a read waits for its reader in
/// the read queue (and runs on a reader thread), so the blocking threads stay
/// free for the connects and the `SELECT 1` checks the pool runs on them. (A runtime with
/// 4 blocking threads stands in for tokio's default 512 with 1000 callers.)
#[test]
fn a_thousand_reads_on_two_readers_and_four_blocking_threads_finish() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = SqlitePool::file(dir.path().join("r.db"))
            .reader_config(lido_core::Config {
                max_size: 2,
                min_idle: 0,
                // Every reuse runs the check on a blocking thread.
                validation_bypass: Duration::ZERO,
                // A stall would end in timeouts well before the test's end.
                acquire_timeout: Duration::from_secs(5),
                ..Default::default()
            })
            .on_startup(|c| c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);"))
            .build()
            .await
            .expect("build");
        let reads: Vec<_> = (0..1000)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.read(|c| c.query_row("SELECT x FROM t", [], |r| r.get::<_, i64>(0)))
                        .await
                })
            })
            .collect();
        let all = async {
            for r in reads {
                assert_eq!(r.await.expect("task").expect("read"), 1);
            }
        };
        // A correctness bound, not a timing: a stalled pool never gets here.
        tokio::time::timeout(Duration::from_secs(60), all)
            .await
            .expect("the reads stalled");
        let stats = db.readers().stats();
        assert_eq!(stats.acquire_timeouts(), 0);
        assert!(stats.created() <= 2, "two readers served them all");
    });
}

/// One task writing in a loop: the writer thread takes each write while it
/// still looks for the next, and the caller polls for the reply. On a
/// current-thread runtime the polling never locks the other tasks out
/// (each write here finishes only once another task has run since it was
/// sent), writes longer than the poll still answer, and every row lands in
/// order.
#[tokio::test(flavor = "current_thread")]
async fn a_lone_writers_caller_polls_for_its_reply_without_starving_other_tasks() {
    let db = memory_with("CREATE TABLE log(n INTEGER NOT NULL)").await;
    let ticker = Ticker::start();
    for n in 0..40_i64 {
        let others_ran = ticker.turns_from_now();
        db.write(move |c| {
            others_ran();
            now_and_then_slow(n);
            c.execute("INSERT INTO log VALUES (?1)", [n])
        })
        .await
        .expect("write");
    }
    let rows: Vec<i64> = crate::column(&db, "SELECT n FROM log ORDER BY rowid").await;
    assert_eq!(rows, (0..40).collect::<Vec<_>>());
}

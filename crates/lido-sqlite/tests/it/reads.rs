//! Reads queue for the reader threads in arrival order; a queued read that
//! times out or whose future is dropped never runs and holds nothing up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use lido_sqlite::{Builder, Error, SqlitePool};

/// Polls `done` every millisecond for up to 5 s; panics if it never held.
pub(crate) async fn wait_until(mut done: impl FnMut() -> bool) {
    for _ in 0..5_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("condition never held");
}

async fn one_reader(timeout: Duration) -> SqlitePool {
    Builder::memory_unique()
        .readers(1)
        .acquire_timeout(timeout)
        .on_startup(|c| c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);"))
        .build()
        .await
        .expect("build")
}

/// Holds the pool's reader until the returned sender sends (or drops).
pub(crate) async fn hold(
    db: &SqlitePool,
) -> (mpsc::Sender<()>, tokio::task::JoinHandle<Result<(), Error>>) {
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let task = tokio::spawn({
        let db = db.clone();
        async move {
            db.read(move |_| {
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
        .expect("the holding read started");
    (release_tx, task)
}

fn one(db: &SqlitePool) -> impl std::future::Future<Output = Result<i64, Error>> + '_ {
    db.read(|c| c.query_row("SELECT x FROM t", [], |r| r.get(0)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_run_in_arrival_order() {
    let db = one_reader(Duration::from_secs(10)).await;
    let (release, holder) = hold(&db).await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (db2, order) = (db.clone(), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            db2.read(move |_| {
                order.lock().expect("order").push(i);
                Ok(())
            })
            .await
        }));
        wait_until(|| db.reads_queued() == i + 1).await;
    }
    release.send(()).expect("release");
    holder.await.expect("task").expect("holder");
    for t in tasks {
        t.await.expect("task").expect("read");
    }
    assert_eq!(*order.lock().expect("order"), (0..8).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_read_times_out_without_running_and_the_pool_goes_on() {
    let db = one_reader(Duration::from_millis(100)).await;
    let (release, holder) = hold(&db).await;
    let ran = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&ran);
    let err = db
        .read(move |_| {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        })
        .await
        .expect_err("no reader within acquire_timeout");
    assert!(err.is_timeout(), "{err:?}");
    release.send(()).expect("release");
    holder.await.expect("task").expect("holder");
    assert_eq!(one(&db).await.expect("a later read"), 1);
    assert!(!ran.load(Ordering::SeqCst), "the timed-out read never ran");
    assert_eq!(db.reads_queued(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_read_never_runs_and_blocks_nothing() {
    let db = one_reader(Duration::from_secs(10)).await;
    let (release, holder) = hold(&db).await;
    let ran = Arc::new(AtomicBool::new(false));
    let dropped = tokio::spawn({
        let (db, flag) = (db.clone(), Arc::clone(&ran));
        async move {
            db.read(move |_| {
                flag.store(true, Ordering::SeqCst);
                Ok(())
            })
            .await
        }
    });
    wait_until(|| db.reads_queued() == 1).await;
    dropped.abort();
    assert!(dropped.await.expect_err("aborted").is_cancelled());
    release.send(()).expect("release");
    holder.await.expect("task").expect("holder");
    assert_eq!(one(&db).await.expect("a later read"), 1);
    assert!(!ran.load(Ordering::SeqCst), "the dropped read never ran");
    wait_until(|| db.readers().status().in_use == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_read_leaves_its_reader_usable() {
    let db = one_reader(Duration::from_secs(10)).await;
    for _ in 0..3 {
        let err = db
            .read(|_| -> rusqlite::Result<()> { panic!("boom") })
            .await
            .expect_err("panicked");
        assert!(matches!(err, Error::Panic { .. }), "{err:?}");
        assert_eq!(one(&db).await.expect("the reader still reads"), 1);
    }
    assert!(
        db.readers().stats().created() <= 1,
        "one reader served it all"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_use_readers_added_by_a_resize() {
    let db = one_reader(Duration::from_secs(10)).await;
    db.readers().resize(2).expect("resize");
    // Two reads that each wait for the other to start: they need two readers
    // and two reader threads at once.
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let both = (0..2).map(|_| {
        let (db, barrier) = (db.clone(), Arc::clone(&barrier));
        tokio::spawn(async move {
            db.read(move |_| {
                barrier.wait();
                Ok(())
            })
            .await
        })
    });
    let both: Vec<_> = both.collect();
    let all = async {
        for t in both {
            t.await.expect("task").expect("read");
        }
    };
    tokio::time::timeout(Duration::from_secs(30), all)
        .await
        .expect("the two reads ran side by side");
}

/// A task that counts its turns on the runtime, for tests that check the
/// runtime's other tasks still run while a caller polls for a reply.
pub(crate) struct Ticker {
    ticks: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Ticker {
    pub(crate) fn start() -> Self {
        let ticks = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let ticks = Arc::clone(&ticks);
            async move {
                loop {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            }
        });
        Self { ticks, task }
    }

    /// A wait, for a lane thread, that returns once the ticker has taken
    /// three more turns than now (and panics after 5 s without them).
    pub(crate) fn turns_from_now(&self) -> impl Fn() + Send + 'static {
        let (ticks, seen) = (Arc::clone(&self.ticks), self.ticks.load(Ordering::Relaxed));
        move || {
            let until = Instant::now() + Duration::from_secs(5);
            while ticks.load(Ordering::Relaxed) < seen + 3 {
                assert!(Instant::now() < until, "the other task never ran");
                std::thread::yield_now();
            }
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every other call of a lane-polling test takes longer than the caller polls for.
pub(crate) fn now_and_then_slow(i: i64) {
    if i % 2 == 1 {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A lone read's caller polls for its reply for a moment instead of
/// parking. On a current-thread runtime its polling never locks the other
/// tasks out (each read here finishes only once another task has run
/// since it was sent), and a reply that comes after the polling stops still
/// arrives. That the poll yields between polls is `reply.rs`'s unit test.
#[tokio::test(flavor = "current_thread")]
async fn a_lone_reads_caller_polls_for_its_reply_without_starving_other_tasks() {
    let db = one_reader(Duration::from_secs(10)).await;
    let ticker = Ticker::start();
    for i in 0..40 {
        let others_ran = ticker.turns_from_now();
        let got = db
            .read(move |c| {
                others_ran();
                now_and_then_slow(i);
                c.query_row("SELECT x FROM t", [], |r| r.get::<_, i64>(0))
            })
            .await
            .expect("read");
        assert_eq!(got, 1);
    }
    assert_eq!(
        db.readers().stats().created(),
        1,
        "one reader served it all"
    );
}

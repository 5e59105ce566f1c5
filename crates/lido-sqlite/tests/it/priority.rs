//! Reads take a priority per call: queued reads of a higher lane run first,
//! readers reserved for `Critical` are never taken by lower lanes, and a
//! lane's share cap holds; the blocking API takes a priority too.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lido_core::{LaneLimits, Priority};
use lido_sqlite::blocking::BlockingPool;
use lido_sqlite::{Builder, SqlitePool};

use crate::reads::{hold, wait_until};

async fn pool(readers: usize, lanes: LaneLimits) -> SqlitePool {
    Builder::memory_unique()
        .readers(readers)
        .reader_lanes(lanes)
        .acquire_timeout(Duration::from_secs(20))
        .build()
        .await
        .expect("build")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_reads_run_highest_lane_first_and_fifo_within_a_lane() {
    let db = pool(1, LaneLimits::default()).await;
    let (release, holder) = hold(&db).await;
    let order = Arc::new(Mutex::new(Vec::new()));
    let calls = [
        (Priority::Background, "b1"),
        (Priority::Normal, "n1"),
        (Priority::Background, "b2"),
        (Priority::Critical, "c1"),
        (Priority::Normal, "n2"),
        (Priority::Critical, "c2"),
    ];
    let mut tasks = Vec::new();
    for (i, (lane, name)) in calls.into_iter().enumerate() {
        let (db2, order) = (db.clone(), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            db2.read_with_priority(lane, move |_| {
                order.lock().expect("order").push(name);
                Ok(())
            })
            .await
        }));
        wait_until(|| db.reads_queued() == i + 1).await;
    }
    release.send(()).expect("release");
    holder.await.expect("join").expect("holder");
    for t in tasks {
        t.await.expect("join").expect("read");
    }
    let order = order.lock().expect("order").clone();
    assert_eq!(order, ["c1", "c2", "n1", "n2", "b1", "b2"]);
}

/// Background reads that each hold a reader for `hold`, `n` of them at once.
fn background(
    db: &SqlitePool,
    n: usize,
    hold: Duration,
    peak: &Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<Instant>> {
    let now = Arc::new(AtomicUsize::new(0));
    (0..n)
        .map(|_| {
            let (db, now, peak) = (db.clone(), Arc::clone(&now), Arc::clone(peak));
            tokio::spawn(async move {
                db.read_with_priority(Priority::Background, move |_| {
                    let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(running, Ordering::SeqCst);
                    std::thread::sleep(hold);
                    now.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                })
                .await
                .expect("background read");
                Instant::now()
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_reads_use_the_reserve_while_background_holds_the_rest() {
    // 4 readers, 1 kept for Critical: Background never holds more than 3.
    let db = pool(4, LaneLimits::default().reserve(Priority::Critical, 1)).await;
    let peak = Arc::new(AtomicUsize::new(0));
    let hold = Duration::from_secs(2);
    let bg = background(&db, 8, hold, &peak);
    wait_until(|| db.readers().status().in_use_by_lane[Priority::Background as usize] == 3).await;
    wait_until(|| db.reads_queued() == 5).await;

    let started = Instant::now();
    for _ in 0..20 {
        let one: i64 = db
            .read_with_priority(Priority::Critical, |c| {
                c.query_row("SELECT 1", [], |r| r.get(0))
            })
            .await
            .expect("critical read");
        assert_eq!(one, 1);
    }
    let critical_done = Instant::now();
    println!(
        "20 Critical reads took {:?} with Background holding 3 of 4",
        critical_done - started
    );
    let mut ends = Vec::new();
    for t in bg {
        ends.push(t.await.expect("join"));
    }
    // Ordering, not speed: every Critical read finished before the first
    // Background read (each holds its reader for 2 s) let go of a reader.
    let first_bg = ends.iter().min().copied().expect("background ran");
    assert!(critical_done < first_bg, "Critical waited for Background");
    assert_eq!(
        peak.load(Ordering::SeqCst),
        3,
        "Background took the reserve"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_share_cap_holds_and_the_lane_still_finishes() {
    // 4 readers, Background at most half of them.
    let db = pool(
        4,
        LaneLimits::default().max_share(Priority::Background, 0.5),
    )
    .await;
    let (peak, now, go) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let bg: Vec<_> = (0..6)
        .map(|_| {
            let (db, peak, now, go) = (db.clone(), peak.clone(), now.clone(), go.clone());
            tokio::spawn(async move {
                db.read_with_priority(Priority::Background, move |_| {
                    peak.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    while !go.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    now.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                })
                .await
            })
        })
        .collect();
    wait_until(|| now.load(Ordering::SeqCst) == 2 && db.reads_queued() == 4).await;
    // Normal reads meanwhile get the other two readers.
    for _ in 0..3 {
        let normal: i64 = db
            .read(|c| c.query_row("SELECT 2", [], |r| r.get(0)))
            .await
            .expect("normal read");
        assert_eq!(normal, 2);
    }
    assert_eq!(db.reads_queued(), 4, "Background reads wait their turn");
    go.store(true, Ordering::SeqCst);
    for t in bg {
        t.await
            .expect("join")
            .expect("every Background read completes");
    }
    assert_eq!(peak.load(Ordering::SeqCst), 2, "the share cap held");
}

#[test]
fn the_blocking_api_takes_a_priority() {
    let lanes = LaneLimits::default().reserve(Priority::Critical, 1);
    let db =
        BlockingPool::open(Builder::memory_unique().readers(2).reader_lanes(lanes)).expect("open");
    // Normal holds the one reader it may take; Critical still gets the reserve.
    let held = db.get().expect("normal lease");
    let v: i64 = db
        .read_with_priority(Priority::Critical, |c| {
            c.query_row("SELECT 3", [], |r| r.get(0))
        })
        .expect("read");
    assert_eq!(v, 3);
    drop(held);
}

#[tokio::test]
async fn lane_limits_that_leave_a_lane_nothing_are_refused_at_build() {
    let err = Builder::memory_unique()
        .readers(2)
        .reader_lanes(LaneLimits::default().reserve(Priority::Critical, 2))
        .build()
        .await
        .expect_err("Normal and Background would have no reader");
    let text = err.to_string();
    assert!(text.contains("lane") || text.contains("reserve"), "{text}");
}

/// Lending on: a Background read runs on Critical's idle reserved reader; a
/// Critical read that waited past the budget gets it interrupted
/// (`Error::Preempted`) and runs; the lane's own read is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_read_past_the_budget_interrupts_a_lent_background_read() {
    use lido_sqlite::Error;
    use rusqlite::functions::FunctionFlags;
    // The endless reads stop when this is cleared (or when interrupted).
    static KEEP_GOING: AtomicBool = AtomicBool::new(true);
    let budget = Duration::from_millis(50);
    let db = Builder::memory_unique()
        .readers(2)
        .reader_lanes(
            LaneLimits::default()
                .reserve(Priority::Critical, 1)
                .lend(budget),
        )
        .acquire_timeout(Duration::from_secs(20))
        .after_connect(|c, _| {
            c.create_scalar_function("keep_going", 0, FunctionFlags::SQLITE_UTF8, |_| {
                Ok(KEEP_GOING.load(Ordering::SeqCst))
            })
        })
        .build()
        .await
        .expect("build");
    let endless = |db: SqlitePool| {
        tokio::spawn(async move {
            db.read_with_priority(Priority::Background, |c| {
                c.query_row(
                    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE keep_going()) \
                     SELECT count(*) FROM n",
                    [],
                    |r| r.get::<_, i64>(0),
                )
            })
            .await
        })
    };
    let (a, b) = (endless(db.clone()), endless(db.clone()));
    wait_until(|| db.readers().status().in_use_by_lane[Priority::Background as usize] == 2).await;

    let started = Instant::now();
    let one: i64 = db
        .read_with_priority(Priority::Critical, |c| {
            c.query_row("SELECT 1", [], |r| r.get(0))
        })
        .await
        .expect("Critical read");
    let waited = started.elapsed();
    println!("Critical read waited {waited:?} (budget {budget:?}) behind a lent endless read");
    assert_eq!(one, 1);
    assert!(waited >= budget, "not before the budget: {waited:?}");
    assert!(waited < Duration::from_secs(5), "soon after it: {waited:?}");
    assert_eq!(db.readers().stats().preemptions(), 1);

    wait_until(|| a.is_finished() || b.is_finished()).await;
    let (done, running) = if a.is_finished() { (a, b) } else { (b, a) };
    let err = done.await.expect("join").expect_err("interrupted");
    assert!(matches!(err, Error::Preempted), "{err:?}");
    assert!(!running.is_finished(), "the lane's own read is untouched");
    KEEP_GOING.store(false, Ordering::SeqCst);
    let rows = running
        .await
        .expect("join")
        .expect("own read ends normally");
    assert!(rows > 0);
}

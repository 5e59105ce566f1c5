//! The blocking API from many OS threads, with no runtime in the callers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_core::blocking::{BlockingError, BlockingPool};
use lido_core::Pool;
use lido_testkit::fake::Fake;

#[test]
fn sixty_four_threads_share_a_blocking_pool() {
    let (m, script) = Fake::new();
    let pool = BlockingPool::build(
        Pool::builder(m)
            .max_size(8)
            .acquire_timeout(Duration::from_secs(30)),
    )
    .expect("build");
    let peak = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..64)
        .map(|_| {
            let pool = pool.clone();
            let peak = Arc::clone(&peak);
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let conn = pool.get().expect("get");
                    peak.fetch_max(pool.pool().status().in_use, Ordering::SeqCst);
                    std::thread::yield_now();
                    drop(conn);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let s = pool.pool().status();
    assert_eq!(s.size, s.idle);
    assert!(peak.load(Ordering::SeqCst) <= 8);
    assert_eq!(
        pool.pool().stats().gets_direct() + pool.pool().stats().gets_waited(),
        64 * 50
    );
    assert_eq!(script.live(), s.size as i64);
}

#[test]
fn blocking_calls_inside_a_runtime_are_refused() {
    let (m, _script) = Fake::new();
    let pool = BlockingPool::build(Pool::builder(m).max_size(1)).expect("build");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    let inside = rt.block_on(async { pool.get().map(drop) });
    assert!(matches!(inside, Err(BlockingError::InsideRuntime)));
    assert!(pool.get().is_ok(), "fine from a plain thread");
}

//! Leak reports name the application's line, not a line inside lido-sqlite.

use std::time::{Duration, Instant};

use lido_core::LeakReport;
use lido_sqlite::blocking::BlockingPool;
use lido_sqlite::rusqlite::Connection;
use lido_sqlite::Builder;

fn leaky() -> Builder {
    Builder::memory_unique().reader_config(lido_core::Config {
        max_size: 1,
        leak_threshold: Some(Duration::from_millis(20)),
        ..Default::default()
    })
}

/// Polls `leaks` until one shows up (bounded), then lets the lease go.
fn first_leak(
    leaks: impl Fn() -> Vec<LeakReport>,
    release: std::sync::mpsc::Sender<()>,
) -> Vec<LeakReport> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut found = leaks();
    while found.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        found = leaks();
    }
    let _ = release.send(());
    found
}

fn assert_points_here(found: &[LeakReport], line: u32) {
    assert_eq!(found.len(), 1, "{found:?}");
    let at = found[0].location;
    assert!(at.file().ends_with("tests/it/leaks.rs"), "{at}");
    assert_eq!(at.line(), line, "{at}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_held_too_long_is_reported_at_the_callers_line() {
    let db = leaky().build().await.expect("build");
    let (release, held) = std::sync::mpsc::channel::<()>();
    let hold = move |c: &Connection| {
        let _ = held.recv();
        c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
    };
    let (read, line) = (db.read(hold), line!());
    let readers = db.readers().clone();
    let watch = tokio::task::spawn_blocking(move || first_leak(|| readers.leaks(), release));
    let (out, found) = tokio::join!(read, watch);
    assert_eq!(out.expect("read"), 1);
    assert_points_here(&found.expect("watch"), line);
}

#[test]
fn a_blocking_guard_held_too_long_is_reported_at_the_callers_line() {
    let db = BlockingPool::open(leaky()).expect("open");
    let (guard, line) = (db.get().expect("get"), line!());
    let (release, _ignored) = std::sync::mpsc::channel::<()>();
    let found = first_leak(|| db.pool().readers().leaks(), release);
    drop(guard);
    assert_points_here(&found, line);
}

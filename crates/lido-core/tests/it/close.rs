//! `close()` drains on every way a slot can free up, and a connection that
//! reaches a waiter just as it leaves never lingers in a closed pool.

use std::time::Duration;

use futures::poll;
use lido_core::{CloseReason, Error, Pool, RetryConfig};
use lido_testkit::fake::{assert_at_rest, settle, Fake};

#[tokio::test(start_paused = true)]
async fn close_returns_as_soon_as_an_inflight_connect_fails() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(1)
        .retry(RetryConfig {
            max_attempts: 1,
            ..Default::default()
        })
        .build()
        .await
        .expect("build");
    let gate = script.gate_connects();
    script.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut waiter = Box::pin(pool.get());
    assert!(poll!(waiter.as_mut()).is_pending());
    settle().await;
    assert_eq!(pool.status().connecting, 1);
    let closing = pool.clone();
    let close = tokio::spawn(async move { closing.close(Duration::from_secs(60)).await });
    settle().await;
    assert!(matches!(waiter.await, Err(Error::Closed)));
    let started = tokio::time::Instant::now();
    gate.add_permits(1); // the connect fails now
    let report = close.await.expect("close task");
    assert!(report.drained, "{report:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "close waited out its deadline instead of noticing the failed connect"
    );
}

#[tokio::test(start_paused = true)]
async fn close_returns_as_soon_as_a_lease_is_detached() {
    let (m, _script) = Fake::new();
    let pool = Pool::builder(m).max_size(1).build().await.expect("build");
    let lease = pool.get().await.expect("get");
    let closing = pool.clone();
    let close = tokio::spawn(async move { closing.close(Duration::from_secs(60)).await });
    settle().await;
    let started = tokio::time::Instant::now();
    let conn = lease.detach();
    let report = close.await.expect("close task");
    assert!(report.drained, "{report:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(pool.stats().closed(CloseReason::Detached), 1);
    drop(conn);
}

#[tokio::test(start_paused = true)]
async fn a_connection_delivered_to_a_leaving_waiter_is_closed_if_the_pool_closed() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m).max_size(1).build().await.expect("build");
    let held = pool.get().await.expect("get");
    let mut waiter = Box::pin(pool.get());
    assert!(poll!(waiter.as_mut()).is_pending());
    drop(held); // delivered into the waiter's slot, not yet taken
    let closing = pool.clone();
    let close = tokio::spawn(async move { closing.close(Duration::from_secs(5)).await });
    settle().await;
    drop(waiter); // leaves with the connection in its slot
    let report = close.await.expect("close task");
    assert!(report.drained, "{report:?}");
    let s = pool.status();
    assert_eq!(
        (s.size, s.idle),
        (0, 0),
        "nothing parked in a closed pool: {s:?}"
    );
    assert_eq!(pool.stats().closed(CloseReason::PoolClosed), 1);
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn a_connection_delivered_to_a_leaving_waiter_after_a_shrink_is_closed() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m).max_size(2).build().await.expect("build");
    let a = pool.get().await.expect("a");
    let b = pool.get().await.expect("b");
    let mut waiter = Box::pin(pool.get());
    assert!(poll!(waiter.as_mut()).is_pending());
    drop(a); // delivered to the waiter
    pool.resize(1).expect("resize");
    drop(waiter); // 2 open, max 1: the returned one must close, not go idle
    let s = pool.status();
    assert_eq!((s.size, s.idle), (1, 0), "{s:?}");
    assert_eq!(pool.stats().closed(CloseReason::Resize), 1);
    drop(b);
    assert_at_rest(&pool, &script);
}

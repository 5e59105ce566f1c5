//! Dropping `get()` at every await point never leaks a slot or a connection,
//! and a connection being created for a waiter that left is kept for the next.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::poll;
use lido_core::{CloseReason, Pool};
use lido_testkit::fake::{advance, assert_at_rest, settle, Fake};

#[tokio::test(start_paused = true)]
async fn dropped_before_first_poll() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m).max_size(1).build().await.expect("build");
    drop(pool.get());
    settle().await;
    assert_at_rest(&pool, &script);
    assert_eq!(script.attempts(), 0);
}

#[tokio::test(start_paused = true)]
async fn dropped_while_waiting_for_a_return() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m).max_size(1).build().await.expect("build");
    let held = pool.get().await.expect("get");
    {
        let fut = pool.get();
        tokio::pin!(fut);
        assert!(poll!(fut.as_mut()).is_pending());
        assert_eq!(pool.status().waiters, 1);
    }
    assert_eq!(pool.status().waiters, 0, "waiter left the queue");
    drop(held);
    assert_eq!(pool.status().idle, 1);
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn dropped_after_delivery_before_taking_it_passes_it_on() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m).max_size(1).build().await.expect("build");
    let held = pool.get().await.expect("get");
    let mut fut1 = Box::pin(pool.get());
    let mut fut2 = Box::pin(pool.get());
    assert!(poll!(fut1.as_mut()).is_pending());
    assert!(poll!(fut2.as_mut()).is_pending());
    drop(held); // delivered into fut1's slot
    assert_eq!(pool.status().waiters, 1);
    drop(fut1); // never took it: it must go to fut2
    let got = fut2.await.expect("second waiter served");
    drop(got);
    assert_at_rest(&pool, &script);
    assert_eq!(script.created.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn connection_being_created_is_kept_when_its_waiter_leaves() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m).max_size(2).build_lazy().expect("build");
    let gate = script.gate_connects();
    {
        let fut = pool.get();
        tokio::pin!(fut);
        assert!(poll!(fut.as_mut()).is_pending());
        settle().await;
        assert_eq!(pool.status().connecting, 1);
    }
    gate.add_permits(1);
    settle().await;
    assert_eq!(pool.status().idle, 1, "kept for the next caller");
    let c = pool.get().await.expect("served from the kept connection");
    assert_eq!(script.attempts(), 1, "no second connect");
    drop(c);
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn connection_being_created_goes_to_the_next_waiter() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m).max_size(1).build_lazy().expect("build");
    let gate = script.gate_connects();
    // Boxed, so that drop() really drops the future (a pinned local lives to scope end).
    let mut first = Box::pin(pool.get());
    let mut second = Box::pin(pool.get());
    assert!(poll!(first.as_mut()).is_pending());
    assert!(poll!(second.as_mut()).is_pending());
    drop(first);
    gate.add_permits(1);
    let c = second.await.expect("served");
    assert_eq!(script.attempts(), 1);
    drop(c);
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn dropped_during_validation_frees_the_slot() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m).max_size(1).build().await.expect("build");
    drop(pool.get().await.expect("get"));
    tokio::time::advance(Duration::from_secs(1)).await; // past the bypass window
    let gate = script.gate_checks();
    {
        let fut = pool.get();
        tokio::pin!(fut);
        assert!(poll!(fut.as_mut()).is_pending());
        assert_eq!(script.checks(), 1, "validating");
        assert_eq!(pool.status().in_use, 1);
    }
    assert_eq!(pool.stats().closed(CloseReason::Cancelled), 1);
    assert_eq!(pool.status().size, 0, "slot freed");
    gate.close();
    *script.check_gate.lock() = None;
    let c = pool.get().await.expect("a new connection");
    drop(c);
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn failure_delivered_to_a_leaving_waiter_goes_to_the_next() {
    let (m, script) = Fake::new();
    script.bad_password.store(true, Ordering::SeqCst);
    let gate = script.gate_connects();
    let pool = Pool::builder(m)
        .max_size(1)
        .acquire_timeout(Duration::from_secs(5))
        .build_lazy()
        .expect("build");
    // Boxed, so that drop() really drops the future (a pinned local lives to scope end).
    let mut first = Box::pin(pool.get());
    let mut second = Box::pin(pool.get());
    assert!(poll!(first.as_mut()).is_pending());
    assert!(poll!(second.as_mut()).is_pending());
    gate.add_permits(100);
    settle().await;
    drop(first);
    let err = second.await.expect_err("gets the failure");
    assert!(matches!(err, lido_core::Error::Connect { .. }), "{err:?}");
    advance(Duration::from_secs(1)).await;
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn timed_out_waiters_leave_no_trace() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(2)
        .acquire_timeout(Duration::from_millis(100))
        .build()
        .await
        .expect("build");
    let a = pool.get().await.expect("a");
    let b = pool.get().await.expect("b");
    let results = futures::future::join_all((0..50).map(|_| pool.get())).await;
    assert!(results.iter().all(|r| r.is_err()));
    assert_eq!(pool.status().waiters, 0);
    drop((a, b));
    assert_at_rest(&pool, &script);
    assert_eq!(pool.stats().acquire_timeouts(), 50);
}

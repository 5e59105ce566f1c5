//! Lifetime, idle, keepalive, validation, warm-up, resize, retain, overflow,
//! detach, reset and close — on tokio's paused clock.

use std::sync::atomic::Ordering;
use std::time::Duration;

use lido_core::{CloseReason, Pool};
use lido_testkit::fake::{advance, assert_at_rest, secs, settle, Fake};

#[tokio::test(start_paused = true)]
async fn build_warms_up_to_min_idle_and_lazy_does_not_wait() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(8)
        .min_idle(3)
        .build()
        .await
        .expect("build");
    assert_eq!(pool.status().idle, 3);
    assert_eq!(script.created.load(Ordering::SeqCst), 3);

    let (m, script) = Fake::new();
    *script.connect_delay.lock() = secs(1);
    let pool = Pool::builder(m)
        .max_size(8)
        .min_idle(2)
        .build_lazy()
        .expect("build");
    assert_eq!(
        pool.status().idle,
        0,
        "lazy build returns before connecting"
    );
    advance(Duration::from_millis(1100)).await;
    assert_eq!(pool.status().idle, 2);
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_closes_and_min_idle_refills() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(4)
        .min_idle(2)
        .max_lifetime(Some(secs(10)))
        .lifetime_jitter(0.0)
        .build()
        .await
        .expect("build");
    advance(secs(9)).await;
    assert_eq!(pool.stats().closed(CloseReason::Lifetime), 0);
    advance(secs(3)).await;
    assert_eq!(pool.stats().closed(CloseReason::Lifetime), 2);
    assert_eq!(pool.status().idle, 2, "refilled to min_idle");
    assert_eq!(script.created.load(Ordering::SeqCst), 4);
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn lifetime_jitter_spreads_expiry() {
    let (m, _script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(50)
        .min_idle(50)
        .max_lifetime(Some(secs(100)))
        .lifetime_jitter(0.5)
        .idle_timeout(None)
        .build()
        .await
        .expect("build");
    advance(secs(49)).await;
    assert_eq!(
        pool.stats().closed(CloseReason::Lifetime),
        0,
        "jitter never exceeds 50%"
    );
    advance(secs(26)).await;
    let mid = pool.stats().closed(CloseReason::Lifetime);
    assert!(
        mid > 0 && mid < 50,
        "expiries spread over [50 s, 100 s], {mid} closed by 75 s"
    );
    advance(secs(27)).await;
    assert!(pool.stats().closed(CloseReason::Lifetime) >= 50);
}

#[tokio::test(start_paused = true)]
async fn checked_out_connection_past_lifetime_is_closed_on_return() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(2)
        .max_lifetime(Some(secs(10)))
        .lifetime_jitter(0.0)
        .build()
        .await
        .expect("build");
    let c = pool.get().await.expect("get");
    advance(secs(11)).await;
    drop(c);
    assert_eq!(pool.stats().closed(CloseReason::Lifetime), 1);
    assert_eq!(pool.status().size, 0);
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_only_above_min_idle() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(5)
        .min_idle(1)
        .idle_timeout(Some(secs(30)))
        .build()
        .await
        .expect("build");
    let held: Vec<_> = futures::future::join_all((0..5).map(|_| pool.get())).await;
    assert_eq!(pool.status().size, 5);
    drop(held);
    advance(secs(20)).await;
    assert_eq!(pool.status().size, 5);
    advance(secs(12)).await;
    assert_eq!(pool.status().size, 1, "reaped down to min_idle");
    assert_eq!(pool.stats().closed(CloseReason::Idle), 4);
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn keepalive_pings_idle_connections_and_drops_dead_ones() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(2)
        .min_idle(2)
        .keepalive(Some(secs(5)))
        .build()
        .await
        .expect("build");
    advance(Duration::from_millis(6100)).await;
    assert!(script.checks() >= 2, "both idle connections pinged");
    script.check_fails.store(true, Ordering::SeqCst);
    advance(secs(6)).await;
    assert!(pool.stats().closed(CloseReason::FailedCheck) >= 2);
    script.check_fails.store(false, Ordering::SeqCst);
    advance(secs(2)).await;
    assert_eq!(pool.status().idle, 2, "replaced");
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn validation_only_after_bypass_window() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(1)
        .validation_bypass(Duration::from_millis(500))
        .build()
        .await
        .expect("build");
    drop(pool.get().await.expect("get"));
    drop(pool.get().await.expect("get"));
    assert_eq!(script.checks(), 0, "hot connection not pinged");
    tokio::time::advance(Duration::from_millis(600)).await;
    drop(pool.get().await.expect("get"));
    assert_eq!(script.checks(), 1);
    tokio::time::advance(Duration::from_millis(600)).await;
    script.check_fails.store(true, Ordering::SeqCst);
    let c = pool
        .get()
        .await
        .expect("a fresh connection replaces the dead one");
    assert_eq!(pool.stats().closed(CloseReason::FailedCheck), 1);
    assert_eq!(c.id, 1, "second connection");
}

#[tokio::test(start_paused = true)]
async fn resize_shrinks_idle_and_returning_then_grows_for_waiters() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m).max_size(4).build().await.expect("build");
    let mut held: Vec<_> = futures::future::join_all((0..4).map(|_| pool.get()))
        .await
        .into_iter()
        .map(|r| r.expect("get"))
        .collect();
    held.truncate(2);
    assert_eq!(pool.status().idle, 2);
    pool.resize(1).expect("resize");
    assert_eq!(pool.status().size, 2, "idle ones closed at once");
    held.pop();
    assert_eq!(pool.status().size, 1, "returning one closed");
    assert_eq!(pool.stats().closed(CloseReason::Resize), 3);
    assert!(pool.resize(0).is_err());
    let waiter = {
        let p = pool.clone();
        tokio::spawn(async move { p.get().await.map(|c| c.id) })
    };
    settle().await;
    assert_eq!(pool.status().waiters, 1);
    pool.resize(2).expect("grow");
    assert!(waiter.await.expect("join").is_ok());
    drop(held);
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn overflow_connections_close_on_return_when_nobody_waits() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(4)
        .core_size(Some(2))
        .build()
        .await
        .expect("build");
    let held: Vec<_> = futures::future::join_all((0..4).map(|_| pool.get())).await;
    drop(held);
    assert_eq!(pool.status().size, 2);
    assert_eq!(pool.stats().closed(CloseReason::Overflow), 2);
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn retain_detach_broken_and_reset() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(4)
        .min_idle(4)
        .build()
        .await
        .expect("build");
    pool.retain(|c, info| c.id % 2 == 0 && info.age < secs(60));
    assert_eq!(pool.status().size, 2);
    assert_eq!(pool.stats().closed(CloseReason::Retain), 2);

    let conn = pool.get().await.expect("get").detach();
    assert_eq!(pool.status().size, 1);
    drop(conn);

    let mut c = pool.get().await.expect("get");
    c.broken = true;
    drop(c);
    assert_eq!(pool.stats().closed(CloseReason::Broken), 1);

    let mut c = pool.get().await.expect("get");
    c.dirty = true;
    drop(c);
    settle().await;
    assert_eq!(script.resets.load(Ordering::SeqCst), 1);
    let c = pool.get().await.expect("get");
    assert!(!c.dirty, "reset before reuse");
    drop(c);
    script.reset_fails.store(true, Ordering::SeqCst);
    let mut c = pool.get().await.expect("get");
    c.dirty = true;
    drop(c);
    settle().await;
    assert_eq!(pool.stats().closed(CloseReason::FailedReset), 1);
    advance(secs(2)).await;
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn close_fails_waiters_and_drains_leases() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m).max_size(1).build().await.expect("build");
    let held = pool.get().await.expect("get");
    let waiter = {
        let p = pool.clone();
        tokio::spawn(async move { p.get().await.map(|_| ()) })
    };
    settle().await;
    let closer = {
        let p = pool.clone();
        tokio::spawn(async move { p.close(secs(10)).await })
    };
    settle().await;
    let err = waiter.await.expect("join").expect_err("closed");
    assert!(matches!(err, lido_core::Error::Closed));
    assert!(matches!(pool.get().await, Err(lido_core::Error::Closed)));
    assert!(!closer.is_finished(), "waits for the lease");
    drop(held);
    let report = closer.await.expect("join");
    assert!(report.drained);
    assert_eq!(script.live(), 0);

    let (m, _script) = Fake::new();
    let pool = Pool::builder(m).max_size(1).build().await.expect("build");
    let _leaked = pool.get().await.expect("get");
    let report = pool.close(secs(1)).await;
    assert_eq!((report.drained, report.outstanding), (false, 1));
}

#[tokio::test(start_paused = true)]
async fn maintenance_stops_when_last_handle_drops() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(2)
        .min_idle(1)
        .build()
        .await
        .expect("build");
    drop(pool);
    advance(secs(3)).await;
    assert_eq!(
        std::sync::Arc::strong_count(&script),
        1,
        "manager dropped with the pool"
    );
    assert_eq!(script.live(), 0);
}

#[tokio::test(start_paused = true)]
async fn leak_reported_once_with_call_site_and_max_lease_closes() {
    let (m, _script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(2)
        .leak_threshold(Some(secs(5)))
        .max_lease(Some(secs(20)))
        .build()
        .await
        .expect("build");
    let line = line!() + 1;
    let held = pool.get().await.expect("get");
    advance(secs(4)).await;
    assert!(pool.leaks().is_empty());
    advance(secs(3)).await;
    let leaks = pool.leaks();
    assert_eq!(leaks.len(), 1);
    assert_eq!(leaks[0].location.file(), file!());
    assert_eq!(leaks[0].location.line(), line);
    advance(secs(5)).await;
    assert_eq!(pool.stats().leaks(), 1, "reported once");
    advance(secs(10)).await;
    drop(held);
    assert_eq!(pool.stats().closed(CloseReason::MaxLease), 1);
    assert!(pool.leaks().is_empty());
}

/// Leases begin and end in each connection's own record, outside the
/// pool's lock: `leaks()`, read while four tasks keep taking and returning
/// the other connections on the runtime's two threads, still finds the one
/// lease held past the threshold, with its call site, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lease_is_found_while_other_leases_churn_on_other_threads() {
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use std::sync::Arc;

    let (m, _script) = Fake::new();
    let threshold = Duration::from_millis(20);
    let pool = Pool::builder(m)
        .max_size(4)
        .leak_threshold(Some(threshold))
        .build()
        .await
        .expect("build");
    let line = line!() + 1;
    let held = pool.get().await.expect("get");
    let stop = Arc::new(AtomicBool::new(false));
    let leases = Arc::new(AtomicU64::new(0));
    let churn: Vec<_> = (0..4)
        .map(|_| {
            let (pool, stop, leases) = (pool.clone(), Arc::clone(&stop), Arc::clone(&leases));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let g = pool.get().await.expect("get");
                    tokio::task::yield_now().await;
                    drop(g);
                    leases.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(threshold * 2).await;
    // Read leaks() until the churn has taken and returned 500 more leases
    // meanwhile (10 s at most).
    let until = leases.load(Ordering::Relaxed) + 500;
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = pool.leaks();
        let mine = found.iter().find(|l| l.conn_id == held.id());
        let mine = mine.expect("the held lease is reported");
        assert_eq!(
            (mine.location.file(), mine.location.line()),
            (file!(), line)
        );
        if leases.load(Ordering::Relaxed) >= until {
            break;
        }
        assert!(std::time::Instant::now() < give_up, "the churn stalled");
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in churn {
        task.await.expect("join");
    }
    // Every churned lease ended: only the held one is left.
    let left: Vec<u64> = pool.leaks().iter().map(|l| l.conn_id).collect();
    assert_eq!(left, vec![held.id()]);
    drop(held);
    assert!(pool.leaks().is_empty());
}

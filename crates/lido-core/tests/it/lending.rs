//! Lane lending (`LaneLimits::lend`): idle reserved connections are lent to
//! lower lanes; a higher-lane waiter that waited past the budget gets the
//! lowest-lane lent call stopped through the manager's preempt handle, and
//! that connection is closed, not handed on. Off by default.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use lido_core::{CloseReason, Config, LaneLimits, Pooled, Priority};
use lido_testkit::fake::{advance, settle, Fake};

use crate::lanes::pool;

use Priority::{Background, Critical, Normal};

const BUDGET: Duration = Duration::from_millis(50);

/// A lent "call": holds its lease until the pool preempts it (or forever).
fn call_until_preempted(guard: Pooled<Fake>) -> tokio::task::JoinHandle<bool> {
    tokio::spawn(async move {
        let flag = Arc::clone(&guard.preempted);
        for _ in 0..10_000 {
            if flag.load(Ordering::SeqCst) {
                return true; // the caller sees "preempted" and lets go
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(guard);
        false
    })
}

#[tokio::test(start_paused = true)]
async fn a_critical_waiter_past_the_budget_preempts_the_lent_call() {
    let lanes = LaneLimits::default().reserve(Critical, 1).lend(BUDGET);
    let (pool, script) = pool(2, lanes);
    let own = pool
        .get_with_priority(Background)
        .await
        .expect("within limits");
    let lent = pool
        .get_with_priority(Background)
        .await
        .expect("lent: the reserve was idle");
    assert_eq!(pool.status().in_use_by_lane, [0, 0, 2]);
    let call = call_until_preempted(lent);

    let started = tokio::time::Instant::now();
    let p = pool.clone();
    let critical = tokio::spawn(async move { p.get_with_priority(Critical).await });
    advance(BUDGET / 2).await;
    assert!(!critical.is_finished(), "within its budget Critical waits");
    assert_eq!(script.preemptions.load(Ordering::SeqCst), 0);

    advance(BUDGET).await;
    assert!(call.await.expect("join"), "the lent call was preempted");
    settle().await;
    let got = critical.await.expect("join").expect("Critical served");
    let waited = started.elapsed();
    assert!(waited >= BUDGET, "not before its budget: {waited:?}");
    assert!(waited < BUDGET * 4, "soon after it: {waited:?}");
    assert_eq!(
        script.preemptions.load(Ordering::SeqCst),
        1,
        "one call stopped"
    );
    assert_eq!(pool.stats().preemptions(), 1);
    assert_eq!(
        pool.stats().closed(CloseReason::Broken),
        1,
        "the preempted connection is closed, never handed on"
    );
    assert!(
        !own.preempted.load(Ordering::SeqCst),
        "the lane's own lease is untouched"
    );
    assert!(!got.preempted.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn without_lending_the_reserve_stays_idle_and_nothing_is_preempted() {
    let (pool, script) = pool(2, LaneLimits::default().reserve(Critical, 1));
    let _own = pool
        .get_with_priority(Background)
        .await
        .expect("within limits");
    let p = pool.clone();
    let second = tokio::spawn(async move { p.get_with_priority(Background).await });
    advance(BUDGET * 4).await;
    assert!(!second.is_finished(), "the reserve is never lent");
    let critical = pool.get_with_priority(Critical).await.expect("the reserve");
    assert_eq!(script.preemptions.load(Ordering::SeqCst), 0);
    assert_eq!(pool.stats().preemptions(), 0);
    drop(critical);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_never_preempts_its_own_or_a_higher_lane() {
    // Normal keeps 1 for itself and Critical; Background borrows it.
    let lanes = LaneLimits::default().reserve(Normal, 1).lend(BUDGET);
    let (pool, script) = pool(2, lanes);
    let _bg = pool.get_with_priority(Background).await.expect("own");
    let lent = pool.get_with_priority(Background).await.expect("lent");
    let _call = call_until_preempted(lent);
    // Another Background caller waits past the budget: no preemption.
    let p = pool.clone();
    let waiting = tokio::spawn(async move { p.get_with_priority(Background).await });
    advance(BUDGET * 4).await;
    assert!(!waiting.is_finished());
    assert_eq!(
        script.preemptions.load(Ordering::SeqCst),
        0,
        "same lane: never"
    );
    // A Normal caller past the budget does preempt it.
    let p = pool.clone();
    let normal = tokio::spawn(async move { p.get_with_priority(Normal).await });
    advance(BUDGET * 2).await;
    assert_eq!(script.preemptions.load(Ordering::SeqCst), 1);
    settle().await;
    assert!(
        normal.await.expect("join").is_ok(),
        "Normal served after the preemption"
    );
    waiting.abort();
}

#[test]
fn lending_is_off_by_default() {
    assert_eq!(LaneLimits::default().preempt_after, None);
    assert_eq!(Config::default().lanes.preempt_after, None);
}

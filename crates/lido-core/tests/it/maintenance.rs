//! The maintenance task in a pool that is not idle: keepalive pings neither
//! grow the pool nor keep connections from `idle_timeout`, `idle_timeout`
//! counts idle connections (not open ones) against `min_idle`, and the task
//! really ends with the last `Pool` handle (at once, not at its next round).

use std::sync::Arc;

use lido_core::{AdaptiveConfig, CloseReason, Pool};
use lido_testkit::fake::{advance, assert_at_rest, secs, settle, Fake, Script};
use tokio::runtime::RuntimeMetrics;

#[tokio::test(start_paused = true)]
async fn keepalive_pings_neither_grow_the_pool_nor_defeat_idle_timeout() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(8)
        .min_idle(2)
        .keepalive(Some(secs(2)))
        .idle_timeout(Some(secs(7)))
        .build()
        .await
        .expect("build");
    // Four connections in use once, then idle: two above min_idle.
    let held: Vec<_> = futures::future::join_all((0..4).map(|_| pool.get())).await;
    drop(held);
    assert_eq!(pool.status().idle, 4);
    // Several keepalive rounds: pings in flight count as idle, so nothing is
    // opened to replace them.
    for _ in 0..5 {
        advance(secs(1)).await;
        let s = pool.status();
        assert!(s.size <= 4, "keepalive opened extra connections: {s:?}");
    }
    assert!(script.checks() >= 4, "idle connections were pinged");
    assert_eq!(pool.stats().created(), 4);
    // Pings do not count as use: the two above min_idle still reach idle_timeout.
    advance(secs(4)).await;
    assert_eq!(pool.status().size, 2, "{:?}", pool.status());
    assert_eq!(pool.stats().closed(CloseReason::Idle), 2);
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_keeps_min_idle_idle_connections_while_others_are_in_use() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(8)
        .min_idle(2)
        .idle_timeout(Some(secs(5)))
        .build()
        .await
        .expect("build");
    let mut held: Vec<_> = futures::future::join_all((0..6).map(|_| pool.get()))
        .await
        .into_iter()
        .map(|c| c.expect("get"))
        .collect();
    // Return three; three stay in use.
    held.truncate(3);
    assert_eq!(pool.status().idle, 3);
    advance(secs(8)).await;
    let s = pool.status();
    // One idle connection above min_idle went; the two min_idle ones stay,
    // however many are leased (size 5 > min_idle must not reap them).
    assert_eq!((s.idle, s.in_use), (2, 3), "{s:?}");
    assert_eq!(pool.stats().closed(CloseReason::Idle), 1);
    assert_eq!(pool.stats().created(), 6, "nothing reaped and reopened");
    drop(held);
    assert_at_rest(&pool, &script);
}

/// A pool with one idle connection whose periodic tasks (maintenance,
/// adaptive sizing) run once an hour: only the pool being done can end
/// them before the clock moves.
async fn hourly_pool() -> (Pool<Fake>, Arc<Script>, RuntimeMetrics, usize) {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(4)
        .min_idle(1)
        .maintenance_interval(secs(3600))
        .adaptive(Some(AdaptiveConfig {
            min: 1,
            max: 4,
            interval: secs(3600),
            ..AdaptiveConfig::default()
        }))
        .build()
        .await
        .expect("build");
    let metrics = tokio::runtime::Handle::current().metrics();
    settle().await;
    let alive = metrics.num_alive_tasks();
    assert_eq!(alive, 3, "maintenance, adaptive sizing and the sweeper run");
    (pool, script, metrics, alive)
}

#[tokio::test(start_paused = true)]
async fn periodic_tasks_end_at_once_when_the_last_handle_drops_even_with_a_lease_out() {
    let (pool, script, metrics, alive) = hourly_pool().await;
    let lease = pool.get().await.expect("get");
    let other = pool.clone();
    drop(pool);
    settle().await;
    assert_eq!(metrics.num_alive_tasks(), alive, "a handle is still live");
    drop(other);
    settle().await;
    assert_eq!(
        metrics.num_alive_tasks(),
        alive - 2,
        "both periodic tasks ended without waiting out their hour; the sweeper waits for the lease"
    );
    drop(lease);
    settle().await;
    assert_eq!(
        metrics.num_alive_tasks(),
        0,
        "the sweeper ended with the pool"
    );
    assert_eq!(script.live(), 0, "every connection closed");
}

#[tokio::test(start_paused = true)]
async fn periodic_tasks_end_at_once_when_the_pool_closes() {
    let (pool, _script, metrics, alive) = hourly_pool().await;
    let report = pool.close(secs(1)).await;
    assert!(report.drained);
    settle().await;
    assert_eq!(metrics.num_alive_tasks(), alive - 2);
}

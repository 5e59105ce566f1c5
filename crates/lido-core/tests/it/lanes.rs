//! Capacity per priority lane (`Config::lanes`): reserved connections lower
//! lanes never take, a share cap per lane, returned connections to the
//! highest lane within its limits; and a property test that random
//! sequences never break the limits, answer every caller and leak nothing.

use std::time::Duration;

use lido_core::{Config, LaneLimits, Pool, Pooled, Priority};
use lido_testkit::fake::{advance, assert_at_rest, paused_runtime, settle, Fake};
use proptest::prelude::*;

use Priority::{Background, Critical, Normal};

/// A lazily built pool of `max_size` under `lanes` on the fake manager.
pub(crate) fn pool(
    max_size: usize,
    lanes: LaneLimits,
) -> (Pool<Fake>, std::sync::Arc<lido_testkit::fake::Script>) {
    let (m, script) = Fake::new();
    let cfg = Config {
        max_size,
        lanes,
        acquire_timeout: Duration::from_secs(5),
        leak_threshold: None,
        ..Config::default()
    };
    (
        Pool::builder(m).config(cfg).build_lazy().expect("build"),
        script,
    )
}

/// Starts a `get` in `lane` on its own task.
fn get(
    pool: &Pool<Fake>,
    lane: Priority,
) -> tokio::task::JoinHandle<Result<Pooled<Fake>, lido_core::Error<lido_testkit::fake::FakeError>>>
{
    let p = pool.clone();
    tokio::spawn(async move { p.get_with_priority(lane).await })
}

#[tokio::test(start_paused = true)]
async fn a_reserved_connection_serves_critical_while_background_holds_the_rest() {
    let (pool, _s) = pool(4, LaneLimits::default().reserve(Critical, 1));
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            pool.get_with_priority(Background)
                .await
                .expect("background"),
        );
    }
    let queued = get(&pool, Background);
    settle().await;
    assert!(!queued.is_finished(), "the fourth connection is Critical's");
    assert_eq!(pool.status().waiters, 1);
    let critical =
        tokio::time::timeout(Duration::from_millis(50), pool.get_with_priority(Critical))
            .await
            .expect("no wait behind Background")
            .expect("critical");
    assert_eq!(pool.status().in_use_by_lane, [1, 0, 3]);
    drop(critical);
    settle().await;
    assert!(
        !queued.is_finished(),
        "returned by Critical, still not Background's"
    );
    drop(held.pop());
    let got = queued
        .await
        .expect("task")
        .expect("background served once one of its own returns");
    assert_eq!(pool.status().in_use_by_lane, [0, 0, 3]);
    drop(got);
}

#[tokio::test(start_paused = true)]
async fn a_share_caps_a_lane_and_returns_go_to_the_highest_lane_within_limits() {
    let (pool, _s) = pool(8, LaneLimits::default().max_share(Background, 0.25));
    let a = pool.get_with_priority(Background).await.expect("1st");
    let b = pool.get_with_priority(Background).await.expect("2nd");
    let third = get(&pool, Background);
    settle().await;
    assert!(!third.is_finished(), "Background may hold 2 of 8");
    // Normal is not held back by the Background waiter.
    let mut normals = Vec::new();
    for _ in 0..6 {
        normals.push(pool.get_with_priority(Normal).await.expect("normal"));
    }
    assert_eq!(pool.status().in_use_by_lane, [0, 6, 2]);
    let normal_waiter = get(&pool, Normal);
    settle().await;
    // A Normal connection comes back: the Normal waiter gets it (Background is capped).
    drop(normals.pop());
    let n = normal_waiter.await.expect("task").expect("normal");
    assert!(!third.is_finished());
    // A Background one comes back: its waiter gets it.
    drop(a);
    let t = third.await.expect("task").expect("background");
    assert_eq!(pool.status().in_use_by_lane, [0, 6, 2]);
    drop((b, n, t, normals));
}

#[tokio::test(start_paused = true)]
async fn a_capped_lane_waits_while_idle_connections_wait_for_it() {
    // Background may hold 1 of 3; two idle connections stay for the others,
    // and a Background waiter is served the moment its own lease ends,
    // even if that connection is closed instead of returned.
    let (pool, _s) = pool(3, LaneLimits::default().max_share(Background, 0.34));
    let warm: Vec<_> = [Normal, Normal]
        .into_iter()
        .map(|l| pool.get_with_priority(l))
        .collect();
    let warm = futures::future::join_all(warm).await;
    drop(warm);
    settle().await;
    let mut first = pool.get_with_priority(Background).await.expect("1st");
    let second = get(&pool, Background);
    settle().await;
    assert!(!second.is_finished());
    assert_eq!(pool.status().idle, 1);
    first.discard_on_drop();
    drop(first);
    let got = second
        .await
        .expect("task")
        .expect("served from the idle connection");
    drop(got);
}

#[derive(Debug, Clone)]
enum Op {
    Get {
        lane: u8,
        hold_ms: u64,
        broken: bool,
    },
    Cancelled {
        lane: u8,
        after_ms: u64,
    },
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..3, 0u64..200, prop::bool::weighted(0.1))
            .prop_map(|(lane, hold_ms, broken)| Op::Get { lane, hold_ms, broken }),
        2 => (0u8..3, 0u64..50).prop_map(|(lane, after_ms)| Op::Cancelled { lane, after_ms }),
        2 => (0u64..300).prop_map(Op::Advance),
    ]
}

fn limits() -> impl Strategy<Value = (usize, LaneLimits)> {
    (
        2usize..7,
        0usize..3,
        0usize..2,
        prop::option::of(0.2f64..1.0),
        prop::option::of(0.3f64..1.0),
    )
        .prop_map(|(max, rc, rn, share_b, share_n)| {
            let mut l = LaneLimits::default()
                .reserve(Critical, rc.min(max - 1))
                .reserve(Normal, rn.min(max - 1 - rc.min(max - 1)));
            l.max_share[Background as usize] = share_b;
            l.max_share[Normal as usize] = share_n;
            (max, l)
        })
}

/// The limits hold for `held` (per lane) in a pool of `max`.
fn within(held: [usize; 3], l: &LaneLimits, max: usize) -> bool {
    Priority::ALL.into_iter().all(|lane| {
        let i = lane as usize;
        let room = max - l.reserved[..i].iter().sum::<usize>();
        held[i] <= l.limit(lane, max) && held[i..].iter().sum::<usize>() <= room
    })
}

fn run(max: usize, lanes: LaneLimits, ops: Vec<Op>) {
    let rt = paused_runtime();
    rt.block_on(async move {
        let (pool, script) = pool(max, lanes);
        let mut tasks = Vec::new();
        for op in ops {
            match op {
                Op::Get {
                    lane,
                    hold_ms,
                    broken,
                } => {
                    let p = pool.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut c = p
                            .get_with_priority(Priority::ALL[lane as usize])
                            .await
                            .expect("served in time");
                        c.broken = broken;
                        tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                    }));
                }
                Op::Cancelled { lane, after_ms } => {
                    let p = pool.clone();
                    tasks.push(tokio::spawn(async move {
                        let get = p.get_with_priority(Priority::ALL[lane as usize]);
                        let _ = tokio::time::timeout(Duration::from_millis(after_ms), get).await;
                    }));
                }
                Op::Advance(ms) => advance(Duration::from_millis(ms)).await,
            }
            settle().await;
            let s = pool.status();
            assert!(
                within(s.in_use_by_lane, &lanes, max),
                "limits broken: {s:?} under {lanes:?}"
            );
            assert!(s.in_use_by_lane.iter().sum::<usize>() <= s.in_use, "{s:?}");
        }
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("every caller answered")
                .expect("every get served before its timeout");
        }
        advance(Duration::from_secs(3)).await;
        assert_eq!(pool.status().in_use_by_lane, [0, 0, 0]);
        assert_at_rest(&pool, &script);
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_the_lane_limits_and_serve_everyone((max, lanes) in limits(), ops in prop::collection::vec(op(), 1..50)) {
        run(max, lanes, ops);
    }
}

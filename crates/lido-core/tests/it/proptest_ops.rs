//! Property test: random get / hold / drop / detach / cancel / fail / slow
//! connect and check / resize / close sequences never leak, never exceed
//! max_size, and answer every waiter.

use std::sync::atomic::Ordering;
use std::time::Duration;

use lido_core::{BreakerConfig, Pool, Priority, RetryConfig};
use lido_testkit::fake::{advance, assert_at_rest, paused_runtime, settle, Fake};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

#[derive(Debug, Clone)]
enum Op {
    Get {
        hold_ms: u64,
        priority: u8,
        broken: bool,
        dirty: bool,
        detach: bool,
    },
    GetCancelledAfter(u64),
    BadPassword(bool),
    ConnectDelay(u64),
    CheckDelay(u64),
    Close,
    FailNext(u32),
    Down(bool),
    CheckFails(bool),
    Advance(u64),
    Resize(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            0u64..300,
            0u8..3,
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.05)
        )
            .prop_map(|(hold_ms, priority, broken, dirty, detach)| Op::Get {
                hold_ms,
                priority,
                broken,
                dirty,
                detach
            }),
        2 => (0u64..50).prop_map(Op::GetCancelledAfter),
        1 => prop::bool::weighted(0.3).prop_map(Op::BadPassword),
        1 => (0u64..120).prop_map(Op::ConnectDelay),
        1 => (0u64..80).prop_map(Op::CheckDelay),
        1 => Just(Op::Close),
        1 => (0u32..4).prop_map(Op::FailNext),
        1 => any::<bool>().prop_map(Op::Down),
        1 => any::<bool>().prop_map(Op::CheckFails),
        3 => (0u64..800).prop_map(Op::Advance),
        1 => (1usize..6).prop_map(Op::Resize),
    ]
}

fn run(max: usize, min_idle: usize, ops: Vec<Op>) {
    let rt = paused_runtime();
    rt.block_on(async move {
        let (m, script) = Fake::new();
        let pool = Pool::builder(m)
            .max_size(max)
            .min_idle(min_idle.min(max))
            .acquire_timeout(Duration::from_secs(2))
            .validation_bypass(Duration::from_millis(100))
            .retry(RetryConfig {
                base: Duration::from_millis(5),
                cap: Duration::from_millis(50),
                max_attempts: 3,
            })
            .breaker(BreakerConfig {
                consecutive_failures: 4,
                open_for: Duration::from_millis(200),
                ..Default::default()
            })
            .build_lazy()
            .expect("build");
        let mut tasks = Vec::new();
        let mut peak = max;
        for op in ops {
            match op {
                Op::Get {
                    hold_ms,
                    priority,
                    broken,
                    dirty,
                    detach,
                } => {
                    let p = pool.clone();
                    let prio = Priority::ALL[priority as usize];
                    tasks.push(tokio::spawn(async move {
                        if let Ok(mut c) = p.get_with_priority(prio).await {
                            c.broken = broken;
                            c.dirty = dirty;
                            tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                            if detach {
                                drop(c.detach());
                            }
                        }
                    }));
                }
                Op::BadPassword(b) => script.bad_password.store(b, Ordering::SeqCst),
                Op::ConnectDelay(ms) => *script.connect_delay.lock() = Duration::from_millis(ms),
                Op::CheckDelay(ms) => *script.check_delay.lock() = Duration::from_millis(ms),
                Op::Close => {
                    let p = pool.clone();
                    tasks.push(tokio::spawn(async move {
                        let _ = p.close(Duration::from_millis(500)).await;
                    }));
                }
                Op::GetCancelledAfter(ms) => {
                    let p = pool.clone();
                    tasks.push(tokio::spawn(async move {
                        let _ = tokio::time::timeout(Duration::from_millis(ms), p.get()).await;
                    }));
                }
                Op::FailNext(n) => script.fail_next.store(n, Ordering::SeqCst),
                Op::Down(d) => script.down.store(d, Ordering::SeqCst),
                Op::CheckFails(f) => script.check_fails.store(f, Ordering::SeqCst),
                Op::Advance(ms) => advance(Duration::from_millis(ms)).await,
                Op::Resize(n) => {
                    let _ = pool.resize(n.max(min_idle.min(max)));
                }
            }
            settle().await;
            let s = pool.status();
            peak = peak.max(s.max_size);
            // After a shrink, leased connections above the new max close as they return.
            assert!(s.size + s.connecting <= peak, "over max: {s:?}");
        }
        script.down.store(false, Ordering::SeqCst);
        script.bad_password.store(false, Ordering::SeqCst);
        script.fail_next.store(0, Ordering::SeqCst);
        script.check_fails.store(false, Ordering::SeqCst);
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("every caller answered")
                .expect("task ok");
        }
        advance(Duration::from_secs(3)).await;
        assert_at_rest(&pool, &script);
    });
}

proptest! {
    // Saved failures live next to this file (proptest_ops.proptest-regressions):
    // proptest's default would look beside the test binary's main.rs, in
    // tests/proptest-regressions/.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_sequences_leak_nothing(max in 1usize..5, min_idle in 0usize..3, ops in prop::collection::vec(op(), 1..60)) {
        run(max, min_idle, ops);
    }
}

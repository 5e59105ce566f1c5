//! Drop `get()` after every number of polls, in every situation that makes it
//! await (deadpool's gate-combination style): validating an idle connection,
//! waiting for a connect, retrying a failed connect after backoff, waiting for
//! a return, and combinations. After each drop the pool must come to rest with
//! every connection accounted for, and serve the next caller.

use std::pin::pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::poll;
use lido_core::{Pool, RetryConfig};
use lido_testkit::fake::{advance, assert_at_rest, settle, Fake, Script};

#[derive(Debug, Clone, Copy)]
struct Situation {
    /// An idle connection exists and has been idle past the bypass window
    /// (so `get()` validates it, through a gated check).
    stale_idle: bool,
    /// Connects pass through a gate one step at a time.
    gated_connect: bool,
    /// The first connect attempt fails (a retry after backoff follows).
    first_connect_fails: bool,
    /// The only slot is leased and comes back after a few steps.
    busy: bool,
}

const SITUATIONS: [Situation; 6] = [
    Situation {
        stale_idle: true,
        gated_connect: false,
        first_connect_fails: false,
        busy: false,
    },
    Situation {
        stale_idle: false,
        gated_connect: true,
        first_connect_fails: false,
        busy: false,
    },
    Situation {
        stale_idle: false,
        gated_connect: true,
        first_connect_fails: true,
        busy: false,
    },
    Situation {
        stale_idle: false,
        gated_connect: false,
        first_connect_fails: false,
        busy: true,
    },
    Situation {
        stale_idle: true,
        gated_connect: true,
        first_connect_fails: true,
        busy: false,
    },
    Situation {
        stale_idle: false,
        gated_connect: true,
        first_connect_fails: true,
        busy: true,
    },
];

async fn pool_for(s: Situation) -> (Pool<Fake>, std::sync::Arc<Script>) {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(1)
        .min_idle(usize::from(s.stale_idle || s.busy))
        .acquire_timeout(Duration::from_secs(5))
        .retry(RetryConfig {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(40),
            max_attempts: 3,
        })
        .build()
        .await
        .expect("build");
    (pool, script)
}

/// One step of the world moving on: a gate opens once, time passes a little.
async fn step(script: &Script) {
    if let Some(g) = script.connect_gate.lock().clone() {
        g.add_permits(1);
    }
    if let Some(g) = script.check_gate.lock().clone() {
        g.add_permits(1);
    }
    advance(Duration::from_millis(15)).await;
}

async fn drop_after(s: Situation, polls: usize) {
    let (pool, script) = pool_for(s).await;
    let held = if s.busy {
        Some(pool.get().await.expect("hold the only slot"))
    } else {
        None
    };
    if s.stale_idle {
        advance(Duration::from_secs(1)).await;
        script.gate_checks();
    }
    if s.gated_connect {
        script.gate_connects();
    }
    if s.first_connect_fails {
        script.fail_next.store(1, Ordering::SeqCst);
    }
    let mut held = held;
    {
        let mut fut = pin!(pool.get());
        for i in 0..polls {
            if poll!(fut.as_mut()).is_ready() {
                break;
            }
            if i == 2 {
                held.take(); // the lease comes back mid-wait
            }
            step(&script).await;
        }
    } // dropped here, wherever it was
    drop(held);
    // Let everything in flight finish: open the gates for good (a connect
    // or check may already be waiting on one).
    for gate in [&script.connect_gate, &script.check_gate] {
        if let Some(g) = gate.lock().take() {
            g.add_permits(1000);
        }
    }
    for _ in 0..4 {
        step(&script).await;
    }
    advance(Duration::from_millis(200)).await;
    settle().await;
    assert_at_rest(&pool, &script);
    let c = pool
        .get()
        .await
        .unwrap_or_else(|e| panic!("{s:?} after {polls}: {e}"));
    drop(c);
    assert_at_rest(&pool, &script);
}

#[tokio::test(start_paused = true)]
async fn dropping_get_after_any_number_of_polls_leaks_nothing() {
    for s in SITUATIONS {
        for polls in 0..10 {
            drop_after(s, polls).await;
        }
    }
}

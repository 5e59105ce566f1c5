//! Order: a caller whose connection fails validation keeps its turn, reuse
//! order picks the idle connection it promises, and the breaker trips on a
//! failure rate, lets `half_open_trials` through, and reports every event to
//! the observer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use lido_core::{
    BreakerConfig, BreakerState, Error, Event, Observer, Pool, RetryConfig, ReuseOrder,
};
use lido_testkit::fake::{advance, assert_at_rest, settle, Fake};
use parking_lot::Mutex;

#[tokio::test(start_paused = true)]
async fn a_caller_whose_connection_fails_validation_keeps_its_turn() {
    let (m, script) = Fake::new();
    let pool = Pool::builder(m)
        .max_size(1)
        .min_idle(1)
        .build()
        .await
        .expect("build");
    advance(Duration::from_secs(1)).await; // idle past the bypass window
    let gate = script.gate_checks();
    let order = Arc::new(Mutex::new(Vec::new()));
    let spawn = |name: &'static str| {
        let (pool, order) = (pool.clone(), Arc::clone(&order));
        tokio::spawn(async move {
            let c = pool.get().await.expect("served");
            order.lock().push(name);
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(c);
        })
    };
    let first = spawn("first"); // takes the idle connection, validation blocks
    settle().await;
    let second = spawn("second"); // queues behind
    settle().await;
    assert_eq!(pool.status().waiters, 1);
    script.check_fails.store(true, Ordering::SeqCst);
    gate.add_permits(1); // first's validation fails: a new connection is opened
    settle().await;
    script.check_fails.store(false, Ordering::SeqCst);
    *script.check_gate.lock() = None;
    first.await.expect("first");
    second.await.expect("second");
    assert_eq!(*order.lock(), ["first", "second"]);
    assert_at_rest(&pool, &script);
}

async fn take_three_and_return(pool: &Pool<Fake>) -> Vec<u64> {
    let conns: Vec<_> = futures::future::join_all((0..3).map(|_| pool.get()))
        .await
        .into_iter()
        .map(|c| c.expect("get"))
        .collect();
    let ids = conns.iter().map(|c| c.id()).collect();
    drop(conns); // returned in order: first, second, third
    ids
}

#[tokio::test(start_paused = true)]
async fn reuse_order_lifo_hands_out_the_last_returned_and_fifo_the_first() {
    for (order, pick) in [(ReuseOrder::Lifo, 2), (ReuseOrder::Fifo, 0)] {
        let (m, _) = Fake::new();
        let pool = Pool::builder(m)
            .max_size(3)
            .reuse_order(order)
            .build()
            .await
            .expect("build");
        let ids = take_three_and_return(&pool).await;
        let next = pool.get().await.expect("get");
        assert_eq!(next.id(), ids[pick], "{order:?}");
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Observer for Recorder {
    fn on_event(&self, event: &Event<'_>) {
        let name = match event {
            Event::Acquired { .. } => "acquired".to_string(),
            Event::Released { .. } => "released".to_string(),
            Event::Created { .. } => "created".to_string(),
            Event::Closed { reason } => format!("closed:{}", reason.as_str()),
            Event::ConnectFailed { will_retry, .. } => format!("connect_failed:{will_retry}"),
            Event::AcquireTimeout { .. } => "timeout".to_string(),
            Event::Breaker(t) => format!("breaker:{}", t.to),
            _ => "other".to_string(),
        };
        self.0.lock().push(name);
    }
}

#[tokio::test(start_paused = true)]
async fn the_breaker_trips_on_a_failure_rate_and_the_observer_sees_it_all() {
    let (m, script) = Fake::new();
    let recorder = Arc::new(Recorder::default());
    let pool = Pool::builder(m)
        .max_size(2)
        .acquire_timeout(Duration::from_secs(1))
        .retry(RetryConfig {
            max_attempts: 1,
            ..Default::default()
        })
        .breaker(BreakerConfig {
            consecutive_failures: 100, // never by streak: by rate only
            failure_rate: 0.5,
            min_calls: 6,
            window: Duration::from_secs(60),
            open_for: Duration::from_secs(1),
            half_open_trials: 2,
            ..Default::default()
        })
        .observer(Arc::clone(&recorder) as Arc<dyn Observer>)
        .build()
        .await
        .expect("build");
    // succeed, fail, succeed, fail, ...: never two failures in a row.
    for i in 0..6 {
        script
            .fail_next
            .store(u32::from(i % 2 == 1), Ordering::SeqCst);
        match pool.get().await {
            Ok(c) => drop(c.detach()), // the next get must connect again
            Err(e) => assert!(matches!(e, Error::Connect { .. }), "{e:?}"),
        }
    }
    assert_eq!(pool.breaker_state(), BreakerState::Open, "3 of 6 failed");
    assert!(matches!(pool.get().await, Err(Error::CircuitOpen { .. })));

    // Half-open: two trial connects at once, both let through.
    advance(Duration::from_millis(1100)).await;
    let gate = script.gate_connects();
    let attempts = script.attempts();
    let a = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| drop(c.detach())) }
    });
    let b = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| drop(c.detach())) }
    });
    settle().await;
    assert_eq!(script.attempts() - attempts, 2, "half_open_trials = 2");
    gate.add_permits(2);
    a.await.expect("a").expect("trial served");
    b.await.expect("b").expect("trial served");
    assert_eq!(pool.breaker_state(), BreakerState::Closed);

    let seen = recorder.0.lock().clone();
    for want in [
        "created",
        "acquired",
        "closed:detached",
        "connect_failed:false",
        "breaker:open",
        "breaker:half_open",
        "breaker:closed",
    ] {
        assert!(
            seen.iter().any(|e| e == want),
            "{want} missing from {seen:?}"
        );
    }
    let opened = seen.iter().position(|e| e == "breaker:open");
    let half = seen.iter().position(|e| e == "breaker:half_open");
    let closed = seen.iter().position(|e| e == "breaker:closed");
    assert!(
        opened < half && half < closed,
        "transitions in order: {seen:?}"
    );
}

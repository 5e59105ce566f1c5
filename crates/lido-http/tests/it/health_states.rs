//! Drives pools into each health state with real causes and back.

use lido_testkit::fake::{advance, settle};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::{builder, pool};
use lido_core::BreakerState;
use lido_http::health::keys;
use lido_http::{
    health, FnCheck, HealthChecker, HealthConfig, HealthMonitor, Observation, Status,
    DEFAULT_POOL_NAME,
};

fn cfg() -> HealthConfig {
    HealthConfig {
        window: Duration::from_secs(5),
        min_samples: 3,
        ..HealthConfig::default()
    }
}

fn status_of(report: &lido_http::HealthReport, key: &str, pool: &str) -> Status {
    report
        .check(key, pool)
        .unwrap_or_else(|| panic!("no {key} check for {pool}: {report:#?}"))
        .status
}

#[tokio::test(start_paused = true)]
async fn healthy_pool_passes_every_check() {
    let (pool, _knobs) = pool(4).await;
    let report = health(&pool, &cfg()).await;
    assert_eq!(report.status, Status::Pass, "{}", report.summary());
    let rt = report
        .check(keys::RESPONSE_TIME, DEFAULT_POOL_NAME)
        .expect("response time");
    assert_eq!(rt.observed_unit.as_deref(), Some("ms"));
    assert_eq!(rt.component_type, "datastore");
    for key in [
        keys::UTILIZATION,
        keys::WAITERS,
        keys::ACQUIRE_TIMEOUTS,
        keys::CONNECT_ERRORS,
        keys::GET_ERRORS,
        keys::BREAKER,
        keys::LEAKS,
        keys::MAINTENANCE,
    ] {
        assert_eq!(
            status_of(&report, key, DEFAULT_POOL_NAME),
            Status::Pass,
            "{key}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn database_down_fails_health_but_not_liveness_then_recovers() {
    let (pool, knobs) = pool(4).await;
    let monitor = HealthMonitor::builder()
        .pool("main", pool.clone())
        .config(cfg())
        .interval(Duration::from_millis(500))
        .spawn()
        .expect("monitor");
    assert_eq!(monitor.refresh().await.status, Status::Pass);

    knobs.set_down(true);
    knobs.check_fails.store(true, Ordering::SeqCst);
    advance(Duration::from_secs(3)).await;
    let report = monitor.refresh().await;
    assert_eq!(report.status, Status::Fail, "{report:#?}");
    assert_eq!(
        status_of(&report, keys::RESPONSE_TIME, "main"),
        Status::Fail
    );
    assert_eq!(pool.breaker_state(), BreakerState::Open);
    assert_eq!(status_of(&report, keys::BREAKER, "main"), Status::Fail);
    assert_eq!(
        status_of(&report, keys::CONNECT_ERRORS, "main"),
        Status::Fail
    );
    let rt = report.check(keys::RESPONSE_TIME, "main").expect("rt");
    assert!(rt.output.starts_with("ping failed"), "{}", rt.output);

    assert_eq!(monitor.readiness().status, Status::Fail);
    let live = monitor.liveness();
    assert_eq!(
        live.status,
        Status::Pass,
        "liveness must not follow the database: {live:#?}"
    );

    knobs.set_down(false);
    knobs.check_fails.store(false, Ordering::SeqCst);
    // Past the breaker's open_for and the error-rate window.
    advance(Duration::from_secs(8)).await;
    let report = monitor.refresh().await;
    assert_eq!(report.status, Status::Pass, "{}", report.summary());
    assert_eq!(pool.breaker_state(), BreakerState::Closed);
    assert_eq!(monitor.readiness().status, Status::Pass);
}

#[tokio::test(start_paused = true)]
async fn saturation_with_waiters_warns_then_passes() {
    let (pool, _knobs) = pool(2).await;
    let checker = HealthChecker::new(cfg()).pool("main", pool.clone());
    let held = vec![pool.get().await.expect("a"), pool.get().await.expect("b")];
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let p = pool.clone();
            tokio::spawn(async move { p.get().await.map(drop) })
        })
        .collect();
    settle().await;
    assert_eq!(pool.status().waiters, 3);

    let report = checker.run().await;
    assert_eq!(report.status, Status::Warn, "{report:#?}");
    assert_eq!(status_of(&report, keys::UTILIZATION, "main"), Status::Warn);
    assert_eq!(status_of(&report, keys::WAITERS, "main"), Status::Warn);
    let rt = report.check(keys::RESPONSE_TIME, "main").expect("rt");
    assert_eq!(
        rt.status,
        Status::Warn,
        "saturation is not a database failure: {rt:#?}"
    );
    assert!(rt.output.contains("saturated"), "{}", rt.output);
    let waiting = report.check(keys::WAITERS, "main").expect("waiters");
    assert_eq!(waiting.observed_value, Some(3.into()));

    drop(held);
    for w in waiters {
        w.await.expect("join").expect("waiter served");
    }
    let report = checker.run().await;
    assert_eq!(report.status, Status::Pass, "{}", report.summary());
}

#[tokio::test(start_paused = true)]
async fn acquire_timeouts_warn_within_the_window_only() {
    let (pool, _knobs) = pool(1).await;
    let checker = HealthChecker::new(cfg()).pool("main", pool.clone());
    assert_eq!(checker.run().await.status, Status::Pass);
    let held = pool.get().await.expect("held");
    let err = pool.get().await.expect_err("times out");
    assert!(err.is_timeout(), "{err}");
    drop(held);
    let report = checker.run().await;
    assert_eq!(
        status_of(&report, keys::ACQUIRE_TIMEOUTS, "main"),
        Status::Warn
    );
    advance(Duration::from_secs(2)).await;
    let report = checker.run().await;
    let timeouts = report
        .check(keys::ACQUIRE_TIMEOUTS, "main")
        .expect("timeouts");
    assert_eq!(
        timeouts.status,
        Status::Warn,
        "baseline still before the timeout"
    );
    assert_eq!(timeouts.observed_value, Some(1.into()));
    advance(Duration::from_secs(5)).await;
    let report = checker.run().await;
    assert_eq!(
        report.status,
        Status::Pass,
        "aged out: {}",
        report.summary()
    );
}

#[tokio::test(start_paused = true)]
async fn slow_checks_warn_then_fail_on_latency_then_pass() {
    let (pool, knobs) = pool(4).await;
    let checker = HealthChecker::new(cfg()).pool("main", pool.clone());

    knobs.set_check_delay(Duration::from_millis(300));
    let report = checker.run().await;
    let rt = report.check(keys::RESPONSE_TIME, "main").expect("rt");
    assert_eq!(rt.status, Status::Warn, "{rt:#?}");
    assert_eq!(rt.observed_value, Some(300.0.into()));
    assert_eq!(report.status, Status::Warn);

    knobs.set_check_delay(Duration::from_secs(3));
    let report = checker.run().await;
    let rt = report.check(keys::RESPONSE_TIME, "main").expect("rt");
    assert_eq!(rt.status, Status::Fail, "{rt:#?}");
    assert!(rt.output.contains("ping_timeout"), "{}", rt.output);

    knobs.set_check_delay(Duration::ZERO);
    let report = checker.run().await;
    assert_eq!(report.status, Status::Pass, "{}", report.summary());
}

#[tokio::test(start_paused = true)]
async fn custom_checks_pass_fail_time_out_and_panic() {
    let (pool, _knobs) = pool(2).await;
    let checker = HealthChecker::new(cfg())
        .pool("main", pool)
        .check(FnCheck::new("queue:depth", || async {
            Ok::<_, std::io::Error>(Observation::pass().value(3, "jobs"))
        }))
        .check(FnCheck::new("cache:reachable", || async {
            Err::<Observation, _>(std::io::Error::other("cache refused"))
        }))
        .check(
            FnCheck::new("search:responseTime", || async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, std::io::Error>(Observation::pass())
            })
            .timeout(Duration::from_millis(100)),
        )
        .check(FnCheck::new("broken:check", || async {
            if true {
                panic!("a bug in a check");
            }
            Ok::<_, std::io::Error>(Observation::pass())
        }));
    let report = checker.run().await;
    assert_eq!(report.status, Status::Fail);
    let get = |k: &str| report.checks_for(k).next().cloned().expect(k);
    assert_eq!(get("queue:depth").status, Status::Pass);
    assert_eq!(get("queue:depth").observed_value, Some(3.into()));
    assert_eq!(get("cache:reachable").status, Status::Fail);
    assert_eq!(get("cache:reachable").output, "cache refused");
    let slow = get("search:responseTime");
    assert_eq!(slow.status, Status::Fail);
    assert_eq!(slow.output, "check did not finish within 100ms");
    assert_eq!(get("broken:check").output, "check panicked");
    assert_eq!(
        status_of(&report, keys::RESPONSE_TIME, "main"),
        Status::Pass
    );
}

#[tokio::test(start_paused = true)]
async fn closed_pool_is_not_ready_but_alive() {
    let (pool, _knobs) = pool(2).await;
    let monitor = HealthMonitor::builder()
        .pool("main", pool.clone())
        .spawn()
        .expect("monitor");
    monitor.refresh().await;
    assert_eq!(monitor.readiness().status, Status::Pass);
    pool.close(Duration::from_secs(1)).await;
    advance(Duration::from_secs(30)).await;
    let ready = monitor.readiness();
    assert_eq!(ready.status, Status::Fail);
    assert!(
        ready.summary().contains("pool closed"),
        "{}",
        ready.summary()
    );
    assert_eq!(
        monitor.liveness().status,
        Status::Pass,
        "{:#?}",
        monitor.liveness()
    );
}

#[test]
fn liveness_fails_once_the_health_loop_and_maintenance_stop() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (monitor, _pool) = rt.block_on(async {
        let (b, _knobs) = builder(2);
        let pool = b
            .maintenance_interval(Duration::from_millis(100))
            .check_timeout(Duration::from_millis(400))
            .build()
            .await
            .expect("pool");
        let monitor = HealthMonitor::builder()
            .pool("main", pool.clone())
            .config(HealthConfig {
                ping_timeout: Duration::from_millis(500),
                liveness_intervals: 1,
                ..cfg()
            })
            .interval(Duration::from_millis(50))
            .spawn()
            .expect("monitor");
        monitor.refresh().await;
        assert_eq!(monitor.liveness().status, Status::Pass);
        (monitor, pool)
    });
    // The runtime, and with it the health loop and the maintenance task, is gone.
    drop(rt);
    std::thread::sleep(Duration::from_secs(2));
    let live = monitor.liveness();
    assert_eq!(live.status, Status::Fail, "{live:#?}");
    let stopped: Vec<&str> = live
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.key.as_str())
        .collect();
    assert_eq!(stopped, vec![keys::MAINTENANCE, keys::HEALTH_LOOP]);
}

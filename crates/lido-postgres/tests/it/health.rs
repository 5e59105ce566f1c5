//! lido-http health checks over real PostgreSQL trouble: a stopped server,
//! a saturated pool, a slow network. No timing assertions: the loops below
//! only guard against hangs.

use crate::common;

use std::time::Duration;

use lido_core::{BreakerConfig, Config, RetryConfig};
use lido_http::health::keys;
use lido_http::{
    health, HealthChecker, HealthConfig, HealthMonitor, HealthReport, Status, Threshold,
};
use lido_postgres::{PgConfig, PgPool};
use lido_testkit::{Fault, FaultProxy, PgServer};
use serde_json::Value;
use tokio::time::Instant;

const HANG_GUARD: Duration = Duration::from_secs(60);

fn pool_config(max_size: usize) -> Config {
    Config {
        max_size,
        min_idle: 1,
        acquire_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(2),
        check_timeout: Duration::from_secs(5),
        maintenance_interval: Duration::from_millis(200),
        leak_threshold: None,
        retry: RetryConfig {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(100),
            max_attempts: 2,
        },
        breaker: BreakerConfig {
            consecutive_failures: 3,
            open_for: Duration::from_millis(500),
            ..BreakerConfig::default()
        },
        ..Config::default()
    }
}

async fn pool(cfg: PgConfig, max_size: usize) -> PgPool {
    PgPool::builder(cfg)
        .pool_config(pool_config(max_size))
        .build()
        .await
        .expect("pool")
}

/// Runs rounds until the report has `want` (panics after [`HANG_GUARD`]).
async fn until(monitor: &HealthMonitor, want: Status) -> std::sync::Arc<HealthReport> {
    let start = Instant::now();
    loop {
        let report = monitor.refresh().await;
        if report.status == want {
            return report;
        }
        assert!(start.elapsed() < HANG_GUARD, "never {want}: {report:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The health+json draft's shape: `status`, `checks` keyed `component:measurement`.
fn assert_draft_shape(json: &Value) {
    assert!(["pass", "warn", "fail"].contains(&json["status"].as_str().expect("status")));
    let checks = json["checks"].as_object().expect("checks");
    let allowed = [
        "componentId",
        "componentType",
        "observedValue",
        "observedUnit",
        "status",
        "time",
        "output",
        "threshold",
    ];
    for (key, list) in checks {
        assert_eq!(key.split(':').count(), 2, "{key}");
        for entry in list.as_array().expect("array") {
            let o = entry.as_object().expect("object");
            assert!(
                o.keys().all(|k| allowed.contains(&k.as_str())),
                "{key}: {o:?}"
            );
            let why = o["output"].as_str().unwrap_or_default();
            assert!(!why.is_empty(), "every check says why: {key}: {o:?}");
            assert!(o["time"].as_str().expect("time").ends_with('Z'));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_server_fails_health_and_readiness_not_liveness_then_recovers() {
    let server = PgServer::start().expect("dedicated server");
    let db = server.create_database().expect("database");
    let pool = pool(common::config(&server, &db), 2).await;
    // A short window, so errors from the outage age out soon after it.
    let cfg = HealthConfig {
        ping_timeout: Duration::from_secs(5),
        window: Duration::from_secs(2),
        ..HealthConfig::default()
    };
    let monitor = HealthMonitor::builder()
        .pool("main", pool.clone())
        .config(cfg)
        .interval(Duration::from_secs(3600))
        .spawn()
        .expect("monitor");
    assert_eq!(monitor.refresh().await.status, Status::Pass);

    server.stop().expect("stop");
    let report = until(&monitor, Status::Fail).await;
    let rt = report
        .check(keys::RESPONSE_TIME, "main")
        .expect("response time");
    assert_eq!(rt.status, Status::Fail, "{rt:#?}");
    assert!(rt.output.contains("ping failed"), "{}", rt.output);
    assert_eq!(
        monitor.liveness().status,
        Status::Pass,
        "the process is alive"
    );
    assert_eq!(monitor.readiness().status, Status::Fail, "but cannot serve");
    let json = report.to_json();
    assert_eq!(json["status"], "fail");
    assert_draft_shape(&json);
    assert!(!json.to_string().contains(server.password()));

    server.start_again().expect("start again");
    let report = until(&monitor, Status::Pass).await;
    assert_draft_shape(&report.to_json());
    assert_eq!(monitor.readiness().status, Status::Pass);
    assert_eq!(monitor.liveness().status, Status::Pass);
    let conn = pool.get().await.expect("serving again");
    conn.query_one("SELECT 1", &[]).await.expect("query");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturated_pool_with_waiters_warns() {
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    let pool = pool(common::config(server, &db), 2).await;
    let held = [pool.get().await.expect("a"), pool.get().await.expect("b")];
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let p = pool.clone();
            tokio::spawn(async move { p.get().await.map(drop) })
        })
        .collect();
    let start = Instant::now();
    while pool.status().waiters < 3 {
        assert!(start.elapsed() < HANG_GUARD, "{:?}", pool.status());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cfg = HealthConfig {
        ping_timeout: Duration::from_millis(300),
        ..HealthConfig::default()
    };
    let report = health(&pool, &cfg).await;
    assert_eq!(report.status, Status::Warn, "{}", report.summary());
    let name = lido_http::DEFAULT_POOL_NAME;
    let rt = report.check(keys::RESPONSE_TIME, name).expect("rt");
    assert_eq!(rt.status, Status::Warn);
    assert!(rt.output.contains("saturated"), "{}", rt.output);
    let waiting = report.check(keys::WAITERS, name).expect("waiters");
    assert_eq!(waiting.status, Status::Warn);
    assert_eq!(waiting.observed_value, Some(Value::from(3)));
    let util = report.check(keys::UTILIZATION, name).expect("utilization");
    assert_eq!(util.status, Status::Warn);
    assert_draft_shape(&report.to_json());

    drop(held);
    for w in waiters {
        w.await.expect("join").expect("each waiter is served");
    }
    assert_eq!(health(&pool, &cfg).await.status, Status::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_network_warns_on_latency() {
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    let proxy = FaultProxy::start(server.addr()).expect("proxy");
    let url = server.url_with_port(&db, proxy.port());
    let pool = pool(PgConfig::parse(&url).expect("url"), 2).await;
    let cfg = HealthConfig {
        ping_timeout: Duration::from_secs(20),
        latency_ms: Threshold::new(Some(100.0), Some(10_000.0)),
        ..HealthConfig::default()
    };
    assert_eq!(health(&pool, &cfg).await.status, Status::Pass);

    proxy.set(Fault::Latency(Duration::from_millis(250)));
    let report = health(&pool, &cfg).await;
    let name = lido_http::DEFAULT_POOL_NAME;
    let rt = report.check(keys::RESPONSE_TIME, name).expect("rt");
    assert_eq!(rt.status, Status::Warn, "{rt:#?}");
    assert_eq!(rt.observed_unit.as_deref(), Some("ms"));
    assert_eq!(report.status, Status::Warn, "{}", report.summary());
    let json = report.to_json();
    assert_draft_shape(&json);
    let entry = &json["checks"][keys::RESPONSE_TIME][0];
    assert_eq!(entry["threshold"]["warn"], 100.0);
    assert!(entry["observedValue"].as_f64().expect("ms") >= 100.0);

    proxy.set(Fault::Pass);
    assert_eq!(health(&pool, &cfg).await.status, Status::Pass);
}

/// `n` statements, every one failing when `fail` (42P01 and 22012 in turn).
async fn statements(conn: &lido_postgres::PgPooled, n: i32, fail: bool) {
    for i in 0..n {
        let r = match (fail, i % 2) {
            (false, _) => conn.query_one("SELECT $1::int", &[&i]).await.map(drop),
            (true, 0) => conn
                .query("SELECT * FROM no_such_table", &[])
                .await
                .map(drop),
            (true, _) => conn
                .query_one("SELECT 1 / $1::int", &[&0i32])
                .await
                .map(drop),
        };
        assert_eq!(r.is_err(), fail, "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_queries_warn_then_fail_the_query_error_rate_then_age_out() {
    let (_db, pool) = common::shared_pool(2).await;
    let cfg = HealthConfig {
        window: Duration::from_secs(1),
        min_samples: 5,
        ..HealthConfig::default()
    };
    let checker = HealthChecker::new(cfg).pool("main", pool.clone());
    let rate = |r: &HealthReport| r.check(keys::QUERY_ERRORS, "main").expect("rate").clone();
    let conn = pool.get().await.expect("get");

    statements(&conn, 8, false).await;
    let r = rate(&checker.run().await);
    assert_eq!(
        (r.status, r.component_type.as_str()),
        (Status::Pass, "datastore")
    );
    assert_eq!(r.observed_value, Some(Value::from(0.0)));
    assert_eq!(r.observed_unit.as_deref(), Some("percent"));

    statements(&conn, 28, false).await;
    statements(&conn, 2, true).await;
    let report = checker.run().await;
    let r = rate(&report);
    assert_eq!(r.status, Status::Warn, "2 of 30 is past 5 %: {r:#?}");
    assert_eq!(r.observed_value, Some(Value::from(6.67)));
    assert!(
        r.output
            .starts_with("2 of 30 statements failed in the last"),
        "{}",
        r.output
    );
    let json = report.to_json();
    assert_draft_shape(&json);
    let entry = &json["checks"][keys::QUERY_ERRORS][0];
    assert_eq!(entry["threshold"]["warn"], 5.0);
    assert_eq!(entry["threshold"]["fail"], 50.0);

    statements(&conn, 30, true).await;
    let report = checker.run().await;
    let r = rate(&report);
    assert_eq!(r.status, Status::Fail, "32 of 60 in the window: {r:#?}");
    assert_eq!(report.status, Status::Fail, "{}", report.summary());
    let pg = pool.pg_stats();
    assert_eq!(
        (pg.queries(), pg.query_errors()),
        (68, 32),
        "what PgStats counted"
    );
    assert_eq!(pg.errors_of_class("42") + pg.errors_of_class("22"), 32);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    statements(&conn, 6, false).await;
    let report = checker.run().await;
    let r = rate(&report);
    assert_eq!(r.status, Status::Pass, "the failures aged out: {r:#?}");
    assert_eq!(r.observed_value, Some(Value::from(0.0)));
    assert_eq!(report.status, Status::Pass, "{}", report.summary());
}

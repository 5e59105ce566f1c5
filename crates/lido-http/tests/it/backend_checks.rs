//! A backend's own checks and metric families come with its pool: windowed
//! counters, a check with its own timeout, `pool.health()`, and the refusal
//! of two pools under one name.

use crate::common;
use lido_testkit::fake::{advance, Fake};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_core::Pool;
use lido_http::health::keys;
use lido_http::{
    error_rate, BackendCheck, BoxFuture, CheckContext, HealthChecker, HealthConfig, HealthExt,
    HealthMonitor, MetricSink, Metrics, MetricsError, MetricsExtension, MonitorError, Observation,
    PoolBackend, Status, DEFAULT_POOL_NAME,
};

/// What the fake backend counts per statement.
#[derive(Default)]
struct Counts {
    statements: AtomicU64,
    failed: AtomicU64,
    /// The slow check hangs while set.
    hang: AtomicBool,
}

impl Counts {
    fn run(&self, ok: u64, failed: u64) {
        self.statements.fetch_add(ok + failed, Ordering::SeqCst);
        self.failed.fetch_add(failed, Ordering::SeqCst);
    }
}

/// A backend pool: a core pool plus statement counters.
#[derive(Clone)]
struct Backend {
    core: Pool<Fake>,
    counts: Arc<Counts>,
}

struct StatementErrors(Arc<Counts>);

impl BackendCheck for StatementErrors {
    fn key(&self) -> &str {
        keys::QUERY_ERRORS
    }

    fn counters(&self) -> Vec<u64> {
        let c = &self.0;
        vec![
            c.statements.load(Ordering::SeqCst),
            c.failed.load(Ordering::SeqCst),
        ]
    }

    fn check<'a>(&'a self, ctx: CheckContext<'a>) -> BoxFuture<'a, Observation> {
        let t = ctx.config.query_error_percent;
        let o = error_rate(
            t,
            ctx.config.min_samples,
            ctx.counter(1),
            ctx.counter(0),
            "statements",
            &ctx,
        );
        Box::pin(async move { o })
    }
}

/// A check that hangs on request, bounded by its own short timeout.
struct Slow(Arc<Counts>);

impl BackendCheck for Slow {
    fn key(&self) -> &str {
        "replica:lag"
    }

    fn timeout(&self, _cfg: &HealthConfig) -> Duration {
        Duration::from_millis(50)
    }

    fn check<'a>(&'a self, _ctx: CheckContext<'a>) -> BoxFuture<'a, Observation> {
        Box::pin(async move {
            if self.0.hang.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            Observation::pass()
                .value(0, "s")
                .output("replica caught up")
        })
    }
}

struct StatementMetrics(Arc<Counts>);

impl MetricsExtension for StatementMetrics {
    fn collect(&self, sink: &mut MetricSink<'_>) {
        let n = self.0.statements.load(Ordering::SeqCst);
        sink.counter("fake_statements", "Statements run.", &[], n);
    }
}

impl PoolBackend for Backend {
    type Manager = Fake;
    fn core_pool(&self) -> &Pool<Fake> {
        &self.core
    }
    fn backend_checks(&self) -> Vec<Arc<dyn BackendCheck>> {
        vec![
            Arc::new(StatementErrors(Arc::clone(&self.counts))),
            Arc::new(Slow(Arc::clone(&self.counts))),
        ]
    }
    fn backend_metrics(&self) -> Vec<Arc<dyn MetricsExtension>> {
        vec![Arc::new(StatementMetrics(Arc::clone(&self.counts)))]
    }
}

async fn backend() -> Backend {
    let (core, _knobs) = common::pool(4).await;
    Backend {
        core,
        counts: Arc::default(),
    }
}

fn cfg() -> HealthConfig {
    HealthConfig {
        window: Duration::from_secs(5),
        min_samples: 10,
        ..HealthConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn backend_error_rate_is_judged_over_the_window() {
    let db = backend().await;
    let checker = HealthChecker::new(cfg()).pool("main", db.clone());
    let rate = |r: &lido_http::HealthReport| r.check(keys::QUERY_ERRORS, "main").cloned();

    db.counts.run(100, 0);
    let first = checker.run().await;
    let c = rate(&first).expect("the backend's check runs with the pool's");
    assert_eq!(
        (c.status, c.component_type.as_str()),
        (Status::Pass, "datastore")
    );
    assert_eq!(c.observed_value, Some(0.0.into()));
    assert!(c.output.contains("since the pool started"), "{}", c.output);

    db.counts.run(90, 10);
    advance(Duration::from_secs(1)).await;
    let c = rate(&checker.run().await).expect("rate");
    assert_eq!(c.status, Status::Warn, "{c:#?}");
    assert_eq!(
        c.observed_value,
        Some(10.0.into()),
        "10 of the 100 since the last round"
    );
    assert!(
        c.output
            .starts_with("10 of 100 statements failed in the last 1 s"),
        "{}",
        c.output
    );

    db.counts.run(0, 100);
    advance(Duration::from_secs(1)).await;
    let report = checker.run().await;
    let c = rate(&report).expect("rate");
    assert_eq!(
        c.status,
        Status::Fail,
        "110 of 200 since the first round is past 50 %: {c:#?}"
    );
    assert_eq!(report.status, Status::Fail);

    db.counts.run(3, 3);
    advance(Duration::from_secs(10)).await;
    let c = rate(&checker.run().await).expect("rate");
    assert_eq!(
        c.status,
        Status::Pass,
        "the burst aged out, 6 are too few: {c:#?}"
    );
    assert!(c.output.contains("too few to judge"), "{}", c.output);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_backend_check_fails_alone_within_its_timeout() {
    let db = backend().await;
    db.counts.hang.store(true, Ordering::SeqCst);
    let checker = HealthChecker::new(cfg()).pool("main", db.clone());
    assert_eq!(checker.longest_timeout(), cfg().ping_timeout);
    let started = tokio::time::Instant::now();
    let report = checker.run().await;
    assert!(
        started.elapsed() < cfg().ping_timeout,
        "bounded by its own 50 ms"
    );
    let lag = report.check("replica:lag", "main").expect("lag");
    assert_eq!(lag.status, Status::Fail);
    assert_eq!(lag.output, "check did not finish within 50ms");
    let rt = report.check(keys::RESPONSE_TIME, "main").expect("rt");
    assert_eq!(rt.status, Status::Pass, "the other checks are unaffected");

    db.counts.hang.store(false, Ordering::SeqCst);
    assert_eq!(checker.run().await.status, Status::Pass);
}

#[tokio::test(start_paused = true)]
async fn pool_health_includes_the_backend_checks() {
    let db = backend().await;
    db.counts.run(4, 4);
    let report = db.health().await;
    let c = report
        .check(keys::QUERY_ERRORS, DEFAULT_POOL_NAME)
        .expect("rate");
    assert_eq!(c.observed_value, Some(50.0.into()));
    assert_eq!(
        c.status,
        Status::Pass,
        "8 statements are under min_samples 10"
    );
    let strict = HealthConfig {
        min_samples: 1,
        ..cfg()
    };
    let report = db.health_with(&strict).await;
    assert_eq!(report.status, Status::Fail, "{}", report.summary());

    let (core, _) = common::pool(2).await;
    let plain = core.health().await;
    assert!(plain.check(keys::QUERY_ERRORS, DEFAULT_POOL_NAME).is_none());
    assert_eq!(plain.status, Status::Pass);
}

#[tokio::test(start_paused = true)]
async fn backend_metrics_come_with_the_pool_and_names_must_be_unique() {
    let db = backend().await;
    db.counts.run(7, 0);
    let metrics = Metrics::builder()
        .pool("main", db.clone())
        .build()
        .expect("metrics");
    let text = metrics.encode().expect("encode");
    assert!(
        text.contains("fake_statements_total{pool=\"main\"} 7\n"),
        "{text}"
    );

    let err = Metrics::builder()
        .pool("main", db.clone())
        .pool("main", db.core.clone())
        .build()
        .expect_err("duplicate");
    assert_eq!(
        err,
        MetricsError::DuplicatePool {
            name: "main".into()
        }
    );
    assert!(err.to_string().contains("own name"), "{err}");

    let err = HealthMonitor::builder()
        .pool("main", db.clone())
        .pool("main", db.core.clone())
        .spawn()
        .expect_err("duplicate");
    assert!(
        matches!(&err, MonitorError::DuplicatePool { name } if name == "main"),
        "{err}"
    );
}

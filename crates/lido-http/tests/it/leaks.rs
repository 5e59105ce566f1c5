//! A lease held past `leak_threshold` is reported once, with the call site
//! of the `get()` that took it, in the health report and the metrics.

use crate::common;
use lido_testkit::fake::{advance, Fake};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_core::{Event, Observer};
use lido_http::health::keys;
use lido_http::{HealthChecker, HealthConfig, Metrics, Status};

#[derive(Default)]
struct CountLeaks(AtomicU64);

impl Observer for CountLeaks {
    fn on_event(&self, event: &Event<'_>) {
        if let Event::Leak(_) = event {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_leak_is_reported_once_with_this_call_site() {
    let observed = Arc::new(CountLeaks::default());
    let (builder, _knobs) = common::builder(4);
    let pool = builder
        .leak_threshold(Some(Duration::from_millis(100)))
        .maintenance_interval(Duration::from_millis(50))
        .observer(observed.clone())
        .build()
        .await
        .expect("pool");
    let (checker, metrics) = readers(&pool);

    let (guard, line) = (pool.get().await.expect("lease"), line!());
    advance(Duration::from_secs(1)).await;

    assert_eq!(
        pool.stats().leaks(),
        1,
        "reported once over many maintenance runs"
    );
    assert_eq!(observed.0.load(Ordering::SeqCst), 1);
    let leaks = pool.leaks();
    assert_eq!(leaks.len(), 1);
    assert_eq!(leaks[0].location.file(), file!());
    assert_eq!(leaks[0].location.line(), line);

    let report = checker.run().await;
    let check = report.check(keys::LEAKS, "main").expect("leak check");
    assert_eq!(check.status, Status::Warn);
    assert_eq!(check.observed_value, Some(1.into()));
    let site = format!("{}:{line}:", file!());
    assert!(
        check.output.contains(&site),
        "{} lacks {site}",
        check.output
    );
    assert_eq!(report.status, Status::Warn);

    let text = metrics.encode().expect("encode");
    assert!(
        text.contains("lido_pool_leaks_total{pool=\"main\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("lido_pool_leased_past_threshold{pool=\"main\"} 1\n"),
        "{text}"
    );

    drop(guard);
    advance(Duration::from_secs(1)).await;
    assert_eq!(pool.stats().leaks(), 1);
    let report = checker.run().await;
    assert_eq!(
        status_of_leaks(&report),
        Status::Pass,
        "{}",
        report.summary()
    );
}

/// A health checker and an exporter over `pool`, both reading its leases.
fn readers(pool: &lido_core::Pool<Fake>) -> (HealthChecker, Metrics) {
    let checker = HealthChecker::new(HealthConfig::default()).pool("main", pool.clone());
    let metrics = Metrics::builder()
        .pool("main", pool.clone())
        .build()
        .expect("metrics");
    (checker, metrics)
}

fn status_of_leaks(report: &lido_http::HealthReport) -> Status {
    report.check(keys::LEAKS, "main").expect("leaks").status
}

/// WARN events as `(message, fields)`, recorded on this thread.
#[derive(Clone, Default)]
struct Warnings(Arc<parking_lot::Mutex<Vec<BTreeMap<String, String>>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut fields = BTreeMap::new();
            event.record(&mut Fields(&mut fields));
            self.0.lock().push(fields);
        }
    }
}

impl Warnings {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        use tracing_subscriber::layer::SubscriberExt;
        // An always-interested global subscriber first: thread-local ones
        // in concurrent tests otherwise race on tracing's global max level
        // and callsite interest, and this one can end up filtered out.
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
        });
        tracing::subscriber::set_default(tracing_subscriber::registry().with(self.clone()))
    }

    fn leaks(&self) -> Vec<BTreeMap<String, String>> {
        let all = self.0.lock().clone();
        let is_leak = |f: &BTreeMap<String, String>| {
            f.get("message")
                .is_some_and(|m| m.contains("leak_threshold"))
        };
        all.into_iter().filter(is_leak).collect()
    }
}

/// Maintenance every 10 s, leak threshold 100 ms: a lease is past the
/// threshold long before maintenance looks at it.
async fn leaky_pool(backtrace: bool) -> lido_core::Pool<Fake> {
    let (builder, _knobs) = common::builder(4);
    builder
        .leak_threshold(Some(Duration::from_millis(100)))
        .leak_backtrace(backtrace)
        .maintenance_interval(Duration::from_secs(10))
        .build()
        .await
        .expect("pool")
}

/// Health rounds and scrapes that read the leases before maintenance does
/// must not swallow the report: it goes out once, through `tracing`, with
/// this file and line.
#[tokio::test(start_paused = true)]
async fn reads_before_maintenance_do_not_swallow_the_leak_report() {
    let warnings = Warnings::default();
    let _guard = warnings.install();
    let pool = leaky_pool(false).await;
    let (checker, metrics) = readers(&pool);

    let (guard, line) = (pool.get().await.expect("lease"), line!());
    advance(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let report = checker.run().await;
        assert_eq!(
            status_of_leaks(&report),
            Status::Warn,
            "seen as held past the threshold"
        );
        let text = metrics.encode().expect("encode");
        assert!(
            text.contains("lido_pool_leased_past_threshold{pool=\"main\"} 1\n"),
            "{text}"
        );
    }
    assert_eq!(pool.stats().leaks(), 0, "maintenance has not run yet");
    assert!(warnings.leaks().is_empty());

    advance(Duration::from_secs(10)).await;
    assert_eq!(
        pool.stats().leaks(),
        1,
        "reported by maintenance after the reads"
    );
    checker.run().await;
    metrics.encode().expect("encode");
    advance(Duration::from_secs(20)).await;
    assert_eq!(pool.stats().leaks(), 1, "and only once");

    let leaks = warnings.leaks();
    assert_eq!(leaks.len(), 1, "one WARN: {leaks:#?}");
    let site = format!("{}:{line}:", file!());
    let location = &leaks[0]["location"];
    assert!(location.starts_with(&site), "{location} is not {site}");
    assert!(!leaks[0].contains_key("backtrace"), "backtraces are opt-in");
    drop(guard);
}

#[tokio::test(start_paused = true)]
async fn leak_backtrace_puts_the_checkout_backtrace_in_the_report() {
    let warnings = Warnings::default();
    let _guard = warnings.install();
    let pool = leaky_pool(true).await;
    let guard = take_a_lease(&pool).await;
    advance(Duration::from_secs(11)).await;

    let held = pool.leaks();
    assert_eq!(held.len(), 1);
    let bt = held[0].backtrace.as_ref().expect("captured at checkout");
    assert_eq!(bt.status(), std::backtrace::BacktraceStatus::Captured);
    let leaks = warnings.leaks();
    assert_eq!(leaks.len(), 1, "{leaks:#?}");
    let logged = &leaks[0]["backtrace"];
    assert!(
        logged.contains("take_a_lease"),
        "the backtrace names the function that took the lease: {logged}"
    );
    drop(guard);
}

#[inline(never)]
async fn take_a_lease(pool: &lido_core::Pool<Fake>) -> lido_core::Pooled<Fake> {
    pool.get().await.expect("lease")
}

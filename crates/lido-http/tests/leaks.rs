//! A lease held past `leak_threshold` is reported once, with the call site
//! of the `get()` that took it, in the health report and the metrics.

mod common;

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
    let checker = HealthChecker::new(HealthConfig::default()).pool("main", pool.clone());
    let metrics = Metrics::builder().pool("main", pool.clone()).build();

    let (guard, line) = (pool.get().await.expect("lease"), line!());
    common::advance(Duration::from_secs(1)).await;

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
    common::advance(Duration::from_secs(1)).await;
    assert_eq!(pool.stats().leaks(), 1);
    let report = checker.run().await;
    assert_eq!(
        status_of_leaks(&report),
        Status::Pass,
        "{}",
        report.summary()
    );
}

fn status_of_leaks(report: &lido_http::HealthReport) -> Status {
    report.check(keys::LEAKS, "main").expect("leaks").status
}

//! `/metrics` text: parsed by prometheus-parse, series present, values equal
//! to `status()` and `stats()`, one family per name across pools, extensions.

use crate::common;
use lido_testkit::fake::Fake;
use std::collections::HashMap;
use std::time::Duration;

use lido_core::{CloseReason, Pool};
use lido_http::metrics::names;
use lido_http::{HistogramSample, MetricSink, Metrics, MetricsExtension, NamedPool};
use prometheus_parse::{Scrape, Value};

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("prometheus-parse accepts it")
}

/// The value of the sample `name` whose labels include `labels`.
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let hit = s
        .samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)));
    match hit.map(|x| &x.value) {
        Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
        other => panic!("{name}{labels:?}: {other:?}"),
    }
}

/// `(le, cumulative count)` buckets of histogram `name` for `pool`.
fn buckets(s: &Scrape, name: &str, pool: &str) -> Vec<(f64, f64)> {
    let hit = s
        .samples
        .iter()
        .find(|x| x.metric == name && x.labels.get("pool") == Some(pool));
    match hit.map(|x| &x.value) {
        Some(Value::Histogram(b)) => b.iter().map(|h| (h.less_than, h.count)).collect(),
        other => panic!("{name}: {other:?}"),
    }
}

struct StatementCache;

impl MetricsExtension for StatementCache {
    fn collect(&self, sink: &mut MetricSink<'_>) {
        let help = "Prepared statements found in the cache, by outcome.";
        sink.counter("lido_pg_statement_cache", help, &[("outcome", "hit")], 40);
        sink.counter("lido_pg_statement_cache", help, &[("outcome", "miss")], 2);
        let h = HistogramSample {
            sum: 0.5,
            count: 3,
            cumulative: vec![(0.1, 2), (1.0, 3)],
        };
        sink.histogram(
            "lido_pg_query_duration_seconds",
            "Query time.",
            &[("class", "select")],
            h,
        );
    }
}

struct BuildInfo;

impl MetricsExtension for BuildInfo {
    fn collect(&self, sink: &mut MetricSink<'_>) {
        sink.gauge(
            "myapp_build",
            "Build of the app.",
            &[("version", "1.2.3")],
            1.0,
        );
    }
}

async fn busy_pools() -> (Pool<Fake>, Pool<Fake>, Vec<lido_core::Pooled<Fake>>) {
    let (primary, _) = common::pool(4).await;
    let held = vec![
        primary.get().await.expect("a"),
        primary.get().await.expect("b"),
        primary.get().await.expect("c"),
    ];
    let extra = primary.get().await.expect("d");
    drop(extra);
    primary.retain(|_, _| false);
    let (replica, knobs) = common::pool(2).await;
    let idle = replica.get().await.expect("idle one");
    let busy = replica.get().await;
    drop(busy);
    knobs.set_down(true);
    drop(idle);
    replica.retain(|_, _| false);
    for _ in 0..3 {
        let _ = replica.get().await;
    }
    (primary, replica, held)
}

#[tokio::test(start_paused = true)]
async fn metrics_match_status_and_stats() {
    let (primary, replica, _held) = busy_pools().await;
    let metrics = Metrics::builder()
        .named(NamedPool::new("primary", primary.clone()).with_metrics(StatementCache))
        .pool("replica", replica.clone())
        .extension(BuildInfo)
        .buckets([Duration::from_millis(1), Duration::from_secs(1)])
        .build()
        .expect("unique names");
    let text = metrics.encode().expect("encodes");
    assert!(text.ends_with("# EOF\n"));
    let s = parse(&text);

    let mut types: HashMap<&str, usize> = HashMap::new();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        *types
            .entry(line.split(' ').nth(2).expect("name"))
            .or_default() += 1;
    }
    assert!(
        types.values().all(|n| *n == 1),
        "a family written twice: {types:?}"
    );

    for (name, pool) in [("primary", &primary), ("replica", &replica)] {
        let st = pool.status();
        let stats = pool.stats();
        let p = ("pool", name);
        assert_eq!(
            value(&s, names::CONNECTIONS, &[p, ("state", "idle")]),
            st.idle as f64
        );
        assert_eq!(
            value(&s, names::CONNECTIONS, &[p, ("state", "in_use")]),
            st.in_use as f64
        );
        assert_eq!(value(&s, names::MAX, &[p]), st.max_size as f64);
        assert_eq!(value(&s, names::MIN_IDLE, &[p]), st.min_idle as f64);
        assert_eq!(value(&s, names::TARGET, &[p]), st.target_size as f64);
        assert_eq!(st.target_size, st.max_size, "adaptive sizing off");
        for (lane, i) in [("critical", 0), ("normal", 1), ("background", 2)] {
            let held = value(&s, names::IN_USE_BY_LANE, &[p, ("lane", lane)]);
            assert_eq!(held, st.in_use_by_lane[i] as f64, "{lane}");
        }
        assert_eq!(value(&s, names::WAITERS, &[p]), st.waiters as f64);
        assert_eq!(value(&s, names::CONNECTING, &[p]), st.connecting as f64);
        let total = |n: &str| format!("{n}_total");
        assert_eq!(
            value(&s, &total(names::CREATED), &[p]),
            stats.created() as f64
        );
        assert_eq!(
            value(&s, &total(names::CONNECT_ERRORS), &[p]),
            stats.connect_failures() as f64
        );
        assert_eq!(
            value(&s, &total(names::ACQUIRE_TIMEOUTS), &[p]),
            stats.acquire_timeouts() as f64
        );
        assert_eq!(value(&s, &total(names::LEAKS), &[p]), stats.leaks() as f64);
        let changes = value(&s, &total(names::TARGET_CHANGES), &[p]);
        assert_eq!(changes, stats.target_changes() as f64);
        let acq = total(names::ACQUIRES);
        assert_eq!(
            value(&s, &acq, &[p, ("outcome", "direct")]),
            stats.gets_direct() as f64
        );
        assert_eq!(
            value(&s, &acq, &[p, ("outcome", "waited")]),
            stats.gets_waited() as f64
        );
        assert_eq!(
            value(&s, &acq, &[p, ("outcome", "error")]),
            stats.get_errors() as f64
        );
        for r in CloseReason::ALL {
            let got = value(&s, &total(names::CLOSED), &[p, ("reason", r.as_str())]);
            assert_eq!(got, stats.closed(r) as f64, "{}", r.as_str());
        }
        for state in ["closed", "open", "half_open"] {
            let want = f64::from(u8::from(pool.breaker_state().as_str() == state));
            assert_eq!(
                value(&s, names::BREAKER_STATE, &[p, ("state", state)]),
                want
            );
        }
        let tr = total(names::BREAKER_TRANSITIONS);
        assert_eq!(
            value(&s, &tr, &[p, ("to", "open")]),
            stats.breaker_opened() as f64
        );
        let b = buckets(&s, names::ACQUIRE_WAIT, name);
        assert_eq!(b.len(), 3, "two bounds and +Inf: {b:?}");
        assert_eq!(b[2], (f64::INFINITY, stats.acquire_wait.count() as f64));
        let count = value(&s, &format!("{}_count", names::ACQUIRE_WAIT), &[p]);
        assert_eq!(count, stats.acquire_wait.count() as f64);
        let sum = value(&s, &format!("{}_sum", names::HOLD), &[p]);
        assert_eq!(sum, stats.hold_time.sum().as_secs_f64());
        let created = buckets(&s, names::CONNECT, name);
        assert_eq!(created[2].1, stats.connect_time.count() as f64);
    }
    assert_eq!(primary.status().in_use, 3);
    assert!(primary.stats().closed(CloseReason::Retain) >= 1);
    assert!(replica.stats().connect_failures() >= 3);
    assert_eq!(replica.breaker_state(), lido_core::BreakerState::Open);

    let hit = [("pool", "primary"), ("outcome", "hit")];
    assert_eq!(value(&s, "lido_pg_statement_cache_total", &hit), 40.0);
    let q = buckets(&s, "lido_pg_query_duration_seconds", "primary");
    assert_eq!(q, vec![(0.1, 2.0), (1.0, 3.0), (f64::INFINITY, 3.0)]);
    assert_eq!(value(&s, "myapp_build", &[("version", "1.2.3")]), 1.0);
    assert!(text.contains("# UNIT lido_pool_acquire_wait_seconds seconds\n"));
}

#[tokio::test(start_paused = true)]
async fn adaptive_target_and_lanes_are_exported() {
    let cfg = lido_core::Config {
        max_size: 8,
        adaptive: Some(lido_core::AdaptiveConfig {
            min: 2,
            max: 8,
            ..lido_core::AdaptiveConfig::default()
        }),
        ..lido_core::Config::default()
    };
    let pool = Pool::builder(Fake::new().0)
        .config(cfg)
        .build()
        .await
        .expect("pool");
    let held = pool
        .get_with_priority(lido_core::Priority::Background)
        .await
        .expect("lease");
    let metrics = Metrics::builder()
        .pool("adaptive", pool.clone())
        .build()
        .expect("metrics");
    let s = parse(&metrics.encode().expect("encodes"));
    let p = ("pool", "adaptive");
    assert_eq!(value(&s, names::TARGET, &[p]), 2.0, "starts at min");
    assert_eq!(value(&s, names::MAX, &[p]), 8.0);
    let lane = |l| value(&s, names::IN_USE_BY_LANE, &[p, ("lane", l)]);
    assert_eq!(
        (lane("critical"), lane("normal"), lane("background")),
        (0.0, 0.0, 1.0)
    );
    drop(held);
}

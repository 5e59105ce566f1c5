//! `PgMetrics` through lido-http's exporter: the text parses with
//! prometheus-parse and every PostgreSQL series equals `PgStats`.

use crate::common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use lido_http::Metrics;
use lido_postgres::http::names;
use lido_postgres::{Operation, PgError, PgPool, TxOptions};
use prometheus_parse::{Scrape, Value};

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("prometheus-parse accepts it")
}

fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let hit = s.samples.iter().find(|x| {
        x.metric == name
            && x.labels.get("pool") == Some("orders")
            && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v))
    });
    match hit.map(|x| &x.value) {
        Some(Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v)) => *v,
        Some(Value::Histogram(b)) => b.last().map_or(0.0, |h| h.count),
        other => panic!("{name}{labels:?}: {other:?}"),
    }
}

fn total(name: &str) -> String {
    format!("{name}_total")
}

/// Commits, rollbacks, a retried serialization failure, a timeout, errors.
async fn workload(pool: &PgPool) {
    let mut conn = pool.get().await.expect("get");
    conn.batch_execute("CREATE TABLE acct (id int PRIMARY KEY, bal int)")
        .await
        .expect("ddl");
    conn.execute("INSERT INTO acct VALUES (1, 100), (2, 0)", &[])
        .await
        .expect("insert");
    for id in [1i32, 2, 1] {
        conn.query_one("SELECT bal FROM acct WHERE id = $1", &[&id])
            .await
            .expect("select");
    }
    let _ = conn
        .query("SELECT * FROM nope", &[])
        .await
        .expect_err("42P01");
    let _ = conn
        .execute("INSERT INTO acct VALUES (1, 1)", &[])
        .await
        .expect_err("23505");
    let err = conn
        .timeout(Duration::from_millis(100))
        .query("SELECT pg_sleep(5)", &[])
        .await
        .expect_err("timeout");
    assert!(
        matches!(
            err,
            PgError::QueryTimeout {
                cancelled: true,
                ..
            }
        ),
        "{err}"
    );
    let tx = conn.transaction().await.expect("begin");
    tx.rollback().await.expect("rollback");
    let attempts = AtomicU32::new(0);
    conn.transaction_with_retry(&TxOptions::new(), |tx| {
        let first = attempts.fetch_add(1, Ordering::SeqCst) == 0;
        Box::pin(async move {
            tx.execute("UPDATE acct SET bal = bal - 10 WHERE id = $1", &[&1i32])
                .await?;
            if first {
                tx.batch_execute(
                    "DO $$ BEGIN RAISE EXCEPTION 'lost a race' USING ERRCODE = '40001'; END $$",
                )
                .await?;
            }
            Ok(())
        })
    })
    .await
    .expect("retried, then committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_metrics_match_pg_stats() {
    let (_db, pool) = common::shared_pool(2).await;
    workload(&pool).await;
    common::settled(&pool, Duration::from_secs(10)).await;
    let metrics = Metrics::builder()
        .pool("orders", pool.clone())
        .buckets([Duration::from_millis(1), Duration::from_secs(1)])
        .build()
        .expect("metrics");
    let text = metrics.encode().expect("encodes");
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

    let pg = pool.pg_stats();
    assert!(pg.queries() >= 10 && pg.tx_retried() == 1 && pg.query_timeouts() == 1);
    assert_eq!(
        (pg.tx_retried_serialization(), pg.tx_retried_deadlock()),
        (1, 0),
        "the retry's cause"
    );
    assert_eq!(
        value(
            &s,
            &total(names::TX_RETRIES_BY_CAUSE),
            &[("cause", "serialization")]
        ),
        1.0
    );
    assert_eq!(value(&s, names::TX_OPEN, &[]), 0.0);
    for op in Operation::ALL {
        let h = pg.duration(op);
        assert!(h.count() > 0, "{op:?}");
        let labels = [("operation", op.as_str())];
        assert_eq!(value(&s, names::QUERY_DURATION, &labels), h.count() as f64);
        let count = format!("{}_count", names::QUERY_DURATION);
        assert_eq!(value(&s, &count, &labels), h.count() as f64);
    }
    let classes = pg.errors_by_class();
    for class in ["42", "23", "40", "timeout"] {
        let want = pg.errors_of_class(class);
        assert!(want > 0, "{class}: {classes:?}");
        let got = value(&s, &total(names::ERRORS), &[("class", class)]);
        assert_eq!(got, want as f64, "{class}");
    }
    let counters = [
        (names::QUERIES, pg.queries()),
        (names::QUERY_ERRORS, pg.query_errors()),
        (names::SLOW_QUERIES, pg.slow_queries()),
        (names::STMT_CACHE_HITS, pg.stmt_hits()),
        (names::STMT_CACHE_MISSES, pg.stmt_misses()),
        (names::STMT_CACHE_EVICTIONS, pg.stmt_evictions()),
        (names::TX_RETRIES, pg.tx_retried()),
        (names::TX_TIMEOUTS, pg.tx_timed_out()),
        (names::QUERY_TIMEOUTS, pg.query_timeouts()),
        (names::CONNECT_ATTEMPTS, pg.connect_attempts()),
        (names::RESETS, pg.resets()),
    ];
    for (name, want) in counters {
        assert_eq!(value(&s, &total(name), &[]), want as f64, "{name}");
    }
    let tx = total(names::TRANSACTIONS);
    assert_eq!(
        value(&s, &tx, &[("outcome", "commit")]),
        pg.tx_committed() as f64
    );
    assert_eq!(
        value(&s, &tx, &[("outcome", "rollback")]),
        pg.tx_rolled_back() as f64
    );
    assert!(pg.tx_committed() == 1 && pg.tx_rolled_back() == 2);
    let cancels = total(names::CANCELS);
    assert_eq!(value(&s, &cancels, &[("outcome", "confirmed")]), 1.0);
    let tracked = pool.statement_stats().len() as f64;
    assert_eq!(value(&s, names::STATEMENTS_TRACKED, &[]), tracked);
    assert!(text.contains("# UNIT lido_pg_query_duration_seconds seconds\n"));
    assert!(
        !text.contains(names::STATEMENT_CALLS),
        "per-statement series are opt-in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_statements_are_opt_in_series() {
    let (_db, pool) = common::shared_pool(1).await;
    let conn = pool.get().await.expect("get");
    for i in 0..3i32 {
        conn.query_one("SELECT $1::int + 1", &[&i])
            .await
            .expect("q");
    }
    conn.query("SELECT 'secret-literal'", &[]).await.expect("q");
    let ext = lido_postgres::PgMetrics::new(&pool).top_statements(5);
    let named = lido_http::NamedPool::new("orders", pool.clone())
        .without_metrics()
        .with_metrics(ext);
    let text = Metrics::builder()
        .named(named)
        .build()
        .expect("metrics")
        .encode()
        .expect("encodes");
    let s = parse(&text);
    let calls = total(names::STATEMENT_CALLS);
    let add = value(&s, &calls, &[("query", "SELECT $1::int + $2")]);
    assert_eq!(add, 3.0);
    assert!(
        !text.contains("secret-literal"),
        "labels hold normalized SQL only"
    );
}

/// `GET path` over a real connection: status, content type, body.
async fn fetch(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<hyper::body::Bytes>>();
    let uri = format!("http://{addr}{path}").parse().expect("uri");
    let res = client.get(uri).await.expect("request");
    let code = res.status().as_u16();
    let ctype = res
        .headers()
        .get("content-type")
        .map_or(String::new(), |v| v.to_str().expect("ascii").to_owned());
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (
        code,
        ctype,
        String::from_utf8(body.to_vec()).expect("utf-8"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_serves_pg_families_matching_pg_stats() {
    let (_db, pool) = common::shared_pool(2).await;
    let monitor = lido_http::HealthMonitor::builder()
        .pool("orders", pool.clone())
        .interval(Duration::from_secs(3600))
        .spawn()
        .expect("monitor");
    let app: axum::Router = axum::Router::new().merge(lido_http::router(&monitor));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    workload(&pool).await;
    common::settled(&pool, Duration::from_secs(10)).await;
    monitor.refresh().await;

    let (code, ctype, body) = fetch(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert_eq!(ctype, lido_http::OPENMETRICS_CONTENT_TYPE);
    let s = parse(&body);
    let pg = pool.pg_stats();
    for op in Operation::ALL {
        let labels = [("operation", op.as_str())];
        let count = format!("{}_count", names::QUERY_DURATION);
        assert_eq!(
            value(&s, &count, &labels),
            pg.duration(op).count() as f64,
            "{op:?}"
        );
    }
    for (class, n) in pg.errors_by_class() {
        let got = value(&s, &total(names::ERRORS), &[("class", &class)]);
        assert_eq!(got, n as f64, "class {class}");
    }
    assert!(pg.errors_of_class("42") > 0 && pg.errors_of_class("23") > 0);
    for (name, want) in [
        (names::QUERIES, pg.queries()),
        (names::QUERY_ERRORS, pg.query_errors()),
        (names::STMT_CACHE_HITS, pg.stmt_hits()),
        (names::STMT_CACHE_MISSES, pg.stmt_misses()),
        (names::TX_RETRIES, pg.tx_retried()),
    ] {
        assert_eq!(value(&s, &total(name), &[]), want as f64, "{name}");
    }
    assert!(pg.stmt_hits() > 0 && pg.stmt_misses() > 0);
    let tx = total(names::TRANSACTIONS);
    for (outcome, want) in [
        ("commit", pg.tx_committed()),
        ("rollback", pg.tx_rolled_back()),
    ] {
        assert_eq!(
            value(&s, &tx, &[("outcome", outcome)]),
            want as f64,
            "{outcome}"
        );
    }
    assert_eq!(value(&s, "lido_pool_connections_max", &[]), 2.0);

    for name in contrib_names() {
        let present = [format!("{name}{{"), format!("{name} ")]
            .iter()
            .any(|n| body.contains(n.as_str()));
        assert!(
            present,
            "contrib uses {name}, which /metrics does not export"
        );
    }

    let (code, _, body) = fetch(addr, "/health").await;
    let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
    let rate = &doc["checks"]["database:queryErrorRate"][0];
    assert_eq!(rate["componentId"], "orders", "{doc}");
    assert!(
        rate["observedValue"].as_f64().expect("rate") > 0.0,
        "{rate}"
    );
    let want = if doc["status"] == "fail" { 503 } else { 200 };
    assert_eq!(code, want, "{doc}");
}

/// The `lido_pool_*`, `lido_pg_*` and `lido_health_*` series the alert rules
/// and the dashboard query.
fn contrib_names() -> std::collections::BTreeSet<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../contrib");
    let mut names = std::collections::BTreeSet::new();
    for file in ["prometheus/alerts.yml", "grafana/lido.json"] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).expect("contrib file");
        for (i, _) in text.match_indices("lido_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if ["lido_pool_", "lido_pg_", "lido_health_"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                names.insert(name);
            }
        }
    }
    assert!(names.len() > 20, "{names:?}");
    names
}

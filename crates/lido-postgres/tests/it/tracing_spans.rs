//! `tracing` spans for acquire, connect and query carry OpenTelemetry's
//! database attributes; `db.query.text` only when asked for.

use crate::common;

use std::time::Duration;

use crate::common::capture::{Capture, SpanRec};
use lido_postgres::{PgConfig, PgError};
use lido_testkit::{Fault, FaultProxy, PgServer};

const SYSTEM: [&str; 2] = ["db.system", "db.system.name"];

fn assert_server(span: &SpanRec, server: &PgServer, db: &str) {
    for key in SYSTEM {
        assert_eq!(span.field(key), "postgresql", "{span:#?}");
    }
    assert_eq!(span.field("db.namespace"), db);
    assert_eq!(span.field("server.address"), "127.0.0.1");
    assert_eq!(span.field("server.port"), server.port().to_string());
}

fn query_span(cap: &Capture, otel_name: &str) -> SpanRec {
    let spans = cap.spans_named("lido.query");
    spans
        .iter()
        .find(|s| s.fields.get("otel.name").map(String::as_str) == Some(otel_name))
        .unwrap_or_else(|| panic!("no query span {otel_name}: {spans:#?}"))
        .clone()
}

#[tokio::test]
async fn acquire_connect_and_query_spans_carry_otel_attributes() {
    let cap = Capture::default();
    let _guard = cap.install();
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    let pool = common::builder(common::config(server, &db), 2)
        .build_lazy()
        .expect("pool");
    let conn = pool.get().await.expect("get");
    conn.batch_execute("CREATE TABLE orders (id int PRIMARY KEY, total int)")
        .await
        .expect("ddl");
    let n = conn
        .execute("INSERT INTO orders VALUES (1, 10), (2, 20), (3, 30)", &[])
        .await
        .expect("insert");
    assert_eq!(n, 3);
    let rows = conn
        .query("SELECT id FROM orders WHERE total > $1", &[&15i32])
        .await
        .expect("select");
    assert_eq!(rows.len(), 2);
    let err = conn
        .query("SELECT * FROM missing_table", &[])
        .await
        .expect_err("no such table");
    assert!(matches!(err, PgError::Postgres(_)), "{err}");
    drop(conn);

    let acquire = &cap.spans_named("lido.acquire")[0];
    assert_eq!(acquire.target, "lido::postgres");
    assert_server(acquire, server, &db);
    assert!(!acquire.fields.contains_key("error.type"), "{acquire:#?}");

    let connect = &cap.spans_named("lido.connect")[0];
    assert_server(connect, server, &db);
    assert_eq!(connect.field("otel.kind"), "client");

    let select = query_span(&cap, "SELECT orders");
    assert_server(&select, server, &db);
    assert_eq!(select.field("db.operation.name"), "SELECT");
    assert_eq!(select.field("db.collection.name"), "orders");
    assert_eq!(select.field("db.query.summary"), "SELECT orders");
    assert_eq!(select.field("db.response.returned_rows"), "2");
    assert_eq!(select.field("otel.kind"), "client");
    assert!(!select.fields.contains_key("error.type"));

    let insert = query_span(&cap, "INSERT orders");
    assert_eq!(insert.field("db.operation.name"), "INSERT");
    assert_eq!(insert.field("db.response.returned_rows"), "3");

    let failed = query_span(&cap, "SELECT missing_table");
    assert_eq!(failed.field("error.type"), "42P01");
    assert_eq!(failed.field("db.response.status_code"), "42P01");
    assert_eq!(failed.field("otel.status_code"), "ERROR");

    for s in cap.spans() {
        assert!(
            !s.fields.contains_key("db.query.text"),
            "query text without opting in: {s:#?}"
        );
    }
}

#[tokio::test]
async fn a_classified_call_names_its_query_class() {
    let cap = Capture::default();
    let _guard = cap.install();
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    let pool = common::builder(common::config(server, &db), 1)
        .build()
        .await
        .expect("pool");
    let conn = pool.get().await.expect("get");
    conn.query("/* class=analytics */ SELECT 41 + 1", &[])
        .await
        .expect("select");
    let span = query_span(&cap, "SELECT");
    assert_eq!(span.field("lido.query_class"), "analytics", "{span:#?}");
}

#[tokio::test]
async fn query_text_only_when_opted_in_and_without_literals() {
    let cap = Capture::default();
    let _guard = cap.install();
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    let pool = common::builder(common::config(server, &db), 1)
        .trace_query_text(true)
        .build()
        .await
        .expect("pool");
    let conn = pool.get().await.expect("get");
    conn.query("SELECT 'hunter2' AS secret, $1::int AS n", &[&7i32])
        .await
        .expect("select");
    let span = query_span(&cap, "SELECT");
    assert_eq!(
        span.field("db.query.text"),
        "SELECT $2 AS secret, $1::int AS n"
    );
    assert!(!format!("{:?}", cap.spans()).contains("hunter2"));
}

#[tokio::test]
async fn a_repeated_statement_keeps_its_span_shape_and_is_counted_each_time() {
    // The shape (normalized text, summary, span name) is worked out once and
    // kept with the statement's statistics: later calls must carry the same.
    let cap = Capture::default();
    let _guard = cap.install();
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    let pool = common::builder(common::config(server, &db), 1)
        .trace_query_text(true)
        .build()
        .await
        .expect("pool");
    let conn = pool.get().await.expect("get");
    let sql = "SELECT 7 AS n, $1::int AS m";
    for m in 0..3i32 {
        conn.query(sql, &[&m]).await.expect("select");
    }
    let spans: Vec<SpanRec> = cap
        .spans_named("lido.query")
        .into_iter()
        .filter(|s| {
            s.fields.get("db.query.text").map(String::as_str)
                == Some("SELECT $2 AS n, $1::int AS m")
        })
        .collect();
    assert_eq!(spans.len(), 3, "{:#?}", cap.spans_named("lido.query"));
    for s in &spans {
        assert_eq!(s.field("otel.name"), "SELECT");
        assert_eq!(s.field("db.operation.name"), "SELECT");
        assert_server(s, server, &db);
    }
    let stat = pool.statement_stats().get(sql).expect("tracked");
    assert_eq!(stat.calls, 3);
}

#[tokio::test]
async fn failed_acquire_and_connect_name_the_error() {
    let cap = Capture::default();
    let _guard = cap.install();
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    let mut cfg = common::config(server, &db);
    cfg.dbname = Some("no_such_database".into());
    let pool = common::builder(cfg, 1).build_lazy().expect("pool");
    let err = pool.get().await.expect_err("unknown database");
    assert!(matches!(err, lido_core::Error::Connect { .. }), "{err}");
    let connect = &cap.spans_named("lido.connect")[0];
    assert_eq!(connect.field("error.type"), "3D000");
    assert_eq!(connect.field("db.response.status_code"), "3D000");
    let acquire = &cap.spans_named("lido.acquire")[0];
    assert_eq!(acquire.field("error.type"), "3D000");
    assert_eq!(acquire.field("db.namespace"), "no_such_database");

    let pool = common::builder(common::config(server, &db), 1)
        .acquire_timeout(Duration::from_millis(200))
        .build()
        .await
        .expect("pool");
    let held = pool.get().await.expect("first");
    let err = pool.get().await.expect_err("pool exhausted");
    assert!(err.is_timeout(), "{err}");
    let last = cap.spans_named("lido.acquire").pop().expect("span");
    assert_eq!(last.field("error.type"), "acquire_timeout");
    assert_eq!(last.field("otel.status_code"), "ERROR");
    drop(held);
}

#[tokio::test]
async fn a_connect_cut_short_by_connect_timeout_is_marked() {
    let cap = Capture::default();
    let _guard = cap.install();
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    let proxy = FaultProxy::start(server.addr()).expect("proxy");
    proxy.set(Fault::Blackhole);
    let cfg = PgConfig::parse(&server.url_with_port(&db, proxy.port())).expect("url");
    let pool = lido_postgres::PgPool::builder(cfg)
        .pool_config(lido_core::Config {
            max_size: 1,
            connect_timeout: Duration::from_millis(300),
            acquire_timeout: Duration::from_secs(10),
            retry: lido_core::RetryConfig {
                max_attempts: 1,
                ..Default::default()
            },
            ..Default::default()
        })
        .build_lazy()
        .expect("pool");
    let err = pool.get().await.expect_err("blackholed");
    assert!(matches!(err, lido_core::Error::Connect { .. }), "{err}");
    let connect = &cap.spans_named("lido.connect")[0];
    assert_eq!(connect.field("error.type"), "cancelled");
    assert_eq!(connect.field("server.port"), proxy.port().to_string());
    let acquire = &cap.spans_named("lido.acquire")[0];
    assert_eq!(acquire.field("error.type"), "connect_timeout");
}

/// Leak reports from `PgPool::get` name this file and line, once, however
/// often health rounds and scrapes read the leases in between.
#[tokio::test]
async fn a_leaked_pg_connection_is_reported_once_with_this_line() {
    let cap = Capture::default();
    let _guard = cap.install();
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    let pool = common::builder(common::config(server, &db), 2)
        .pool_config(lido_core::Config {
            max_size: 2,
            leak_threshold: Some(Duration::from_millis(200)),
            maintenance_interval: Duration::from_millis(100),
            ..Default::default()
        })
        .build()
        .await
        .expect("pool");
    let metrics = lido_http::Metrics::builder()
        .pool("main", pool.clone())
        .build()
        .expect("metrics");
    let (conn, line) = (pool.get().await.expect("get"), line!());
    for _ in 0..10 {
        let report = lido_http::HealthExt::health(&pool).await;
        assert!(report.check("connections:leaks", "default").is_some());
        metrics.encode().expect("encode");
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let leaks: Vec<_> = cap
        .events()
        .into_iter()
        .filter(|e| e.level == tracing::Level::WARN)
        .filter(|e| {
            e.fields
                .get("message")
                .is_some_and(|m| m.contains("leak_threshold"))
        })
        .collect();
    assert_eq!(leaks.len(), 1, "{leaks:#?}");
    assert_eq!(pool.stats().leaks(), 1);
    let site = format!("{}:{line}:", file!());
    let location = &leaks[0].fields["location"];
    assert!(location.starts_with(&site), "{location} is not {site}");
    drop(conn);
}

mod otel {
    use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
    use opentelemetry::Value;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
    use tracing_subscriber::layer::SubscriberExt;

    use super::{common, PgServer};

    fn attr<'a>(span: &'a SpanData, key: &str) -> &'a Value {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
            .unwrap_or_else(|| panic!("{} has no {key}: {:#?}", span.name, span.attributes))
    }

    fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
        let names: Vec<_> = spans.iter().map(|s| &s.name).collect();
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name} in {names:?}"))
    }

    /// What a user with tracing-opentelemetry gets: OpenTelemetry spans named
    /// by `otel.name`, of kind client, with the database attributes.
    #[tokio::test]
    async fn query_spans_arrive_as_opentelemetry_spans() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("lido-test"));
        crate::common::capture::ensure_global_interest();
        let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
        let server = PgServer::shared();
        let db = server.create_database().expect("database");
        let pool = common::builder(common::config(server, &db), 1)
            .build()
            .await
            .expect("pool");
        let conn = pool.get().await.expect("get");
        conn.batch_execute("CREATE TABLE items (id int)")
            .await
            .expect("ddl");
        conn.query("SELECT id FROM items WHERE id > $1", &[&0i32])
            .await
            .expect("select");
        conn.query("SELECT * FROM missing", &[])
            .await
            .expect_err("42P01");
        drop(conn);
        provider.force_flush().expect("flush");
        let spans = exporter.get_finished_spans().expect("spans");

        let select = named(&spans, "SELECT items");
        assert_eq!(select.span_kind, SpanKind::Client);
        assert_eq!(attr(select, "db.system.name"), &Value::from("postgresql"));
        assert_eq!(attr(select, "db.namespace"), &Value::from(db.clone()));
        assert_eq!(attr(select, "db.operation.name"), &Value::from("SELECT"));
        assert_eq!(attr(select, "db.collection.name"), &Value::from("items"));
        assert_eq!(attr(select, "server.address"), &Value::from("127.0.0.1"));
        assert_eq!(
            attr(select, "server.port"),
            &Value::I64(i64::from(server.port()))
        );
        assert_eq!(attr(select, "db.response.returned_rows"), &Value::I64(0));
        assert_eq!(select.status, Status::Unset);

        let failed = named(&spans, "SELECT missing");
        assert_eq!(attr(failed, "error.type"), &Value::from("42P01"));
        assert!(
            matches!(failed.status, Status::Error { .. }),
            "{:?}",
            failed.status
        );
        assert!(spans.iter().any(|s| s.name == "lido.acquire"));
        let _ = provider.shutdown();
    }
}

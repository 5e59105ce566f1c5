//! The slow-query log: WARN events with target `lido::slow_query`, their
//! duration and normalized SQL, never parameter values unless asked for.

use crate::common;

use std::time::Duration;

use crate::common::capture::{Capture, EventRec};
use lido_testkit::PgServer;
use tracing::Level;

const TARGET: &str = "lido::slow_query";
const SECRET: &str = "sk_live_hunter2";

async fn pool(slow: Option<Duration>) -> lido_postgres::PgPool {
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    common::builder(common::config(server, &db), 1)
        .slow_query_threshold(slow)
        .build()
        .await
        .expect("pool")
}

fn field<'a>(e: &'a EventRec, key: &str) -> &'a str {
    e.fields
        .get(key)
        .unwrap_or_else(|| panic!("no {key}: {e:#?}"))
}

#[tokio::test]
async fn slow_statements_are_logged_without_parameter_values() {
    let cap = Capture::default();
    let _guard = cap.install();
    let pool = pool(Some(Duration::from_millis(100))).await;
    let conn = pool.get().await.expect("get");
    conn.query("SELECT pg_sleep(0.3)", &[])
        .await
        .expect("sleep");
    let row = conn
        .query_one("SELECT $1::text AS api_key FROM pg_sleep(0.3)", &[&SECRET])
        .await
        .expect("parameterized");
    assert_eq!(row.get::<_, &str>(0), SECRET);

    let events = cap.events_for(TARGET);
    assert_eq!(events.len(), 2, "{events:#?}");
    for e in &events {
        assert_eq!(e.level, Level::WARN);
        let took: f64 = field(e, "duration_ms").parse().expect("a number");
        assert!(
            took >= 100.0,
            "logged only at or above the threshold: {took}"
        );
        assert_eq!(field(e, "threshold_ms"), "100.0");
        assert_eq!(field(e, "operation"), "query");
        assert_eq!(field(e, "rows"), "1");
        assert_eq!(field(e, "fingerprint").len(), 16);
        assert!(!e.fields.contains_key("params"), "{e:#?}");
        assert!(field(e, "message").contains("slow query took"), "{e:#?}");
    }
    assert_eq!(field(&events[0], "sql"), "SELECT pg_sleep($1)");
    assert_eq!(
        field(&events[1], "sql"),
        "SELECT $1::text AS api_key FROM pg_sleep($2)"
    );
    assert!(
        !format!("{:?}", cap.events()).contains("hunter2"),
        "a parameter value reached the log"
    );
    assert_eq!(pool.pg_stats().slow_queries(), 2);
}

#[tokio::test]
async fn per_call_threshold_and_opt_in_parameters() {
    let cap = Capture::default();
    let _guard = cap.install();
    let pool = pool(None).await;
    let conn = pool.get().await.expect("get");
    let sql = "SELECT $1::text AS token, pg_sleep(0.15)";
    conn.query(sql, &[&SECRET]).await.expect("pool log off");
    assert!(cap.events_for(TARGET).is_empty());

    let limit = Some(Duration::from_millis(50));
    let per_call = conn.exec().slow_query_threshold(limit);
    per_call.query(sql, &[&SECRET]).await.expect("per call");
    per_call
        .log_parameters(true)
        .query(sql, &[&SECRET])
        .await
        .expect("with parameters");
    conn.exec()
        .slow_query_threshold(None)
        .query(sql, &[&SECRET])
        .await
        .expect("off for this call");

    let events = cap.events_for(TARGET);
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(
        field(&events[0], "sql"),
        "SELECT $1::text AS token, pg_sleep($2)"
    );
    assert!(!format!("{:?}", events[0]).contains("hunter2"));
    assert_eq!(
        field(&events[1], "sql"),
        field(&events[0], "sql"),
        "still normalized"
    );
    assert_eq!(field(&events[1], "params"), format!("[{SECRET:?}]"));
}

#[tokio::test]
async fn long_sql_is_cut_and_failures_named() {
    let cap = Capture::default();
    let _guard = cap.install();
    let pool = pool(Some(Duration::ZERO)).await;
    let conn = pool.get().await.expect("get");
    let long = format!("SELECT 1 AS {}", "x".repeat(300));
    conn.simple_query(&long).await.expect("long");
    let events = cap.events_for(TARGET);
    let sql = field(&events[0], "sql");
    assert_eq!(sql.chars().count(), lido_postgres::SQL_LOG_CHARS + 1);
    assert!(sql.ends_with('…'));
    assert!(!events[0].fields.contains_key("error.type"));
    let _ = conn
        .query("SELECT * FROM missing", &[])
        .await
        .expect_err("42P01");
    let events = cap.events_for(TARGET);
    assert_eq!(field(&events[1], "error.type"), "42P01");
    assert_eq!(field(&events[1], "rows"), "0");
    conn.exec()
        .log_parameters(true)
        .batch_execute("CREATE ROLE app_user PASSWORD 'hunter2-inline'; DROP ROLE app_user")
        .await
        .expect("role");
    let events = cap.events_for(TARGET);
    assert_eq!(
        field(&events[2], "sql"),
        "CREATE ROLE app_user PASSWORD $1; DROP ROLE app_user"
    );
    assert!(!format!("{events:?}").contains("hunter2"), "{events:#?}");
}

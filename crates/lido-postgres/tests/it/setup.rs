//! Per-connection setup: settings in the startup packet, the after-connect
//! hook, the once-per-pool startup hook, and configuration from strings.

use crate::common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_postgres::{PgBuildError, PgConfig, PgError};
use lido_testkit::PgServer;

async fn show(conn: &lido_postgres::PgConn, name: &str) -> String {
    let rows = conn
        .simple_query(&format!("SHOW {name}"))
        .await
        .expect("show");
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .expect("a row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_settings_arrive_in_the_startup_packet() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let pool = common::builder(common::config(server, &db), 2)
        .statement_timeout(Duration::from_millis(1500))
        .lock_timeout(Duration::from_millis(250))
        .idle_in_transaction_session_timeout(Duration::from_secs(60))
        .search_path("app, public")
        .timezone("Asia/Tokyo")
        .application_name("lido test")
        .build()
        .await
        .expect("pool");
    let conn = pool.get().await.expect("get");
    assert_eq!(show(&conn, "statement_timeout").await, "1500ms");
    assert_eq!(show(&conn, "lock_timeout").await, "250ms");
    assert_eq!(
        show(&conn, "idle_in_transaction_session_timeout").await,
        "1min"
    );
    assert_eq!(show(&conn, "search_path").await, "app, public");
    assert_eq!(show(&conn, "TimeZone").await, "Asia/Tokyo");
    assert_eq!(show(&conn, "application_name").await, "lido test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_per_connection_and_once_per_pool() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let connects = Arc::new(AtomicU32::new(0));
    let startups = Arc::new(AtomicU32::new(0));
    let (c, s) = (Arc::clone(&connects), Arc::clone(&startups));
    let pool = common::builder(common::config(server, &db), 3)
        .on_startup(move |conn| {
            s.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                conn.batch_execute(
                    "CREATE SCHEMA IF NOT EXISTS app; CREATE TABLE IF NOT EXISTS app.seen (n int)",
                )
                .await
            })
        })
        .after_connect(move |conn| {
            c.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { conn.batch_execute("SET search_path = app").await })
        })
        .build()
        .await
        .expect("pool");
    let held = futures::future::join_all((0..3).map(|_| pool.get())).await;
    for conn in &held {
        let conn = conn.as_ref().expect("get");
        conn.execute("INSERT INTO seen VALUES (1)", &[])
            .await
            .expect("hook set search_path");
    }
    assert_eq!(
        startups.load(Ordering::SeqCst),
        1,
        "startup hook once per pool"
    );
    assert_eq!(
        connects.load(Ordering::SeqCst),
        3,
        "after_connect per connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_startup_hook_fails_build() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let err = common::builder(common::config(server, &db), 1)
        .on_startup(|conn| {
            Box::pin(async move { conn.batch_execute("SELECT * FROM no_such_table").await })
        })
        .build()
        .await
        .expect_err("hook fails");
    assert!(
        matches!(&err, PgBuildError::Startup(e) if e.code().map(|c| c.code()) == Some("42P01")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_value_strings_and_multi_host_lists_connect() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    // The first host refuses (nothing listens on port 1); libpq moves on.
    let kv = format!(
        "host=127.0.0.1,127.0.0.1 port=1,{} user={} password='{}' dbname={db} sslmode=disable connect_timeout=2 target_session_attrs=read-write",
        server.port(),
        server.user(),
        server.password().replace('\'', "\\'"),
    );
    let pool = common::builder(PgConfig::parse(&kv).expect("kv"), 1)
        .build()
        .await
        .expect("pool");
    let conn = pool.get().await.expect("second host");
    conn.query_one("SELECT 1", &[]).await.expect("q");
    // Over the Unix socket directory.
    let sock = format!(
        "postgresql:///{db}?host={}&port={}&user={}&password={}",
        server.socket_dir().display(),
        server.port(),
        server.user(),
        server.password()
    );
    let pool = common::builder(PgConfig::parse(&sock).expect("url"), 1)
        .build()
        .await
        .expect("pool");
    let conn = pool.get().await.expect("unix socket");
    let addr = conn
        .query_one("SELECT inet_client_addr() IS NULL", &[])
        .await
        .expect("q");
    assert!(addr.get::<_, bool>(0), "connected over the socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_errors_are_typed() {
    let (_db, pool) = common::shared_pool(1).await;
    let conn = pool.get().await.expect("get");
    let e: PgError = conn.execute("SELEC 1", &[]).await.expect_err("syntax");
    assert_eq!(e.code().map(|c| c.code()), Some("42601"));
    assert!(!e.is_retryable_transaction_error());
    conn.query_one("SELECT 1", &[])
        .await
        .expect("connection fine after an error");
}

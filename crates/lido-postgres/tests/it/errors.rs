//! Error classification against real servers: what the pool retries
//! (57P01, 57P03, 53300, refused sockets) and what it reports at once with
//! what to fix (28P01, 3D000, tokio-postgres' own configuration and
//! authentication errors).

use crate::common;

use std::time::Duration;

use lido_core::{ErrorClass, Manager};
use lido_postgres::{PgConfig, PgError, PgManager};
use lido_testkit::{PgServer, StopMode};

fn manager(cfg: PgConfig) -> PgManager {
    common::builder(cfg, 1).manager().expect("manager")
}

/// One connect straight through the manager (no pool retries).
async fn connect_error(m: &PgManager) -> PgError {
    m.connect().await.expect_err("connect must fail")
}

fn code(e: &PgError) -> Option<&str> {
    e.code().map(|c| c.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_connections_is_transient() {
    let server = PgServer::builder()
        .max_connections(2)
        .setting("superuser_reserved_connections", "0")
        .start()
        .expect("server");
    let m = manager(common::config(&server, "postgres"));
    let _a = m.connect().await.expect("first");
    let _b = m.connect().await.expect("second");
    let e = connect_error(&m).await;
    assert_eq!(code(&e), Some("53300"), "{e}");
    let target = format!("127.0.0.1:{}: FATAL 53300: ", server.port());
    assert!(e.to_string().starts_with(&target), "names the target: {e}");
    assert_eq!(m.classify(&e), ErrorClass::Transient);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cannot_connect_now_during_shutdown_is_transient() {
    let server = PgServer::start().expect("server");
    let m = manager(common::config(&server, "postgres"));
    let held = m
        .connect()
        .await
        .expect("a session keeps the smart stop waiting");
    server.begin_stop(StopMode::Smart).expect("smart stop");
    let e = connect_error(&m).await;
    assert_eq!(code(&e), Some("57P03"), "{e}");
    assert!(e.to_string().contains("FATAL 57P03: "), "{e}");
    assert_eq!(m.classify(&e), ErrorClass::Transient);
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_shutdown_is_transient_and_the_connection_is_replaced() {
    let server = PgServer::shared();
    let (db, pool) = common::shared_pool(1).await;
    let conn = pool.get().await.expect("get");
    let sleeping = tokio::spawn(async move {
        let e = conn
            .query("SELECT pg_sleep(30)", &[])
            .await
            .expect_err("terminated");
        (e, conn)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.terminate_backends(&db).expect("terminate"), 1);
    let (e, conn) = tokio::time::timeout(Duration::from_secs(10), sleeping)
        .await
        .expect("not the 30 s sleep")
        .expect("join");
    assert_eq!(code(&e), Some("57P01"), "{e}");
    assert_eq!(e.class(), ErrorClass::Transient);
    drop(conn);
    let next = pool.get().await.expect("a fresh connection");
    next.query_one("SELECT 1", &[]).await.expect("works");
    assert_eq!(pool.stats().closed(lido_core::CloseReason::Broken), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_sockets_are_transient() {
    let mut cfg = common::config(PgServer::shared(), "postgres");
    cfg.ports = vec![1];
    let m = manager(cfg);
    let e = connect_error(&m).await;
    assert!(matches!(e, PgError::Connect { .. }), "{e}");
    assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
    assert_eq!(m.classify(&e), ErrorClass::Transient);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_errors_are_permanent_and_say_what_to_fix() {
    let server = PgServer::shared();
    let wrong_pw = manager(common::config(server, "postgres").password("wrong"));
    let e = connect_error(&wrong_pw).await;
    assert_eq!(code(&e), Some("28P01"));
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert!(e.fix().is_some_and(|f| f.contains("password")), "{e}");
    assert!(
        e.to_string().contains("password authentication failed"),
        "{e}"
    );
    assert!(
        !e.to_string().contains("wrong"),
        "no password in errors: {e}"
    );

    let no_db = manager(common::config(server, "no_such_db"));
    let e = connect_error(&no_db).await;
    assert_eq!(code(&e), Some("3D000"));
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert!(e.to_string().contains("CREATE DATABASE"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_config_and_auth_errors_are_permanent() {
    let server = PgServer::shared();
    let mut no_password = common::config(server, "postgres");
    no_password.password = None;
    let m = manager(no_password.clone());
    let e = connect_error(&m).await;
    assert_eq!(
        e.code(),
        None,
        "refused by tokio-postgres, not the server: {e:?}"
    );
    assert_eq!(m.classify(&e), ErrorClass::Permanent, "{e:?}");

    let mut binding = common::config(server, "postgres");
    binding.channel_binding_required = Some(true); // plain text cannot bind a channel
    let m = manager(binding);
    let e = connect_error(&m).await;
    assert_eq!(e.code(), None, "{e:?}");
    assert_eq!(m.classify(&e), ErrorClass::Permanent, "{e:?}");

    // Through the pool: one attempt, no retries.
    let pool = common::builder(no_password, 1).build_lazy().expect("pool");
    pool.get().await.expect_err("no password");
    assert_eq!(pool.pg_stats().connect_attempts(), 1);
}

//! Network faults between the pool and a real server, through lido-testkit's
//! FaultProxy: a cancel that cannot be confirmed (blackhole), a connection
//! reset mid-query, refused connects. Each ends with no connection leaked
//! on the server.

use crate::common;

use std::time::Duration;

use lido_core::{CloseReason, RetryConfig};
use lido_postgres::{PgError, PgPoolBuilder};
use lido_testkit::{Fault, FaultProxy, PgServer};
use tokio::time::Instant;

const HANG_GUARD: Duration = Duration::from_secs(10);

/// A pool on a fresh database of the shared server, through a new proxy.
fn through_proxy(app: &str) -> (FaultProxy, PgPoolBuilder) {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let proxy = FaultProxy::start(server.addr()).expect("proxy");
    let cfg =
        lido_postgres::PgConfig::parse(&server.url_with_port(&db, proxy.port())).expect("url");
    (proxy, common::builder(cfg, 1).application_name(app))
}

/// Switches the proxy from a blocking thread (`set` waits for the switch).
async fn set(proxy: &FaultProxy, fault: Fault) {
    tokio::task::block_in_place(|| proxy.set(fault));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_cancel_closes_the_connection() {
    let app = "lido_faults_blackhole";
    let (proxy, builder) = through_proxy(app);
    let pool = builder
        .cancel_grace(Duration::from_millis(300))
        .build()
        .await
        .expect("pool");
    let conn = pool.get().await.expect("get");
    let query = conn
        .timeout(Duration::from_millis(200))
        .query("SELECT pg_sleep(30)", &[]);
    let partition = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        set(&proxy, Fault::Blackhole).await;
    };
    let started = Instant::now();
    let (result, ()) = tokio::join!(query, partition);
    let err = result.expect_err("must time out");
    assert!(started.elapsed() < HANG_GUARD, "not the 30 s sleep");
    assert!(
        matches!(
            err,
            PgError::QueryTimeout {
                cancelled: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("will be closed"), "{err}");
    assert_eq!(pool.pg_stats().cancels_unconfirmed(), 1);
    assert_eq!(pool.pg_stats().cancels_confirmed(), 0);
    assert!(conn.is_broken());
    drop(conn);
    common::settled(&pool, Duration::from_secs(5)).await;
    assert_eq!(
        pool.stats().closed(CloseReason::Broken),
        1,
        "closed as broken, not reused"
    );
    set(&proxy, Fault::Pass).await;
    let next = pool.get().await.expect("a fresh connection");
    next.query_one("SELECT 1", &[]).await.expect("works");
    drop(next);
    common::no_leaked_sessions(PgServer::shared(), &pool, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_mid_query_replaces_the_connection() {
    let app = "lido_faults_reset";
    let (proxy, builder) = through_proxy(app);
    let pool = builder.build().await.expect("pool");
    let conn = pool.get().await.expect("get");
    let query = conn.no_timeout().query("SELECT pg_sleep(30)", &[]);
    let reset = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        set(&proxy, Fault::Reset).await;
    };
    let (result, ()) = tokio::join!(query, reset);
    let err = result.expect_err("reset");
    assert_eq!(err.class(), lido_core::ErrorClass::Transient, "{err:?}");
    assert!(conn.is_broken(), "the client saw the socket die");
    set(&proxy, Fault::Pass).await;
    // Closing it cancels the statement its backend still runs.
    drop(conn);
    let next = pool.get().await.expect("a fresh connection");
    next.query_one("SELECT 1", &[]).await.expect("works");
    drop(next);
    assert_eq!(pool.stats().closed(CloseReason::Broken), 1);
    common::no_leaked_sessions(PgServer::shared(), &pool, app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connects_are_retried() {
    let app = "lido_faults_refuse";
    let (proxy, builder) = through_proxy(app);
    let mut core = lido_core::Config {
        max_size: 1,
        acquire_timeout: HANG_GUARD,
        connect_timeout: Duration::from_secs(5),
        leak_threshold: None,
        ..Default::default()
    };
    core.retry = RetryConfig {
        base: Duration::from_millis(50),
        cap: Duration::from_millis(100),
        max_attempts: 50,
    };
    core.breaker.consecutive_failures = 100;
    let pool = builder.pool_config(core).build_lazy().expect("pool");
    set(&proxy, Fault::Refuse).await;
    let lift = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        set(&proxy, Fault::Pass).await;
    };
    let (got, ()) = tokio::join!(pool.get(), lift);
    let conn = got.expect("retried until the port listened again");
    conn.query_one("SELECT 1", &[]).await.expect("works");
    drop(conn);
    assert!(
        pool.stats().connect_failures() >= 1,
        "connects were refused first"
    );
    common::no_leaked_sessions(PgServer::shared(), &pool, app).await;
}

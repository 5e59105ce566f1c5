//! Per-query and transaction timeouts: the server-side statement is
//! cancelled and the same connection serves the next query.

use crate::common;

use std::time::Duration;

use lido_postgres::{PgError, TxOptions};
use lido_testkit::PgServer;
use tokio::time::Instant;

/// Hang guard only: the timeouts below are 200–300 ms.
const HANG_GUARD: Duration = Duration::from_secs(5);

fn sleepers(server: &PgServer, db: &str) -> String {
    common::psql(
        server,
        db,
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%' AND state = 'active' \
         AND datname = current_database();",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_query_is_cancelled_and_the_connection_reused() {
    let server = PgServer::shared();
    let (db, pool) = common::shared_pool(2).await;
    let conn = pool.get().await.expect("get");
    let pid = conn.backend_pid().await.expect("pid");

    let started = Instant::now();
    let err = conn
        .timeout(Duration::from_millis(200))
        .query("SELECT pg_sleep(30)", &[])
        .await
        .expect_err("must time out");
    let took = started.elapsed();
    println!("pg_sleep(30) with a 200 ms timeout returned after {took:?}");
    assert!(took < HANG_GUARD, "took {took:?}");
    assert!(
        matches!(err, PgError::QueryTimeout { cancelled: true, timeout } if timeout == Duration::from_millis(200)),
        "{err}"
    );
    assert_eq!(
        sleepers(server, &db),
        "0",
        "the server no longer runs the query"
    );

    assert_eq!(
        conn.backend_pid().await.expect("pid again"),
        pid,
        "same connection"
    );
    let row = conn
        .query_one("SELECT 40 + $1::int", &[&2i32])
        .await
        .expect("next query");
    assert_eq!(row.get::<_, i32>(0), 42);
    assert_eq!(pool.pg_stats().query_timeouts(), 1);
    assert_eq!(pool.pg_stats().cancels_confirmed(), 1);
    assert!(!conn.is_broken());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_default_query_timeout_applies_and_can_be_overridden() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let pool = common::builder(common::config(server, &db), 1)
        .query_timeout(Some(Duration::from_millis(200)))
        .build()
        .await
        .expect("pool");
    let conn = pool.get().await.expect("get");
    let started = Instant::now();
    let err = conn
        .query("SELECT pg_sleep(30)", &[])
        .await
        .expect_err("default timeout");
    assert!(err.is_timeout() && started.elapsed() < HANG_GUARD, "{err}");
    // A longer per-call limit lets a short sleep finish.
    conn.timeout(Duration::from_secs(20))
        .execute("SELECT pg_sleep(0.3)", &[])
        .await
        .expect("per-call override");
    conn.batch_execute("SELECT 1").await.expect("still usable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_query_is_cancelled_before_the_connection_is_reused() {
    let server = PgServer::shared();
    let (db, pool) = common::shared_pool(1).await;
    {
        let conn = pool.get().await.expect("get");
        // The caller gives up on its own (no lido timeout): the future is dropped mid-query.
        let gave_up = tokio::time::timeout(
            Duration::from_millis(200),
            conn.no_timeout().query("SELECT pg_sleep(30)", &[]),
        )
        .await;
        assert!(gave_up.is_err());
    }
    let started = Instant::now();
    let conn = pool.get().await.expect("the only connection comes back");
    conn.query_one("SELECT 1", &[])
        .await
        .expect("it answers at once");
    assert!(
        started.elapsed() < HANG_GUARD,
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(sleepers(server, &db), "0");
    assert!(pool.pg_stats().resets() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_timeout_cancels_and_rolls_back() {
    let server = PgServer::shared();
    let (db, pool) = common::shared_pool(1).await;
    let mut conn = pool.get().await.expect("get");
    conn.batch_execute("CREATE TABLE t (id int)")
        .await
        .expect("ddl");
    let opts = TxOptions::new().timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = conn
        .transaction_with_retry(&opts, |tx| {
            Box::pin(async move {
                tx.execute("INSERT INTO t VALUES (1)", &[]).await?;
                tx.execute("SELECT pg_sleep(30)", &[]).await?;
                Ok(())
            })
        })
        .await
        .expect_err("must time out");
    assert!(
        matches!(err, PgError::TransactionTimeout { rolled_back: true, timeout } if timeout == Duration::from_millis(300)),
        "{err}"
    );
    assert!(err.to_string().contains("was rolled back"), "{err}");
    assert!(started.elapsed() < HANG_GUARD);
    let s = pool.pg_stats();
    assert_eq!(s.tx_timed_out(), 1);
    assert_eq!(
        s.query_timeouts(),
        0,
        "a transaction timeout, not a query timeout"
    );
    assert_eq!(
        s.cancels_confirmed() + s.cancels_unconfirmed(),
        1,
        "one cancel request for one timeout"
    );
    assert_eq!(s.tx_retried(), 0, "timeouts are not retried");
    let n: i64 = conn
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0, "the insert was rolled back");
    assert!(!conn.in_transaction());
    assert_eq!(sleepers(server, &db), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_run_transaction_past_its_deadline_says_it_must_be_rolled_back() {
    let server = PgServer::shared();
    let (db, pool) = common::shared_pool(1).await;
    let mut conn = pool.get().await.expect("get");
    conn.batch_execute("CREATE TABLE t (id int)")
        .await
        .expect("ddl");
    let pid = conn.backend_pid().await.expect("pid");
    let opts = TxOptions::new().timeout(Duration::from_millis(300));
    let tx = conn.begin(&opts).await.expect("begin");
    tx.execute("INSERT INTO t VALUES (1)", &[])
        .await
        .expect("insert");
    let err = tx
        .execute("SELECT pg_sleep(30)", &[])
        .await
        .expect_err("deadline");
    assert!(
        matches!(
            err,
            PgError::TransactionTimeout {
                rolled_back: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("must be rolled back"), "{err}");
    assert_eq!(sleepers(server, &db), "0", "the statement was cancelled");
    let again = tx
        .execute("SELECT 1", &[])
        .await
        .expect_err("still past the deadline");
    assert!(
        matches!(again, PgError::TransactionTimeout { .. }),
        "{again}"
    );
    let last = common::psql(
        server,
        &db,
        &format!("SELECT query FROM pg_stat_activity WHERE pid = {pid};"),
    );
    assert_eq!(
        last, "",
        "the backend's last statement is the cancel's empty confirming query: nothing was sent after the deadline"
    );
    let s = pool.pg_stats();
    assert_eq!(
        (s.tx_timed_out(), s.query_timeouts(), s.cancels_confirmed()),
        (1, 0, 1)
    );
    drop(tx);
    let n: i64 = conn
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0, "dropping the transaction rolled it back");
}

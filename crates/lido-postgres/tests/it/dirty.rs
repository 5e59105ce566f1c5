//! A connection left inside a transaction — however it got there — is
//! rolled back before the next caller gets it. lido follows the server's
//! own transaction status (its ReadyForQuery messages), so SQL text it
//! cannot parse, prepared statements and the bare tokio-postgres client
//! are all covered.

use crate::common;

use std::time::Duration;

use lido_postgres::{PgConn, PgPool, TxStatus};
use lido_testkit::PgServer;

const HANG_GUARD: Duration = Duration::from_secs(10);

async fn pool() -> (String, PgPool) {
    let (db, pool) = common::shared_pool(1).await;
    let conn = pool.get().await.expect("get");
    conn.batch_execute("CREATE TABLE t (id int)")
        .await
        .expect("ddl");
    (db, pool)
}

/// Waits (briefly) until the server's last word is `want`: an answer can
/// still be on its way when a call returns (an error comes before its
/// ReadyForQuery; the bare client closes its unnamed statements without
/// waiting).
async fn settles_to(conn: &PgConn, want: TxStatus) {
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while conn.transaction_status() == TxStatus::Busy && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(conn.transaction_status(), want);
}

/// Inserts a row inside whatever transaction is open and returns the backend pid.
async fn write_inside(conn: &PgConn) -> i32 {
    conn.execute("INSERT INTO t VALUES (1)", &[])
        .await
        .expect("insert");
    assert_eq!(conn.transaction_status(), TxStatus::InTransaction);
    conn.backend_pid().await.expect("pid")
}

/// The next lease is the same backend, idle, and sees no uncommitted row;
/// the server agrees the session is idle.
async fn next_caller_gets_it_clean(pool: &PgPool, db: &str, pid: i32, case: &str) {
    let conn = pool.get().await.expect("get");
    assert_eq!(conn.transaction_status(), TxStatus::Idle, "{case}");
    assert_eq!(
        conn.backend_pid().await.expect("pid"),
        pid,
        "{case}: rolled back and reused, not replaced"
    );
    let n: i64 = conn
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0, "{case}: the uncommitted insert was rolled back");
    drop(conn);
    common::settled(pool, Duration::from_secs(5)).await;
    let state = common::psql(
        PgServer::shared(),
        db,
        &format!("SELECT state FROM pg_stat_activity WHERE pid = {pid};"),
    );
    assert_eq!(state, "idle", "{case}: the server says idle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn begin_behind_comments_is_rolled_back() {
    let (db, pool) = pool().await;
    for (case, sql) in [
        ("block comment", "/* c */ BEGIN"),
        ("line comment", "-- c\nBEGIN"),
        ("nested comment", "/* a /* b */ */ START TRANSACTION"),
    ] {
        let pid = {
            let conn = pool.get().await.expect("get");
            conn.batch_execute(sql).await.expect("begin");
            write_inside(&conn).await
        };
        next_caller_gets_it_clean(&pool, &db, pid, case).await;
        // Through the extended protocol (a cached prepared statement) too.
        let pid = {
            let conn = pool.get().await.expect("get");
            conn.execute(sql, &[]).await.expect("begin");
            write_inside(&conn).await
        };
        next_caller_gets_it_clean(&pool, &db, pid, case).await;
    }
    assert!(pool.pg_stats().resets() >= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_and_chain_and_rollback_and_chain_are_rolled_back() {
    let (db, pool) = pool().await;
    for chain in ["COMMIT AND CHAIN", "ROLLBACK AND CHAIN"] {
        let pid = {
            let conn = pool.get().await.expect("get");
            conn.batch_execute("BEGIN").await.expect("begin");
            conn.batch_execute(chain).await.expect("chain");
            write_inside(&conn).await
        };
        next_caller_gets_it_clean(&pool, &db, pid, chain).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_statement_that_begins_is_rolled_back() {
    let (db, pool) = pool().await;
    let pid = {
        let conn = pool.get().await.expect("get");
        let begin = conn.prepare("BEGIN").await.expect("prepare");
        conn.execute(&begin, &[]).await.expect("run the Statement");
        write_inside(&conn).await
    };
    next_caller_gets_it_clean(&pool, &db, pid, "prepared Statement").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_run_on_the_bare_client_is_rolled_back() {
    let (db, pool) = pool().await;
    let pid = {
        let conn = pool.get().await.expect("get");
        conn.client().execute("BEGIN", &[]).await.expect("client");
        conn.client()
            .execute("INSERT INTO t VALUES (1)", &[])
            .await
            .expect("insert");
        settles_to(&conn, TxStatus::InTransaction).await;
        conn.backend_pid().await.expect("pid")
    };
    next_caller_gets_it_clean(&pool, &db, pid, "tokio-postgres Client").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_transaction_is_rolled_back() {
    let (db, pool) = pool().await;
    let pid = {
        let conn = pool.get().await.expect("get");
        conn.batch_execute("BEGIN; INSERT INTO t VALUES (1)")
            .await
            .expect("begin");
        conn.query_one("SELECT 1 / 0", &[])
            .await
            .expect_err("division by zero");
        settles_to(&conn, TxStatus::Failed).await;
        conn.backend_pid().await.expect_err("aborted");
        conn.client()
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect_err("still aborted");
        // The backend reports its state just after sending the error the
        // client has already seen: poll until it shows.
        let started = std::time::Instant::now();
        loop {
            let rows = common::psql(
                PgServer::shared(),
                &db,
                "SELECT pid FROM pg_stat_activity WHERE state = 'idle in transaction (aborted)' \
                 AND datname = current_database();",
            );
            match rows.parse::<i32>() {
                Ok(pid) => break pid,
                Err(_) if started.elapsed() < Duration::from_secs(10) => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => panic!("one aborted session, got {rows:?}: {e}"),
            }
        }
    };
    next_caller_gets_it_clean(&pool, &db, pid, "aborted transaction").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_given_up_on_the_bare_client_is_cancelled() {
    let (db, pool) = pool().await;
    {
        let conn = pool.get().await.expect("get");
        let gave_up = tokio::time::timeout(
            Duration::from_millis(200),
            conn.client().query("SELECT pg_sleep(30)", &[]),
        )
        .await;
        assert!(gave_up.is_err());
        assert_eq!(conn.transaction_status(), TxStatus::Busy);
    }
    let started = tokio::time::Instant::now();
    let conn = pool.get().await.expect("the only connection comes back");
    assert!(started.elapsed() < HANG_GUARD, "not the 30 s sleep");
    assert_eq!(conn.transaction_status(), TxStatus::Idle);
    conn.query_one("SELECT 1", &[]).await.expect("answers");
    let running = common::psql(
        PgServer::shared(),
        &db,
        "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active';",
    );
    assert_eq!(running, "0", "the server no longer runs it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_returned_without_a_round_trip() {
    let (_db, pool) = pool().await;
    let before = pool.pg_stats().resets();
    for _ in 0..5 {
        let conn = pool.get().await.expect("get");
        conn.query_one("SELECT 1", &[]).await.expect("q");
        conn.batch_execute("BEGIN; COMMIT").await.expect("tx");
        assert_eq!(conn.transaction_status(), TxStatus::Idle);
    }
    assert_eq!(
        pool.pg_stats().resets(),
        before,
        "clean returns are not reset"
    );
}

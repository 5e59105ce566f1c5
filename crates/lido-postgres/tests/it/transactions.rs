//! Transactions against a real server: retried serialization failures and
//! deadlocks, savepoints, and connections never handed on dirty.

use crate::common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_postgres::{IsolationLevel, PgError, PgPool, TxOptions};
use tokio::sync::Barrier;

async fn setup(pool: &PgPool, sql: &str) {
    pool.get()
        .await
        .expect("get")
        .batch_execute(sql)
        .await
        .expect("setup");
}

/// Write skew: each doctor goes off call if at least two are on call.
async fn go_off_call(
    pool: PgPool,
    name: &'static str,
    barrier: Arc<Barrier>,
) -> Result<bool, PgError> {
    let attempts = Arc::new(AtomicU32::new(0));
    pool.transaction_with_retry(&TxOptions::new().serializable(), move |tx| {
        let first = attempts.fetch_add(1, Ordering::SeqCst) == 0;
        let barrier = Arc::clone(&barrier);
        Box::pin(async move {
            let on: i64 = tx
                .query_one("SELECT count(*) FROM doctors WHERE on_call", &[])
                .await?
                .get(0);
            if first {
                barrier.wait().await; // both have read before either writes
            }
            if on < 2 {
                return Ok(false);
            }
            tx.execute(
                "UPDATE doctors SET on_call = false WHERE name = $1",
                &[&name],
            )
            .await?;
            Ok(true)
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serialization_failures_are_retried_to_success() {
    let (_db, pool) = common::shared_pool(4).await;
    setup(
        &pool,
        "CREATE TABLE doctors (name text PRIMARY KEY, on_call bool NOT NULL);
         INSERT INTO doctors VALUES ('alice', true), ('bob', true);",
    )
    .await;
    let barrier = Arc::new(Barrier::new(2));
    let a = tokio::spawn(go_off_call(pool.clone(), "alice", Arc::clone(&barrier)));
    let b = tokio::spawn(go_off_call(pool.clone(), "bob", barrier));
    let (a, b) = (
        a.await.expect("join").expect("alice"),
        b.await.expect("join").expect("bob"),
    );
    assert!(a ^ b, "exactly one went off call (alice {a}, bob {b})");
    let conn = pool.get().await.expect("get");
    let on: i64 = conn
        .query_one("SELECT count(*) FROM doctors WHERE on_call", &[])
        .await
        .expect("q")
        .get(0);
    assert_eq!(on, 1, "serializable retry kept the invariant");
    let s = pool.pg_stats();
    println!(
        "committed {} rolled back {} retried {}",
        s.tx_committed(),
        s.tx_rolled_back(),
        s.tx_retried()
    );
    assert!(s.tx_retried() >= 1);
    assert_eq!(s.tx_committed(), 2);
}

async fn transfer(
    pool: PgPool,
    from: i32,
    to: i32,
    amount: i32,
    barrier: Arc<Barrier>,
) -> Result<(), PgError> {
    let attempts = Arc::new(AtomicU32::new(0));
    pool.transaction_with_retry(&TxOptions::new(), move |tx| {
        let first = attempts.fetch_add(1, Ordering::SeqCst) == 0;
        let barrier = Arc::clone(&barrier);
        Box::pin(async move {
            tx.execute(
                "UPDATE acct SET bal = bal - $1 WHERE id = $2",
                &[&amount, &from],
            )
            .await?;
            if first {
                barrier.wait().await; // each holds one row lock and wants the other's
            }
            tx.execute(
                "UPDATE acct SET bal = bal + $1 WHERE id = $2",
                &[&amount, &to],
            )
            .await?;
            Ok(())
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_deadlock_is_retried_to_success() {
    let (_db, pool) = common::shared_pool(4).await;
    setup(
        &pool,
        "CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL);
         INSERT INTO acct VALUES (1, 100), (2, 100);",
    )
    .await;
    let barrier = Arc::new(Barrier::new(2));
    let a = tokio::spawn(transfer(pool.clone(), 1, 2, 10, Arc::clone(&barrier)));
    let b = tokio::spawn(transfer(pool.clone(), 2, 1, 5, barrier));
    a.await.expect("join").expect("transfer 1 -> 2");
    b.await.expect("join").expect("transfer 2 -> 1");
    let conn = pool.get().await.expect("get");
    let rows = conn
        .query("SELECT bal FROM acct ORDER BY id", &[])
        .await
        .expect("q");
    let bal: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(bal, [95, 105], "both transfers applied exactly once");
    assert!(
        pool.pg_stats().tx_retried() >= 1,
        "the deadlock victim was retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded() {
    let (_db, pool) = common::shared_pool(1).await;
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    let err = pool
        .transaction_with_retry(&TxOptions::new().max_attempts(3), move |tx| {
            seen.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                // Raise a real 40001 from the server.
                tx.batch_execute(
                    "DO $$ BEGIN RAISE EXCEPTION 'forced' USING ERRCODE = 'serialization_failure'; END $$",
                )
                .await?;
                Ok(())
            })
        })
        .await
        .expect_err("always fails");
    assert!(
        matches!(&err, PgError::RetriesExhausted { attempts: 3, last } if last.is_serialization_failure()),
        "{err}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(pool.pg_stats().tx_retried(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoint_rollback_keeps_the_outer_transaction() {
    let (_db, pool) = common::shared_pool(1).await;
    setup(&pool, "CREATE TABLE t (id int PRIMARY KEY)").await;
    let mut conn = pool.get().await.expect("get");
    let opts = TxOptions::new().isolation(IsolationLevel::RepeatableRead);
    let mut tx = conn.begin(&opts).await.expect("begin");
    tx.execute("INSERT INTO t VALUES (1)", &[])
        .await
        .expect("insert 1");
    {
        let sp = tx.savepoint().await.expect("savepoint");
        assert_eq!(sp.depth(), 2);
        let dup = sp
            .execute("INSERT INTO t VALUES (1)", &[])
            .await
            .expect_err("duplicate");
        assert_eq!(dup.code().map(|c| c.code()), Some("23505"));
        sp.rollback().await.expect("rollback to savepoint");
    }
    {
        let mut sp = tx.savepoint().await.expect("savepoint 2");
        sp.execute("INSERT INTO t VALUES (2)", &[])
            .await
            .expect("insert 2");
        let inner = sp.savepoint().await.expect("nested");
        inner
            .execute("INSERT INTO t VALUES (3)", &[])
            .await
            .expect("insert 3");
        drop(inner); // dropped unfinished: rolled back before the next statement
        sp.execute("INSERT INTO t VALUES (4)", &[])
            .await
            .expect("insert 4");
        sp.commit().await.expect("release");
    }
    tx.commit().await.expect("commit");
    let ids: Vec<i32> = conn
        .query("SELECT id FROM t ORDER BY id", &[])
        .await
        .expect("q")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, [1, 2, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_returned_mid_transaction_is_rolled_back() {
    let server = lido_testkit::PgServer::shared();
    let (db, pool) = common::shared_pool(1).await;
    setup(&pool, "CREATE TABLE t (id int)").await;
    {
        let mut conn = pool.get().await.expect("get");
        let tx = conn.transaction().await.expect("begin");
        tx.execute("INSERT INTO t VALUES (1)", &[])
            .await
            .expect("insert");
        std::mem::forget(tx); // not even Drop runs: the depth counter still says "open"
    }
    {
        let conn = pool.get().await.expect("get");
        conn.batch_execute("BEGIN; INSERT INTO t VALUES (2)")
            .await
            .expect("raw begin");
    }
    {
        let mut conn = pool.get().await.expect("get");
        let tx = conn.transaction().await.expect("begin");
        tx.execute("INSERT INTO t VALUES (3)", &[])
            .await
            .expect("insert");
        // dropped without commit
    }
    let conn = pool.get().await.expect("the same single connection");
    assert!(!conn.in_transaction());
    let n: i64 = conn
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0, "nothing leaked into the next lease's view");
    drop(conn);
    common::settled(&pool, Duration::from_secs(5)).await;
    assert_eq!(common::psql(server, &db, "SELECT count(*) FROM t;"), "0");
    assert!(pool.pg_stats().resets() >= 3);
    assert!(pool.pg_stats().tx_rolled_back() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_transactions_refuse_writes() {
    let (_db, pool) = common::shared_pool(1).await;
    setup(&pool, "CREATE TABLE t (id int)").await;
    let mut conn = pool.get().await.expect("get");
    let opts = TxOptions::new()
        .serializable()
        .read_only(true)
        .deferrable(true);
    let tx = conn.begin(&opts).await.expect("begin");
    let row = tx
        .query_one("SHOW transaction_isolation", &[])
        .await
        .expect("show");
    assert_eq!(row.get::<_, String>(0), "serializable");
    let e = tx
        .execute("INSERT INTO t VALUES (1)", &[])
        .await
        .expect_err("read only");
    assert_eq!(e.code().map(|c| c.code()), Some("25006"));
    tx.rollback().await.expect("rollback");
    conn.execute("INSERT INTO t VALUES (1)", &[])
        .await
        .expect("writes work again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_errors_roll_back_without_retry() {
    let (_db, pool) = common::shared_pool(1).await;
    setup(&pool, "CREATE TABLE t (id int)").await;
    let err = pool
        .transaction_with_retry(&TxOptions::new(), |tx| {
            Box::pin(async move {
                tx.execute("INSERT INTO t VALUES (1)", &[]).await?;
                Err::<(), _>(PgError::app("insufficient funds"))
            })
        })
        .await
        .expect_err("app error");
    assert!(matches!(err, PgError::App(_)) && err.to_string() == "insufficient funds");
    let conn = pool.get().await.expect("get");
    let n: i64 = conn
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .expect("q")
        .get(0);
    assert_eq!(n, 0);
    assert_eq!(pool.pg_stats().tx_retried(), 0);
}

/// The pool knows which transaction has been open longest and where it began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_open_transaction_names_its_call_site() {
    let server = lido_testkit::PgServer::shared();
    let db = server.create_database().expect("db");
    let pool = crate::common::builder(crate::common::config(server, &db), 2)
        .build()
        .await
        .expect("pool");
    assert!(pool.longest_open_transaction().is_none());
    let mut conn = pool.get().await.expect("get");
    let line = line!() + 1;
    let tx = conn.transaction().await.expect("begin");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let open = pool.longest_open_transaction().expect("one open");
    assert!(open.age >= std::time::Duration::from_millis(20), "{open:?}");
    assert!(
        open.location.file().ends_with("transactions.rs"),
        "{open:?}"
    );
    assert_eq!(open.location.line(), line, "{open:?}");
    assert_eq!(pool.open_transactions(), 1);
    tx.commit().await.expect("commit");
    assert_eq!(pool.open_transactions(), 0);
    assert!(pool.longest_open_transaction().is_none());
}

/// A retrying transaction is remembered at its caller's line, through the
/// pool and through a connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrying_transaction_names_its_callers_line() {
    let server = lido_testkit::PgServer::shared();
    let db = server.create_database().expect("db");
    let pool = crate::common::builder(crate::common::config(server, &db), 2)
        .build()
        .await
        .expect("pool");
    let opts = lido_postgres::TxOptions::new();
    let seen = |p: &lido_postgres::PgPool| {
        let open = p.longest_open_transaction().expect("one open");
        (open.location.file().to_owned(), open.location.line())
    };
    let probe = pool.clone();
    let line = line!() + 2;
    let (file, at) = pool
        .transaction_with_retry(&opts, |_tx| {
            let probe = probe.clone();
            Box::pin(async move { Ok(seen(&probe)) })
        })
        .await
        .expect("tx");
    assert!(
        file.ends_with("transactions.rs") && at == line,
        "{file}:{at}"
    );
    let mut conn = pool.get().await.expect("get");
    let probe = pool.clone();
    let line = line!() + 2;
    let (file, at) = conn
        .transaction_with_retry(&opts, |_tx| {
            let probe = probe.clone();
            Box::pin(async move { Ok(seen(&probe)) })
        })
        .await
        .expect("tx");
    assert!(
        file.ends_with("transactions.rs") && at == line,
        "{file}:{at}"
    );
}

//! The per-connection prepared-statement cache: hits, LRU eviction, and
//! recovery from "cached plan must not change result type" after DDL.

use crate::common;

use lido_postgres::TxOptions;
use lido_testkit::PgServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_queries_hit_the_cache() {
    let (_db, pool) = common::shared_pool(1).await;
    let conn = pool.get().await.expect("get");
    conn.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 10)")
        .await
        .expect("setup");
    let before = (pool.pg_stats().stmt_hits(), pool.pg_stats().stmt_misses());
    for _ in 0..10 {
        let row = conn
            .query_one("SELECT v FROM t WHERE id = $1", &[&1i32])
            .await
            .expect("q");
        assert_eq!(row.get::<_, i32>(0), 10);
    }
    let s = pool.pg_stats();
    assert_eq!(s.stmt_misses() - before.1, 1);
    assert_eq!(s.stmt_hits() - before.0, 9);
    assert_eq!(conn.cached_statements(), 1);
    let stmt = conn
        .prepare_cached("SELECT v FROM t WHERE id = $1")
        .await
        .expect("prepare");
    assert_eq!(
        s.stmt_hits() - before.0,
        10,
        "prepare_cached uses the same entry"
    );
    conn.query_one(&stmt, &[&1i32])
        .await
        .expect("run a Statement");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cache_evicts_the_least_recently_used() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let pool = common::builder(common::config(server, &db), 1)
        .statement_cache(2)
        .build()
        .await
        .expect("pool");
    let conn = pool.get().await.expect("get");
    for i in 0..5i32 {
        let sql = format!("SELECT {i} + $1::int");
        conn.query_one(sql.as_str(), &[&1i32]).await.expect("q");
    }
    assert_eq!(conn.cached_statements(), 2);
    assert_eq!(pool.pg_stats().stmt_evictions(), 3);
    // Per statement too: the one normalized statement was evicted 3 times.
    let per_statement: Vec<(String, u64)> = pool
        .statement_stats()
        .all()
        .iter()
        .filter(|s| s.cache_evictions > 0)
        .map(|s| (s.query.to_string(), s.cache_evictions))
        .collect();
    assert_eq!(
        per_statement.iter().map(|(_, n)| n).sum::<u64>(),
        3,
        "{per_statement:?}"
    );
    let live = conn
        .query_one("SELECT count(*) FROM pg_prepared_statements", &[])
        .await
        .expect("count")
        .get::<_, i64>(0);
    assert!(
        live <= 3,
        "evicted statements are closed on the server ({live} live)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_query_survives_a_column_type_change() {
    let (_db, pool) = common::shared_pool(1).await;
    let conn = pool.get().await.expect("get");
    conn.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 10)")
        .await
        .expect("setup");
    let q = "SELECT * FROM t WHERE id = $1";
    assert_eq!(
        conn.query_one(q, &[&1i32])
            .await
            .expect("q")
            .get::<_, i32>(1),
        10
    );
    conn.batch_execute("ALTER TABLE t ALTER COLUMN v TYPE text")
        .await
        .expect("ddl");
    let row = conn
        .query_one(q, &[&1i32])
        .await
        .expect("the cached query still succeeds");
    assert_eq!(row.get::<_, String>(1), "10");
    assert_eq!(pool.pg_stats().stmt_reprepared(), 1);
    let st = pool.statement_stats().get(q).expect("tracked");
    assert_eq!(
        (st.calls, st.prepares, st.reprepares),
        (2, 2, 1),
        "per statement: {st:?}"
    );
    let row = conn
        .query_one(q, &[&1i32])
        .await
        .expect("and keeps working");
    assert_eq!(row.get::<_, String>(1), "10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_a_retrying_transaction_a_stale_plan_is_retried() {
    let (_db, pool) = common::shared_pool(1).await;
    let mut conn = pool.get().await.expect("get");
    conn.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 10)")
        .await
        .expect("setup");
    let q = "SELECT * FROM t WHERE id = $1";
    conn.query_one(q, &[&1i32]).await.expect("cache it");
    conn.batch_execute("ALTER TABLE t ALTER COLUMN v TYPE bigint")
        .await
        .expect("ddl");
    let v: i64 = conn
        .transaction_with_retry(&TxOptions::new(), |tx| {
            Box::pin(async move { Ok(tx.query_one(q, &[&1i32]).await?.get(1)) })
        })
        .await
        .expect("retried after the stale plan");
    assert_eq!(v, 10);
    assert_eq!(pool.pg_stats().tx_retried(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_cache_off_queries_still_work() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let pool = common::builder(common::config(server, &db), 1)
        .statement_cache(0)
        .build()
        .await
        .expect("pool");
    let conn = pool.get().await.expect("get");
    for _ in 0..3 {
        conn.query_one("SELECT $1::text", &[&"x"]).await.expect("q");
    }
    assert_eq!(conn.cached_statements(), 0);
    assert_eq!(pool.pg_stats().stmt_hits(), 0);
}

//! The SQLite result cache: hits, a write through the pool invalidating
//! before it returns, single flight, TTL, and typed refusals.

use std::time::Duration;

use lido_sqlite::rusqlite::types::Value;
use lido_sqlite::{Builder, CacheConfig, Error, SqlitePool};

async fn pool() -> SqlitePool {
    Builder::memory_unique()
        .readers(2)
        .result_cache(CacheConfig::default())
        .on_startup(|c| c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO t VALUES (1, 'old')"))
        .build()
        .await
        .expect("build")
}

async fn name(db: &SqlitePool) -> Value {
    let rows = db
        .cached()
        .query("SELECT name FROM t WHERE id = ?1", &[Value::Integer(1)])
        .await
        .expect("cached read");
    rows[0][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_and_a_write_through_the_pool_invalidates_before_it_returns() {
    let db = pool().await;
    assert_eq!(name(&db).await, Value::Text("old".into()));
    assert_eq!(name(&db).await, Value::Text("old".into()));
    for round in 0..20 {
        let new = format!("v{round}");
        let set = new.clone();
        db.write(move |c| c.execute("UPDATE t SET name = ?1 WHERE id = 1", [set]))
            .await
            .expect("write");
        assert_eq!(name(&db).await, Value::Text(new), "round {round}");
    }
    let s = db.cache_stats().await.expect("cache");
    assert_eq!((s.hits, s.misses, s.invalidated), (1, 21, 20), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_misses_run_one_statement() {
    let db = pool().await;
    let slow = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 300000) SELECT count(*) FROM n";
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.cached().query(slow, &[]).await })
        })
        .collect();
    for t in tasks {
        let rows = t.await.expect("join").expect("read");
        assert_eq!(rows[0][0], Value::Integer(300_000));
    }
    let s = db.cache_stats().await.expect("cache");
    assert_eq!(s.misses, 1, "{s:?}");
    assert_eq!(s.joins + s.hits, 11, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_expire_after_their_ttl() {
    let db = pool().await;
    let q = "SELECT count(*) FROM t";
    let ttl = Duration::from_millis(500);
    db.cached().ttl(ttl).query(q, &[]).await.expect("miss");
    db.cached().ttl(ttl).query(q, &[]).await.expect("hit");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    db.cached()
        .ttl(ttl)
        .query(q, &[])
        .await
        .expect("miss again");
    let s = db.cache_stats().await.expect("cache");
    assert_eq!((s.hits, s.misses), (1, 2), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_that_cannot_be_cached_say_why() {
    let db = pool().await;
    let err = db
        .cached()
        .query("INSERT INTO t(name) VALUES ('x') RETURNING id", &[])
        .await
        .expect_err("a write");
    assert!(
        matches!(&err, Error::NotCacheable { reason } if reason.contains("read-only")),
        "{err}"
    );
    let err = db
        .cached()
        .query("SELECT abs(random()) FROM t", &[])
        .await
        .expect_err("volatile");
    assert!(err.to_string().contains("random()"), "{err}");
    let rows: i64 = db
        .read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
        .await
        .expect("read");
    assert_eq!(rows, 1, "the refused INSERT did not run");
    let plain = Builder::memory_unique().build().await.expect("build");
    let err = plain
        .cached()
        .query("SELECT 1", &[])
        .await
        .expect_err("no cache");
    assert!(err.to_string().contains("result_cache"), "{err}");
}

//! The result cache against a real server: hits, single flight, writes
//! through the pool (plain and in a transaction) invalidate, TTL, the size
//! bound, and typed refusals that say why a statement cannot be cached.

use std::time::Duration;

use lido_core::{Classes, QueryClass};
use lido_postgres::{PgError, PgPool, ResultCacheConfig};
use lido_testkit::PgServer;

use crate::common;

/// A pool with a result cache and a class that caches, on a fresh
/// database with `items` (5 rows).
async fn pool(config: ResultCacheConfig) -> PgPool {
    let cached = QueryClass::new("cached").cache_ttl(Some(Duration::from_secs(60)));
    crate::statement_stats::pool_with_items(|b| {
        b.result_cache(config)
            .classes(Classes::default().with(cached))
    })
    .await
}

pub(crate) async fn name(pool: &PgPool, id: i32) -> String {
    let rows = pool
        .cached()
        .query("SELECT name FROM items WHERE id = $1", &[&id])
        .await
        .expect("cached read");
    rows[0].get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_and_writes_through_the_pool_invalidate() {
    let pool = pool(ResultCacheConfig::default()).await;
    assert_eq!(name(&pool, 1).await, "item 1");
    assert_eq!(name(&pool, 1).await, "item 1");
    assert_eq!(
        name(&pool, 2).await,
        "item 2",
        "another parameter, another entry"
    );
    let s = pool.cache_stats().await.expect("cache");
    assert_eq!((s.hits, s.misses, s.entries), (1, 2, 2), "{s:?}");

    let conn = pool.get().await.expect("get");
    conn.execute("UPDATE items SET name = 'renamed' WHERE id = 1", &[])
        .await
        .expect("write");
    drop(conn);
    assert_eq!(
        name(&pool, 1).await,
        "renamed",
        "never the old row after a write"
    );

    let mut conn = pool.get().await.expect("get");
    let tx = conn.transaction().await.expect("begin");
    tx.execute("UPDATE items SET name = 'in tx' WHERE id = 2", &[])
        .await
        .expect("write");
    tx.commit().await.expect("commit");
    drop(conn);
    assert_eq!(
        name(&pool, 2).await,
        "in tx",
        "a committed transaction invalidates"
    );
    let s = pool.cache_stats().await.expect("cache");
    assert!(s.invalidated >= 2, "{s:?}");
    let metrics = lido_http::Metrics::builder()
        .pool("shop", pool.clone())
        .build()
        .expect("metrics");
    let text = metrics.encode().expect("encodes");
    let hit = format!(
        "lido_pg_cache_events_total{{pool=\"shop\",event=\"hit\"}} {}",
        s.hits
    );
    assert!(text.contains(&hit), "{hit} missing:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_misses_run_one_query() {
    let pool = pool(ResultCacheConfig::default()).await;
    let sql = "SELECT count(*) FROM generate_series(1, 2000000)";
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let rows = pool.cached().query(sql, &[]).await.expect("read");
            rows[0].get::<_, i64>(0)
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("join"), 2_000_000);
    }
    let s = pool.cache_stats().await.expect("cache");
    assert_eq!(s.misses, 1, "one query for twelve callers: {s:?}");
    assert_eq!(s.joins + s.hits, 11, "{s:?}");
    assert_eq!(pool.statement_stats().get(sql).map(|st| st.calls), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_size_bound_and_class_ttl() {
    let config = ResultCacheConfig {
        max_entry_bytes: 200,
        ..ResultCacheConfig::default()
    };
    let pool = pool(config).await;
    let short = || pool.cached().ttl(Duration::from_millis(200));
    short()
        .query("SELECT name FROM items WHERE id = $1", &[&3i32])
        .await
        .expect("read");
    tokio::time::sleep(Duration::from_millis(500)).await;
    short()
        .query("SELECT name FROM items WHERE id = $1", &[&3i32])
        .await
        .expect("read");
    let s = pool.cache_stats().await.expect("cache");
    assert_eq!((s.hits, s.misses), (0, 2), "expired after its TTL: {s:?}");

    let big = "SELECT repeat('x', 1000) FROM generate_series(1, 3)";
    let rows = pool.cached().query(big, &[]).await.expect("read");
    assert_eq!(rows.len(), 3, "returned even when too large to keep");
    pool.cached().query(big, &[]).await.expect("read");
    let s = pool.cache_stats().await.expect("cache");
    assert_eq!(s.too_large, 2, "not kept: {s:?}");

    let class = pool.class("cached").expect("class");
    class
        .cached()
        .query("SELECT 1 FROM items", &[])
        .await
        .expect("read");
    class
        .cached()
        .query("SELECT 1 FROM items", &[])
        .await
        .expect("read");
    let s = pool.cache_stats().await.expect("cache");
    assert_eq!(s.hits, 1, "the class's TTL keeps it: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_that_cannot_be_cached_say_why() {
    let pool = pool(ResultCacheConfig::default()).await;
    for (sql, why) in [
        ("UPDATE items SET name = 'x'", "only reads"),
        ("SELECT now(), name FROM items", "now"),
        ("SELECT name FROM items FOR UPDATE", "FOR UPDATE"),
    ] {
        let err = pool.cached().query(sql, &[]).await.expect_err(sql);
        assert!(matches!(err, PgError::NotCacheable { .. }), "{err:?}");
        assert!(err.to_string().contains(why), "{sql}: {err}");
    }
    let server = PgServer::shared();
    let plain = common::builder(common::config(server, "postgres"), 1)
        .build_lazy()
        .expect("pool");
    let err = plain
        .cached()
        .query("SELECT 1", &[])
        .await
        .expect_err("no cache");
    assert!(err.to_string().contains("result_cache"), "{err}");
    assert!(plain.cache_stats().await.is_none());
}

/// A server with `wal_level = logical`, and on it what [`items_pool`] makes.
pub(crate) async fn logical_items() -> (PgServer, String, PgPool) {
    let server = PgServer::builder()
        .setting("wal_level", "logical")
        .setting("synchronous_commit", "on")
        .start()
        .expect("logical server");
    let (db, pool) = items_pool(&server).await;
    (server, db, pool)
}

/// A fresh database on `server` with `items` (1, 'old') and a pool on it
/// with a result cache (10 minute TTL).
pub(crate) async fn items_pool(server: &PgServer) -> (String, PgPool) {
    let db = server.create_database().expect("db");
    let pool = common::builder(common::config(server, &db), 2)
        .result_cache(ResultCacheConfig {
            default_ttl: Duration::from_secs(600),
            // A loaded machine may delay the feed: never bypass for that
            // here (a bypass is correct, but these tests count hits).
            position_wait: Duration::from_secs(10),
            ..ResultCacheConfig::default()
        })
        .build()
        .await
        .expect("pool");
    pool.get()
        .await
        .expect("get")
        .batch_execute("CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'old')")
        .await
        .expect("setup");
    (db, pool)
}

/// Writes that bypass the pool reach the cache through the WAL feed (a
/// temporary logical slot), within a bound a TTL alone could not give.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_feed_sees_writes_that_bypass_the_pool() {
    use lido_postgres::{FeedConfig, FeedError};
    let (server, db, pool) = logical_items().await;
    let feed = pool
        .watch_outside_writes(FeedConfig::default())
        .await
        .expect("feed");
    assert!(feed.is_active());
    assert_eq!(name(&pool, 1).await, "old");
    assert_eq!(name(&pool, 1).await, "old", "cached");

    // Another client, not through this pool.
    let outside = common::builder(common::config(&server, &db), 1)
        .build()
        .await
        .expect("outside pool");
    outside
        .get()
        .await
        .expect("get")
        .execute("UPDATE items SET name = 'new' WHERE id = 1", &[])
        .await
        .expect("outside write");
    let committed = std::time::Instant::now();
    let mut seen = None;
    for _ in 0..400 {
        if name(&pool, 1).await == "new" {
            seen = Some(committed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seen = seen.expect("the outside write reached the cache");
    println!("outside write seen by the cache after {seen:?}");
    assert!(seen < Duration::from_secs(2), "{seen:?}");
    assert!(feed.changes() >= 1);

    let plain = common::builder(common::config(&server, &db), 1)
        .build_lazy()
        .expect("pool");
    let err = plain
        .watch_outside_writes(FeedConfig::default())
        .await
        .expect_err("no cache");
    assert!(matches!(err, FeedError::NoCache), "{err}");
    feed.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_feed_says_which_setting_to_change() {
    use lido_postgres::{FeedConfig, FeedError};
    let pool = pool(ResultCacheConfig::default()).await;
    let err = pool
        .watch_outside_writes(FeedConfig::default())
        .await
        .expect_err("wal_level = replica");
    assert!(matches!(err, FeedError::WalLevel { .. }), "{err:?}");
    assert!(err.to_string().contains("wal_level = logical"), "{err}");
}

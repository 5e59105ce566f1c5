//! Read-your-writes for the result cache across pools: a write token
//! ([`PgPool::wal_position`]) or `fresh()` makes a cached read wait for the
//! outside-writes feed to apply every commit up to the position, so a
//! write made elsewhere is never missed; with no feed the server answers.

use std::time::Duration;

use lido_postgres::{FeedConfig, PgPool};

use crate::common;
use crate::result_cache::{items_pool, logical_items, name};

async fn read(q: lido_postgres::CachedQuery<'_>) -> String {
    let rows = q
        .query("SELECT name FROM items WHERE id = $1", &[&1i32])
        .await
        .expect("cached read");
    rows[0].get(0)
}

async fn write(pool: &PgPool, value: &str) {
    pool.get()
        .await
        .expect("get")
        .execute("UPDATE items SET name = $1 WHERE id = 1", &[&value])
        .await
        .expect("outside write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_or_fresh_never_misses_an_outside_commit() {
    let (server, db, pool) = logical_items().await;
    // A slow feed: only a reader's wish makes it read early.
    let feed = pool
        .watch_outside_writes(FeedConfig {
            poll: Duration::from_secs(30),
            ..FeedConfig::default()
        })
        .await
        .expect("feed");
    let outside = common::builder(common::config(&server, &db), 1)
        .build()
        .await
        .expect("outside pool");
    assert_eq!(name(&pool, 1).await, "old");
    for round in 0..20 {
        let value = format!("v{round}");
        write(&outside, &value).await;
        if round % 2 == 0 {
            let token = outside.wal_position().await.expect("token");
            assert_eq!(read(pool.cached().after(token)).await, value);
        } else {
            assert_eq!(read(pool.cached().fresh()).await, value);
        }
        // Without a position the stale entry may still be served; with
        // one it never is, and the next reads hit again.
        assert_eq!(read(pool.cached().fresh()).await, value);
    }
    let stats = pool.cache_stats().await.expect("cache");
    assert_eq!(stats.bypassed, 0, "{stats:?}");
    assert!(stats.hits >= 20, "{stats:?}");
    assert!(stats.invalidated >= 20, "{stats:?}");
    feed.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_feed_a_positioned_read_goes_to_the_server() {
    let (server, db, pool) = logical_items().await;
    let outside = common::builder(common::config(&server, &db), 1)
        .build()
        .await
        .expect("outside pool");
    assert_eq!(name(&pool, 1).await, "old");
    write(&outside, "new").await;
    assert_eq!(name(&pool, 1).await, "old", "no feed: the TTL rules");
    let token = outside.wal_position().await.expect("token");
    assert_eq!(read(pool.cached().after(token)).await, "new");
    let stats = pool.cache_stats().await.expect("cache");
    assert_eq!(stats.bypassed, 1, "{stats:?}");
}

/// Where logical decoding is off: triggers notify, the feed listens, and
/// positions still hold (the feed's own notification marks them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trigger_feed_works_without_logical_decoding() {
    use lido_postgres::{NotifyFeedConfig, DEFAULT_NOTIFY_CHANNEL};
    let server = lido_testkit::PgServer::shared();
    let (db, pool) = items_pool(server).await;
    pool.install_write_triggers(DEFAULT_NOTIFY_CHANNEL, &["items"])
        .await
        .expect("triggers");
    let feed = pool
        .watch_outside_writes_notify(NotifyFeedConfig::default())
        .await
        .expect("feed");
    let outside = common::builder(common::config(server, &db), 1)
        .build()
        .await
        .expect("outside pool");
    assert_eq!(name(&pool, 1).await, "old");
    // Seen without a position, soon after the commit.
    write(&outside, "new").await;
    let mut seen = false;
    for _ in 0..400 {
        if name(&pool, 1).await == "new" {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(seen, "the notification reached the cache");
    // With a position: never missed.
    for round in 0..10 {
        let value = format!("v{round}");
        write(&outside, &value).await;
        assert_eq!(read(pool.cached().fresh()).await, value);
        assert_eq!(read(pool.cached().fresh()).await, value);
    }
    let stats = pool.cache_stats().await.expect("cache");
    assert_eq!(stats.bypassed, 0, "{stats:?}");
    assert!(stats.hits >= 10, "{stats:?}");
    assert!(feed.changes() >= 11, "{}", feed.changes());
    feed.stop();
}

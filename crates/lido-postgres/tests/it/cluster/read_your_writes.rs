//! Write, then read, through the cluster: never a stale read, replicas
//! serving whenever they have replayed the write.

use std::time::Duration;

use lido_postgres::cluster::{ClusterSession, PgCluster};

use super::{cluster, replica_set};

/// Rounds of write-then-read, spread over this many callers, each with its
/// own key and session.
const CALLERS: i32 = 8;
const ROUNDS: i32 = 10_000;

/// Runs the rounds; returns the stale reads seen.
async fn write_then_read(cluster: &PgCluster) -> usize {
    let mut tasks = Vec::new();
    for k in 0..CALLERS {
        let cluster = cluster.clone();
        tasks.push(tokio::spawn(async move {
            let session = ClusterSession::new();
            let mut stale = 0;
            cluster
                .execute_for(
                    &session,
                    "INSERT INTO kv VALUES ($1, 0) ON CONFLICT (k) DO UPDATE SET v = 0",
                    &[&k],
                )
                .await
                .expect("insert");
            for v in 1..=ROUNDS / CALLERS {
                cluster
                    .execute_for(&session, "UPDATE kv SET v = $2 WHERE k = $1", &[&k, &v])
                    .await
                    .expect("write");
                let rows = cluster
                    .query_for(&session, "SELECT v FROM kv WHERE k = $1", &[&k])
                    .await
                    .expect("read");
                let seen: i32 = rows.first().map_or(-1, |r| r.get(0));
                if seen != v {
                    stale += 1;
                }
            }
            stale
        }));
    }
    let mut stale = 0;
    for t in tasks {
        stale += t.await.expect("caller");
    }
    stale
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_read_with_lagging_replicas_and_replicas_serve_when_caught_up() {
    let (set, db) = replica_set(2);
    let cluster = cluster(&set, &db).build().await.expect("build");

    // Caught up: replicas serve nearly every read.
    let stale = write_then_read(&cluster).await;
    let stats = cluster.stats();
    let on_replicas = stats.replica_reads();
    let reads = on_replicas + stats.fallback_reads();
    eprintln!(
        "no lag: {reads} reads, {on_replicas} on replicas ({:.1} %), {} after waiting for replay, {stale} stale",
        100.0 * on_replicas as f64 / reads as f64,
        stats.read_your_writes_waits()
    );
    assert_eq!(stale, 0);
    assert!(
        on_replicas as f64 >= 0.9 * reads as f64,
        "only {on_replicas} of {reads} reads on replicas"
    );

    // Replicas 100 ms and 500 ms behind: the reads go where the write is.
    set.set_apply_delay(0, Duration::from_millis(100))
        .expect("the call succeeds");
    set.set_apply_delay(1, Duration::from_millis(500))
        .expect("the call succeeds");
    let before = (stats.replica_reads(), stats.fallback_reads());
    let stale = write_then_read(&cluster).await;
    eprintln!(
        "lag 100/500 ms: {} reads on replicas, {} on the primary, {stale} stale",
        stats.replica_reads() - before.0,
        stats.fallback_reads() - before.1
    );
    assert_eq!(stale, 0, "a read missed its own write");
    assert!(stats.read_your_writes_fallbacks() > 0);
    cluster.close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_carries_the_position_to_another_cluster_handle() {
    let (set, db) = replica_set(1);
    // 2 s behind, but within a 10 s lag limit: still in rotation.
    set.set_apply_delay(0, Duration::from_secs(2))
        .expect("the call succeeds");
    let writer = cluster(&set, &db)
        .max_lag(Duration::from_secs(10))
        .build()
        .await
        .expect("build");
    let session = writer.session();
    writer
        .execute_for(&session, "INSERT INTO kv VALUES (1, 42)", &[])
        .await
        .expect("the call succeeds");
    let token = writer
        .token(&session)
        .await
        .expect("a position")
        .to_string();

    // Another process (here: another handle) restores the token.
    let reader = cluster(&set, &db)
        .max_lag(Duration::from_secs(10))
        .build()
        .await
        .expect("build");
    let restored = ClusterSession::after(token.parse().expect("the call succeeds"));
    let rows = reader
        .query_for(&restored, "SELECT v FROM kv WHERE k = 1", &[])
        .await
        .expect("the call succeeds");
    assert_eq!(rows.len(), 1, "the restored session sees the write");
    assert_eq!(rows[0].get::<_, i32>(0), 42);
    // Without the token, the lagging replica answers (and misses it).
    let conn = reader.read_any().await.expect("the call succeeds");
    let n: i64 = conn
        .query_one("SELECT count(*) FROM kv", &[])
        .await
        .expect("the call succeeds")
        .get(0);
    assert_eq!(n, 0, "read_any() read the lagging replica");
    drop(conn);
    // A write lease dropped without finish(): reads wait for the monitor.
    let conn = writer.write_for(&session).await.expect("the call succeeds");
    conn.execute("UPDATE kv SET v = 43 WHERE k = 1", &[])
        .await
        .expect("the call succeeds");
    drop(conn);
    assert_eq!(
        session.token(),
        None,
        "position unknown until the monitor samples"
    );
    let rows = writer
        .query_for(&session, "SELECT v FROM kv WHERE k = 1", &[])
        .await
        .expect("the call succeeds");
    assert_eq!(rows[0].get::<_, i32>(0), 43);
    assert!(writer.token(&session).await.is_some());
}

//! Promotion of a replica: the new primary takes writes within about a
//! monitor round; no write goes to a node in recovery; no caller hangs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_postgres::cluster::{ClusterError, PgCluster, Role};
use lido_postgres::tokio_postgres;
use tokio::time::Instant;

use super::{cluster, node, replica_set, wait_for};

/// What the writer saw.
#[derive(Debug, Default)]
struct Seen {
    /// Acknowledged values, with ms since t0.
    acked: Vec<(u64, i32)>,
    failed: u64,
    hung: u64,
    read_only: u64,
}

/// Writes in a loop, each bounded by 5 s.
fn writer(
    cluster: PgCluster,
    stop: Arc<AtomicBool>,
    last_ok: Arc<AtomicU64>,
    t0: Instant,
) -> tokio::task::JoinHandle<Seen> {
    tokio::spawn(async move {
        let mut seen = Seen::default();
        let mut v = 0i32;
        while !stop.load(Ordering::Relaxed) {
            v += 1;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&v];
            let call = cluster.execute("INSERT INTO kv VALUES ($1, $1)", &params);
            match tokio::time::timeout(Duration::from_secs(5), call).await {
                Ok(Ok(_)) => {
                    let at = t0.elapsed().as_millis() as u64;
                    seen.acked.push((at, v));
                    last_ok.store(at, Ordering::Relaxed);
                }
                Ok(Err(e)) => {
                    seen.failed += 1;
                    let code = e.pg_error().and_then(|p| p.code());
                    if code.is_some_and(|c| c.code() == "25006") {
                        seen.read_only += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(_) => seen.hung += 1,
            }
        }
        seen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_replica_takes_the_writes() {
    let (set, db) = replica_set(1);
    let cluster = cluster(&set, &db).build().await.expect("build");
    let (old, new) = (set.primary().port(), set.replica(0).port());
    assert_eq!(node(&cluster, old).role, Role::Primary);

    let stop = Arc::new(AtomicBool::new(false));
    let last_ok = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let task = writer(cluster.clone(), Arc::clone(&stop), Arc::clone(&last_ok), t0);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Promote while the old primary still runs, then stop the old one.
    tokio::task::block_in_place(|| set.promote(0)).expect("the call succeeds");
    let promoted = Instant::now();
    let moved = wait_for(&cluster, Duration::from_secs(10), |c| {
        c.primary_address()
            .is_some_and(|a| a.ends_with(&format!(":{new}")))
    })
    .await;
    let moved_at = t0.elapsed().as_millis() as u64;
    eprintln!("write target moved {moved:?} after the promotion returned");
    assert!(
        moved.is_some_and(|d| d < Duration::from_secs(3)),
        "{moved:?}"
    );
    tokio::task::block_in_place(|| set.primary().stop()).expect("the call succeeds");
    let stopped = t0.elapsed().as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = task.await.expect("the call succeeds");
    eprintln!(
        "writes: {} ok, {} failed, {} hung, {} read-only; promoted {:?} ago",
        seen.acked.len(),
        seen.failed,
        seen.hung,
        seen.read_only,
        promoted.elapsed()
    );
    assert_eq!(seen.hung, 0, "a caller waited past 5 s");
    assert_eq!(seen.read_only, 0, "a write reached a node in recovery");
    assert!(
        last_ok.load(Ordering::Relaxed) > stopped,
        "writes went on after the old primary stopped"
    );
    assert_eq!(cluster.stats().read_only_retries(), 0);
    assert!(cluster.stats().primary_changes() >= 1);
    // Every write acknowledged after the move is on the new primary (the
    // old one diverged at the promotion: what it took in between is lost,
    // as with any asynchronous failover).
    let after: Vec<i32> = seen
        .acked
        .iter()
        .filter(|(at, _)| *at > moved_at)
        .map(|(_, v)| *v)
        .collect();
    assert!(!after.is_empty());
    let sql = format!(
        "SELECT count(*) FROM kv WHERE k IN ({});",
        after
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    );
    let n: usize = set
        .replica(0)
        .psql(&db, &sql)
        .expect("the call succeeds")
        .trim()
        .parse()
        .expect("the call succeeds");
    assert_eq!(
        n,
        after.len(),
        "acknowledged writes missing on the new primary"
    );
    assert_eq!(node(&cluster, new).role, Role::Primary);
    cluster.close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_meets_a_read_only_node_is_rechecked_and_not_retried_blindly() {
    let (set, db) = replica_set(1);
    let cluster = cluster(&set, &db)
        .primary_wait(Duration::from_millis(500))
        .build()
        .await
        .expect("build");
    // The primary refuses writes while still out of recovery: the monitor
    // keeps it the write target, so the cluster must not retry forever.
    set.primary()
        .psql(
            "postgres",
            &format!("ALTER DATABASE {db} SET default_transaction_read_only = on;"),
        )
        .expect("the call succeeds");
    cluster
        .pools()
        .for_each(|(_, p)| p.core().retain(|_, _| false));
    let t = Instant::now();
    let err = cluster
        .execute("INSERT INTO kv VALUES (1, 1)", &[])
        .await
        .expect_err("the call fails");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, ClusterError::Query { .. }), "{err}");
    assert_eq!(
        err.pg_error().and_then(|e| e.code()).map(|c| c.code()),
        Some("25006"),
        "{err}"
    );
    assert_eq!(cluster.stats().read_only_retries(), 1, "re-checked once");
    assert!(
        cluster.primary_address().is_some(),
        "the monitor found it again"
    );
}

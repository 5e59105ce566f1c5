//! No replica qualifies: each `Fallback` policy does what it says, never a
//! silent "take every replica back".

use std::time::Duration;

use lido_postgres::cluster::{ClusterError, Fallback, Served};

use super::{cluster, node, replica_set, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_policy_behaves_as_documented_when_the_replica_is_down() {
    let (set, db) = replica_set(1);
    let port = set.replica(0).port();
    let primary = cluster(&set, &db)
        .fallback(Fallback::Primary {
            max_in_flight: Some(1),
        })
        .node_pool(|b| {
            b.pool_config(lido_core::Config {
                max_size: 4,
                acquire_timeout: Duration::from_millis(300),
                leak_threshold: None,
                ..Default::default()
            })
        })
        .build()
        .await
        .expect("the call succeeds");
    let fail = cluster(&set, &db)
        .fallback(Fallback::Fail)
        .build()
        .await
        .expect("the call succeeds");
    set.replica(0).stop().expect("the call succeeds");
    for c in [&primary, &fail] {
        assert!(
            wait_for(c, Duration::from_secs(10), |c| !node(c, port).in_rotation)
                .await
                .is_some()
        );
    }

    // Primary: the read runs on the primary, at most one such read at once.
    let held = primary.read_any().await.expect("the call succeeds");
    assert_eq!(held.served(), Served::Fallback);
    let in_recovery: bool = held
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .expect("the call succeeds")
        .get(0);
    assert!(!in_recovery);
    let second = primary.read_any().await.expect_err("the call fails");
    assert!(
        matches!(second, ClusterError::FallbackFull { cap: 1, .. }),
        "{second}"
    );
    assert!(
        second.to_string().contains("probe failed"),
        "names the replica's state: {second}"
    );
    drop(held);
    assert_eq!(
        primary
            .read_any()
            .await
            .expect("the call succeeds")
            .served(),
        Served::Fallback
    );

    // Fail: an error naming each replica and why.
    let err = fail.read_any().await.expect_err("the call fails");
    let ClusterError::NoReplica { replicas } = &err else {
        panic!("{err}")
    };
    assert_eq!(replicas.0.len(), 1);
    assert!(replicas.0[0].address.ends_with(&format!(":{port}")));
    assert!(err.to_string().contains("probe failed"), "{err}");
    assert_eq!(fail.stats().refused_reads(), 1);
    // Writes still work: the cluster is ready while its primary is.
    fail.execute("INSERT INTO kv VALUES (1, 1)", &[])
        .await
        .expect("the call succeeds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_reads_only_within_the_stated_bound() {
    let (set, db) = replica_set(1);
    let port = set.replica(0).port();
    let build = |bound| {
        cluster(&set, &db)
            .max_lag(Duration::from_millis(200))
            .fallback(Fallback::Stale { max_lag: bound })
            .build()
    };
    let lenient = build(Duration::from_secs(30))
        .await
        .expect("the call succeeds");
    let strict = build(Duration::from_millis(100))
        .await
        .expect("the call succeeds");
    set.set_apply_delay(0, Duration::from_secs(3))
        .expect("the call succeeds");
    lenient
        .execute("INSERT INTO kv VALUES (1, 1)", &[])
        .await
        .expect("the call succeeds");
    // Keep WAL flowing so the lag shows.
    for v in 2..40 {
        lenient
            .execute("INSERT INTO kv VALUES ($1, $1)", &[&v])
            .await
            .expect("the call succeeds");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for c in [&lenient, &strict] {
        let out = wait_for(c, Duration::from_secs(10), |c| !node(c, port).in_rotation).await;
        assert!(out.is_some(), "{:?}", node(c, port));
    }
    let conn = lenient.read_any().await.expect("the call succeeds");
    assert_eq!(conn.served(), Served::Stale);
    let in_recovery: bool = conn
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .expect("the call succeeds")
        .get(0);
    assert!(in_recovery, "served by the lagging replica");
    drop(conn);
    let err = strict.read_any().await.expect_err("the call fails");
    assert!(matches!(err, ClusterError::NoReplica { .. }), "{err}");
    assert!(err.to_string().contains("lags"), "{err}");
    // Read-your-writes is never traded for staleness: the primary serves it.
    let conn = lenient.read().await.expect("the call succeeds");
    assert_eq!(conn.served(), Served::Fallback);
}

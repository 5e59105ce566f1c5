//! Lag past the threshold takes a replica out of the read rotation;
//! catching up brings it back after the hold-down, once (no flapping).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{cluster, node, replica_set, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_takes_a_replica_out_and_catching_up_brings_it_back() {
    let (set, db) = replica_set(1);
    let cluster = cluster(&set, &db)
        .max_lag(Duration::from_millis(300))
        .hold_down(Duration::from_millis(500))
        .build()
        .await
        .expect("build");
    let port = set.replica(0).port();
    assert!(node(&cluster, port).in_rotation);

    // A steady trickle of writes, so that delayed replay shows as lag.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (cluster, stop) = (cluster.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut v = 0i32;
            while !stop.load(Ordering::Relaxed) {
                v += 1;
                cluster
                    .execute(
                        "INSERT INTO kv VALUES (1, $1) ON CONFLICT (k) DO UPDATE SET v = $1",
                        &[&v],
                    )
                    .await
                    .expect("write");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    set.set_apply_delay(0, Duration::from_secs(2))
        .expect("the call succeeds");
    let out = wait_for(&cluster, Duration::from_secs(15), |c| {
        !node(c, port).in_rotation
    })
    .await;
    let report = node(&cluster, port);
    eprintln!("out of rotation after {out:?}: {report:?}");
    assert!(
        out.is_some(),
        "a replica 2 s behind stayed in rotation: {report:?}"
    );
    let reason = report.reason.unwrap_or_default();
    assert!(
        reason.contains("lags") && reason.contains("max 300 ms"),
        "{reason}"
    );
    // Out of rotation, reads go to the primary (the default fallback).
    let conn = cluster.read_any().await.expect("the call succeeds");
    assert_eq!(conn.served(), lido_postgres::cluster::Served::Fallback);
    drop(conn);

    set.set_apply_delay(0, Duration::ZERO)
        .expect("the call succeeds");
    let back = wait_for(&cluster, Duration::from_secs(15), |c| {
        node(c, port).in_rotation
    })
    .await;
    eprintln!("back in rotation after {back:?}");
    assert!(
        back.is_some(),
        "caught up but never back: {:?}",
        node(&cluster, port)
    );
    // Stays in for a while: the trickle of writes does not make it flap.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.expect("the call succeeds");
    assert!(node(&cluster, port).in_rotation);
    assert_eq!(cluster.stats().replicas_removed(), 1, "left once");
    assert_eq!(cluster.stats().replicas_restored(), 1, "came back once");
    cluster.close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_leaves_and_returns() {
    let (set, db) = replica_set(1);
    let cluster = cluster(&set, &db)
        .hold_down(Duration::from_millis(200))
        .build()
        .await
        .expect("build");
    let port = set.replica(0).port();
    set.replica(0).stop().expect("the call succeeds");
    let out = wait_for(&cluster, Duration::from_secs(10), |c| {
        !node(c, port).in_rotation
    })
    .await;
    assert!(out.is_some());
    let report = node(&cluster, port);
    assert!(!report.up);
    assert!(report.reason.unwrap_or_default().contains("probe failed"));
    set.replica(0).start_again().expect("the call succeeds");
    let back = wait_for(&cluster, Duration::from_secs(20), |c| {
        node(c, port).in_rotation
    })
    .await;
    assert!(back.is_some(), "{:?}", node(&cluster, port));
    let conn = cluster.read_any().await.expect("the call succeeds");
    assert_eq!(conn.served(), lido_postgres::cluster::Served::Replica);
}

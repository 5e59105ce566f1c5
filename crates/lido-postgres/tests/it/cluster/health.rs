//! The cluster in lido-http: ready while its primary is, `cluster:replicas`
//! warns (naming the replica) while one is out, lag and routing exported.

use std::time::Duration;

use lido_http::{HealthMonitor, Metrics, Status};
use tokio::time::Instant;

use super::{cluster, replica_set};

/// Refreshes until `cond` holds (panics after 30 s).
async fn until(monitor: &HealthMonitor, cond: impl Fn(&lido_http::HealthReport) -> bool) {
    let t0 = Instant::now();
    loop {
        let report = monitor.refresh().await;
        if cond(&report) {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "never: {report:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_with_the_primary_degraded_without_replicas() {
    let (set, db) = replica_set(1);
    let cluster = cluster(&set, &db).build().await.expect("build");
    cluster
        .execute("INSERT INTO kv VALUES (1, 1)", &[])
        .await
        .expect("write");
    cluster.query("SELECT v FROM kv", &[]).await.expect("read");
    let monitor = HealthMonitor::builder()
        .pool("shop", cluster.clone())
        .spawn()
        .expect("monitor");
    until(&monitor, |r| r.status == Status::Pass).await;
    let report = monitor.refresh().await;
    let replicas = report.check("cluster:replicas", "shop").expect("the check");
    assert_eq!(replicas.status, Status::Pass, "{replicas:?}");

    let text = Metrics::for_monitor(&monitor).encode().expect("encode");
    let replica = format!("127.0.0.1:{}", set.replica(0).port());
    for family in [
        "lido_cluster_replica_lag_bytes",
        "lido_cluster_replica_lag_seconds",
        "lido_cluster_node_up",
    ] {
        assert!(
            text.contains(&format!("{family}{{")),
            "{family} missing:\n{text}"
        );
    }
    let in_rotation =
        format!("lido_cluster_replica_in_rotation{{pool=\"shop\",node=\"{replica}\"}} 1");
    assert!(text.contains(&in_rotation), "{text}");
    let writes = "lido_cluster_routing_total{pool=\"shop\",event=\"writes\"} 1";
    assert!(text.contains(writes), "{text}");
    assert!(!text.contains(set.primary().password()));

    set.replica(0).stop().expect("stop replica");
    until(&monitor, |r| r.status == Status::Warn).await;
    let report = monitor.refresh().await;
    let check = report.check("cluster:replicas", "shop").expect("the check");
    let output = check.output.clone();
    assert!(
        output.contains(&replica) && output.contains("probe failed"),
        "{output}"
    );
    assert_eq!(
        monitor.readiness().status,
        Status::Pass,
        "reads fall back: still ready"
    );

    set.replica(0).start_again().expect("start replica");
    set.primary().stop().expect("stop primary");
    until(&monitor, |_| monitor.readiness().status == Status::Fail).await;
}

//! `PgCluster` against real streaming replicas (lido-testkit's
//! `PgReplicaSet`): read-your-writes, lag rotation, failover, fallbacks.

mod conflict;
mod failover;
mod fallback;
mod health;
mod lag;
mod read_your_writes;

use std::time::Duration;

use lido_postgres::cluster::{NodeReport, PgCluster, PgClusterBuilder, Role};
use lido_postgres::PgConfig;
use lido_testkit::PgReplicaSet;

/// A replica set with `replicas` replicas and a fresh database on it
/// (already on every replica), with table `kv (k int primary key, v int)`.
pub fn replica_set(replicas: usize) -> (PgReplicaSet, String) {
    let set = PgReplicaSet::start(replicas).expect("start replica set");
    let db = set.create_database().expect("create database");
    set.primary()
        .psql(&db, "CREATE TABLE kv (k int PRIMARY KEY, v int NOT NULL);")
        .expect("create table");
    set.wait_caught_up(Duration::from_secs(30))
        .expect("caught up");
    (set, db)
}

/// A cluster builder over every node of `set`, with test-friendly pools
/// and a fast monitor.
pub fn cluster(set: &PgReplicaSet, db: &str) -> PgClusterBuilder {
    let config = PgConfig::parse(&set.multi_host_url(db)).expect("testkit URLs parse");
    PgCluster::builder(config)
        .node_pool(|b| {
            b.pool_config(lido_core::Config {
                max_size: 8,
                acquire_timeout: Duration::from_secs(5),
                connect_timeout: Duration::from_secs(2),
                leak_threshold: None,
                ..Default::default()
            })
        })
        .monitor_interval(Duration::from_millis(50))
}

/// The report of the node at `port`.
pub fn node(cluster: &PgCluster, port: u16) -> NodeReport {
    let suffix = format!(":{port}");
    cluster
        .nodes()
        .into_iter()
        .find(|n| n.address.ends_with(&suffix))
        .expect("a node on that port")
}

/// Waits (up to `limit`) for `cond` on the cluster; returns how long it took.
pub async fn wait_for(
    cluster: &PgCluster,
    limit: Duration,
    cond: impl Fn(&PgCluster) -> bool,
) -> Option<Duration> {
    let t0 = tokio::time::Instant::now();
    while t0.elapsed() < limit {
        if cond(cluster) {
            return Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_are_discovered_whatever_the_host_order() {
    let (set, db) = replica_set(1);
    // The replica first in the URL: the monitor still finds the primary.
    let url = format!(
        "postgres://lido:{}@127.0.0.1:{},127.0.0.1:{}/{db}?sslmode=disable",
        set.primary().password(),
        set.replica(0).port(),
        set.primary().port()
    );
    let cluster = PgCluster::builder(PgConfig::parse(&url).expect("the call succeeds"))
        .build()
        .await
        .expect("build");
    let primary = node(&cluster, set.primary().port());
    let replica = node(&cluster, set.replica(0).port());
    assert_eq!(primary.role, Role::Primary);
    assert_eq!(replica.role, Role::Replica);
    assert!(replica.in_rotation, "{replica:?}");
    assert_eq!(cluster.primary_address(), Some(primary.address.as_str()));
    assert!(!format!("{:?}", cluster.nodes()).contains(set.primary().password()));
    let conn = cluster.write().await.expect("the call succeeds");
    let in_recovery: bool = conn
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .expect("the call succeeds")
        .get(0);
    assert!(!in_recovery, "write() leases the primary");
    drop(conn);
    let conn = cluster.read_any().await.expect("the call succeeds");
    let in_recovery: bool = conn
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .expect("the call succeeds")
        .get(0);
    assert!(in_recovery, "read_any() leases a replica in rotation");
    // A read-only transaction on a replica.
    let mut conn = conn;
    let tx = conn
        .begin(&lido_postgres::TxOptions::new().read_only(true))
        .await
        .expect("BEGIN READ ONLY on a replica");
    let n: i64 = tx
        .query_one("SELECT count(*) FROM kv", &[])
        .await
        .expect("read")
        .get(0);
    assert_eq!(n, 0);
    tx.commit().await.expect("commit");
    drop(conn);
    cluster.close(Duration::from_secs(5)).await;
}

//! `PgReplicaSet`: a primary and streaming replicas made by pg_basebackup;
//! replay, an apply delay, promotion, and a replica stopped and started again.

use std::time::{Duration, Instant};

use lido_testkit::{PgReplicaSet, PgServer};
use tokio_postgres::error::SqlState;

use crate::server::connect;

const CATCH_UP: Duration = Duration::from_secs(30);

async fn count(node: &PgServer, db: &str, filter: &str) -> i64 {
    let client = connect(&node.url(db)).await.expect("connect");
    let sql = format!("SELECT count(*) FROM t WHERE {filter}");
    client.query_one(&sql, &[]).await.expect(&sql).get(0)
}

/// Inserts `id` into `t` on `node`, in a session of its own.
async fn insert(node: &PgServer, db: &str, id: i32) -> Result<u64, tokio_postgres::Error> {
    let client = connect(&node.url(db)).await?;
    client.execute("INSERT INTO t VALUES ($1)", &[&id]).await
}

/// Polls `count` on `node` until it is `want`, for at most `within`.
async fn wait_count(node: &PgServer, db: &str, filter: &str, want: i64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = count(node, db, filter).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "port {}: {filter}: {got} rows, want {want}",
            node.port()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_replay_lag_behind_a_delay_and_one_is_promoted() {
    let set = PgReplicaSet::start(2).expect("replica set");
    assert_eq!(set.nodes().len(), 3);
    assert_eq!(set.replicas().len(), 2);
    assert!(!set.primary().is_in_recovery().expect("primary"));
    for replica in set.replicas() {
        assert!(replica.is_in_recovery().expect("replica"));
        assert_eq!(replica.password(), set.primary().password());
    }

    let db = set.create_database().expect("db");
    let primary = connect(&set.primary().url(&db)).await.expect("primary");
    primary
        .batch_execute("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 3);")
        .await
        .expect("create and insert");
    set.wait_caught_up(CATCH_UP).expect("caught up");
    for replica in set.replicas() {
        assert_eq!(
            count(replica, &db, "true").await,
            3,
            "port {}",
            replica.port()
        );
    }
    assert!(!set.replay_lsn(0).expect("replay lsn").is_empty());

    // Replica 0 replays 300 ms late; replica 1 keeps up.
    let delay = Duration::from_millis(300);
    set.set_apply_delay(0, delay).expect("delay");
    let committed = Instant::now();
    insert(set.primary(), &db, 4).await.expect("insert 4");
    let seen = count(set.replica(0), &db, "id = 4").await;
    // Only meaningful while the delay has not passed yet (a slow machine may
    // have taken longer than that to get here).
    if committed.elapsed() < delay {
        assert_eq!(seen, 0, "replica 0 replayed the row before its delay");
    }
    wait_count(set.replica(0), &db, "id = 4", 1, Duration::from_secs(10)).await;
    wait_count(set.replica(1), &db, "id = 4", 1, Duration::from_secs(10)).await;
    set.set_apply_delay(0, Duration::ZERO).expect("no delay");

    set.promote(1).expect("promote");
    assert!(!set.replica(1).is_in_recovery().expect("promoted"));
    insert(set.replica(1), &db, 5)
        .await
        .expect("the promoted replica takes writes");
    let err = insert(set.replica(0), &db, 5)
        .await
        .expect_err("replica 0 is read-only");
    assert_eq!(
        err.code(),
        Some(&SqlState::READ_ONLY_SQL_TRANSACTION),
        "{err}"
    );
    assert!(set.replica(0).is_in_recovery().expect("replica 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_starts_again_and_catches_up() {
    let set = PgReplicaSet::start(1).expect("replica set");
    let url = set.multi_host_url("postgres");
    let want = format!(
        "postgres://lido:{}@127.0.0.1:{},127.0.0.1:{}/postgres?sslmode=disable",
        set.primary().password(),
        set.primary().port(),
        set.replica(0).port()
    );
    assert_eq!(url, want);
    let client = connect(&url).await.expect("multi-host connect");
    let in_recovery: bool = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .expect("query")
        .get(0);
    assert!(!in_recovery, "the first host of the URL is the primary");

    let db = set.create_database().expect("db");
    set.primary()
        .psql(&db, "CREATE TABLE t (id int);")
        .expect("create");
    set.replica(0).stop().expect("stop replica");
    set.primary()
        .psql(&db, "INSERT INTO t SELECT generate_series(1, 10);")
        .expect("insert while the replica is down");
    // A stopped replica is not waited for.
    set.wait_caught_up(CATCH_UP).expect("nothing to wait for");
    set.replica(0).start_again().expect("start replica again");
    assert!(set.replica(0).is_in_recovery().expect("replica"));
    set.wait_caught_up(CATCH_UP)
        .expect("caught up after restart");
    assert_eq!(count(set.replica(0), &db, "true").await, 10);

    let dirs: Vec<_> = set
        .nodes()
        .iter()
        .map(|n| n.socket_dir().to_owned())
        .collect();
    drop(set);
    for dir in dirs {
        assert!(!dir.exists(), "{} removed on drop", dir.display());
    }
}

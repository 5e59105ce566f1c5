//! A read cancelled by a recovery conflict on a replica runs again on
//! another node (here: the primary, the only other one).

use std::time::Duration;

use super::{cluster, replica_set};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_cancelled_by_a_recovery_conflict_runs_again_elsewhere() {
    let (set, db) = replica_set(1);
    // The replica cancels a conflicting query at once instead of delaying replay.
    set.replica(0)
        .psql(
            "postgres",
            "ALTER SYSTEM SET max_standby_streaming_delay = 0;\nSELECT pg_reload_conf();",
        )
        .expect("set delay");
    set.primary()
        .psql(
            &db,
            "CREATE TABLE big AS SELECT g AS id FROM generate_series(1, 10000) g;",
        )
        .expect("table");
    set.wait_caught_up(Duration::from_secs(30))
        .expect("caught up");
    let cluster = cluster(&set, &db).build().await.expect("build");

    // A slow read on the replica holds a snapshot that still sees the rows...
    let reader = {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            cluster
                .query("SELECT count(*) FROM big, pg_sleep(2)", &[])
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // ...which the primary deletes and vacuums away: replaying the cleanup
    // conflicts with that snapshot.
    tokio::task::block_in_place(|| {
        set.primary()
            .psql(&db, "DELETE FROM big;\nVACUUM big;")
            .expect("delete and vacuum")
    });
    let rows = reader.await.expect("task").expect("the read succeeds");
    let n: i64 = rows[0].get(0);
    assert_eq!(n, 0, "ran again on the primary, after the delete");
    assert_eq!(cluster.stats().recovery_conflict_retries(), 1);
}

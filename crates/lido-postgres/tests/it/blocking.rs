//! The blocking PostgreSQL API from plain OS threads (no runtime in the test).

use crate::common;

use std::time::Duration;

use lido_postgres::blocking::BlockingPgPool;
use lido_postgres::{PgError, TxOptions};
use lido_testkit::PgServer;

const THREADS: i32 = 64;

#[test]
fn sixty_four_threads_share_eight_connections() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let pool =
        BlockingPgPool::build(common::builder(common::config(server, &db), 8)).expect("pool");
    pool.get()
        .expect("get")
        .batch_execute("CREATE TABLE t (thread int PRIMARY KEY, doubled int NOT NULL)")
        .expect("ddl");
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let pool = pool.clone();
            std::thread::spawn(move || -> Result<i32, PgError> {
                let mut conn = pool.get()?;
                let doubled: i32 = conn.query_one("SELECT $1::int * 2", &[&i])?.get(0);
                conn.transaction(&TxOptions::new(), |tx| {
                    tx.execute("INSERT INTO t VALUES ($1, $2)", &[&i, &doubled])?;
                    // A failing closure rolls back; only the first insert stays.
                    Ok(())
                })?;
                let failed = conn.transaction(&TxOptions::new(), |tx| {
                    tx.execute("INSERT INTO t VALUES ($1, 0)", &[&(i + 1000)])?;
                    Err::<(), _>(PgError::app("changed my mind"))
                });
                assert!(matches!(failed, Err(PgError::App(_))));
                Ok(doubled)
            })
        })
        .collect();
    let mut sum = 0;
    for t in threads {
        sum += t.join().expect("thread").expect("queries");
    }
    assert_eq!(sum, (0..THREADS).map(|i| i * 2).sum::<i32>());
    let conn = pool.get().expect("get");
    let (rows, total): (i64, i64) = {
        let row = conn
            .query_one("SELECT count(*), sum(doubled) FROM t", &[])
            .expect("count");
        (row.get(0), row.get(1))
    };
    assert_eq!(rows, i64::from(THREADS), "one committed row per thread");
    assert_eq!(total, i64::from(sum));
    drop(conn);
    let status = pool.pool().status();
    assert!(status.size <= 8, "{status:?}");
    let report = pool.close(Duration::from_secs(5)).expect("close");
    assert!(report.drained, "{report:?}");
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid();";
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while common::psql(server, &db, sql) != "0" {
        assert!(
            std::time::Instant::now() < until,
            "sessions left on the server"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn building_inside_a_runtime_fails_clearly() {
    let server = PgServer::shared();
    let err = BlockingPgPool::build(common::builder(common::config(server, "postgres"), 1))
        .expect_err("inside a runtime");
    assert!(err.to_string().contains("runtime"), "{err}");
}

//! Through a real PgBouncer in transaction mode: the PgBouncer setting
//! (unnamed statements only) runs clean where named prepared statements fail.

use crate::common;

use std::time::Duration;

use lido_postgres::{PgPool, TxOptions};
use lido_testkit::{PgBouncer, PgServer};

const TASKS: usize = 20;
const QUERIES: usize = 100;

/// 20 tasks x 100 parameterized queries through `pool`; returns the error count.
async fn hammer(pool: &PgPool) -> usize {
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let pool = pool.clone();
        tasks.spawn(async move {
            let mut errors = 0;
            for i in 0..QUERIES {
                let n = i32::try_from(t * QUERIES + i).unwrap_or(0);
                let ok = match pool.get().await {
                    Ok(conn) => match conn
                        .query_one("SELECT $1::int4 + 1, $2::text", &[&n, &"x"])
                        .await
                    {
                        Ok(row) => row.get::<_, i32>(0) == n + 1,
                        Err(_) => false,
                    },
                    Err(_) => false,
                };
                errors += usize::from(!ok);
            }
            errors
        });
    }
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        errors += r.unwrap_or(QUERIES);
    }
    errors
}

fn pool(bouncer: &PgBouncer, db: &str, pgbouncer: bool) -> PgPool {
    let cfg = lido_postgres::PgConfig::parse(&bouncer.url(db)).expect("url");
    common::builder(cfg, 30) // larger than PgBouncer's server pool of 5
        .pgbouncer(pgbouncer)
        .build_lazy()
        .expect("pool")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_mode_runs_clean_only_with_the_pgbouncer_setting() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let bouncer = PgBouncer::start(server, "transaction", 5)
        .expect("pgbouncer (apt-get install -y pgbouncer)");

    let with = pool(&bouncer, &db, true);
    let errors = hammer(&with).await;
    println!(
        "PgBouncer setting on: {errors} errors of {}",
        TASKS * QUERIES
    );
    assert_eq!(errors, 0);

    let without = pool(&bouncer, &db, false);
    let errors = hammer(&without).await;
    println!(
        "PgBouncer setting off (named prepared statements): {errors} errors of {}",
        TASKS * QUERIES
    );
    assert!(
        errors > 0,
        "named statements should break under transaction pooling"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_and_settings_work_through_pgbouncer() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let bouncer = PgBouncer::start(server, "transaction", 2).expect("pgbouncer");
    let cfg = lido_postgres::PgConfig::parse(&bouncer.url(&db)).expect("url");
    let pool = common::builder(cfg, 8)
        .pgbouncer(true)
        .statement_timeout(Duration::from_millis(1234))
        .search_path("app, public")
        .build()
        .await
        .expect("startup options are not sent, so PgBouncer accepts the connection");
    let mut conn = pool.get().await.expect("get");
    conn.batch_execute("CREATE SCHEMA app; CREATE TABLE app.t (id bigint, name text)")
        .await
        .expect("ddl");
    let (timeout, inserted) = conn
        .transaction_with_retry(&TxOptions::new(), |tx| {
            Box::pin(async move {
                let t: String = tx.query_one("SHOW statement_timeout", &[]).await?.get(0);
                let n = tx
                    .execute("INSERT INTO t VALUES ($1, $2)", &[&7i64, &Some("seven")])
                    .await?;
                Ok((t, n))
            })
        })
        .await
        .expect("transaction through PgBouncer");
    assert_eq!(timeout, "1234ms", "settings applied with SET LOCAL");
    assert_eq!(inserted, 1);
    let e = conn
        .prepare_cached("SELECT 1")
        .await
        .expect_err("named statements refused");
    assert!(matches!(
        e,
        lido_postgres::PgError::Unsupported(lido_postgres::Unsupported::PgBouncerNamedStatements)
    ));
    let row = conn
        .query_one("SELECT name FROM app.t WHERE id = $1", &[&7i64])
        .await
        .expect("query");
    assert_eq!(row.get::<_, &str>(0), "seven");
    let err = conn
        .timeout(Duration::from_millis(200))
        .query("SELECT pg_sleep(30)", &[])
        .await
        .expect_err("timeout");
    assert!(err.is_timeout(), "{err}");
    // PgBouncer 1.18 drops a cancel whose connection closes before it is
    // forwarded; lido keeps it open until PgBouncer closes it, as libpq does.
    assert!(
        matches!(
            err,
            lido_postgres::PgError::QueryTimeout {
                cancelled: true,
                ..
            }
        ),
        "PgBouncer forwarded the cancel: {err}"
    );
    conn.query_one("SELECT 1", &[]).await.expect("still usable");
}

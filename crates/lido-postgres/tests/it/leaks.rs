//! Leak reports name the application's line, also for leases taken by
//! lido-postgres' closure helpers.

use crate::common;

use std::time::Duration;

use lido_core::LeakReport;
use lido_postgres::{PgPool, TxOptions};
use lido_testkit::PgServer;

async fn pool_with_leak_detection() -> PgPool {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    PgPool::builder(common::config(server, &db))
        .pool_config(lido_core::Config {
            max_size: 1,
            leak_threshold: Some(Duration::from_millis(50)),
            ..Default::default()
        })
        .build()
        .await
        .expect("pool")
}

/// Held past the leak threshold, what the pool reports.
async fn reported(pool: &PgPool) -> Vec<LeakReport> {
    tokio::time::sleep(Duration::from_millis(150)).await;
    pool.core().leaks()
}

fn assert_names_this_file(leaks: &[LeakReport], from: u32, to: u32) {
    assert_eq!(leaks.len(), 1, "one lease held past the threshold");
    let at = leaks[0].location;
    assert_eq!(at.file(), file!(), "names the caller's file, not lido's");
    assert!(
        (from..=to).contains(&at.line()),
        "line {} not between {from} and {to}",
        at.line()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_with_retry_leases_name_the_callers_line() {
    let pool = pool_with_leak_detection().await;
    let watcher = pool.clone();
    let from = line!();
    let leaks = pool
        .transaction_with_retry(&TxOptions::new(), move |tx| {
            let watcher = watcher.clone();
            Box::pin(async move {
                tx.execute("SELECT 1", &[]).await?;
                Ok(reported(&watcher).await)
            })
        })
        .await
        .expect("transaction");
    let to = line!();
    assert_names_this_file(&leaks, from, to);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_leases_name_the_callers_line() {
    let pool = pool_with_leak_detection().await;
    let from = line!();
    let conn = pool.get().await.expect("get");
    let to = line!();
    let leaks = reported(&pool).await;
    drop(conn);
    assert_names_this_file(&leaks, from, to);
}

//! How long a `SELECT pg_sleep(30)` with a 200 ms query timeout takes to
//! return its timeout error, and to be gone from `pg_stat_activity`, with
//! the DEFAULT pool settings. Both are counted from when the query was
//! issued.
//!
//! Run with: `cargo run --release -p lido-postgres --example cancel [rounds]`
//! (default 10 rounds; needs the PostgreSQL server binaries, see lido-testkit).
//! Every wait is capped at 30 s: past that it says what did not happen and exits 1.

mod support;

use std::time::Duration;

use lido_postgres::{PgConfig, PgConn, PgPool};
use lido_testkit::PgServer;
use tokio::time::Instant;

use support::{summary, within};

const TIMEOUT: Duration = Duration::from_millis(200);

/// Polls (every millisecond) until the backend `pid` runs nothing.
async fn gone(watcher: &PgConn, pid: i32) -> Instant {
    loop {
        let row = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'",
                &[&pid],
            )
            .await
            .expect("pg_stat_activity");
        if row.get::<_, i64>(0) == 0 {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args().nth(1).map_or(Ok(10), |a| a.parse())?;
    let server = PgServer::start()?;
    let db = server.create_database()?;
    let pool = PgPool::builder(PgConfig::parse(&server.url(&db))?)
        .build()
        .await?;
    let conn = pool.get().await?;
    let watcher = pool.get().await?;
    let pid = conn.backend_pid().await?;
    let (mut to_error, mut to_gone) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        let query = conn.timeout(TIMEOUT).query("SELECT pg_sleep(30)", &[]);
        let err = within("the timeout error", query)
            .await
            .expect_err("pg_sleep(30) cannot finish in 200 ms");
        let errored = Instant::now();
        if !err.is_timeout() {
            return Err(err.into());
        }
        let gone_at = within("the query leaving pg_stat_activity", gone(&watcher, pid)).await;
        to_error.push(errored - started);
        to_gone.push(gone_at - started);
    }
    println!("pool settings: defaults; query timeout {TIMEOUT:?} on SELECT pg_sleep(30)");
    println!("{}", summary("issued -> timeout error", &mut to_error));
    println!(
        "{}",
        summary("issued -> gone from pg_stat_activity", &mut to_gone)
    );
    let s = pool.pg_stats();
    println!(
        "cancels confirmed {}, unconfirmed {}",
        s.cancels_confirmed(),
        s.cancels_unconfirmed()
    );
    Ok(())
}

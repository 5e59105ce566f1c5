//! How long a pool with the DEFAULT settings takes to serve a `get()`
//! again after its server restarts, counted from the moment the server
//! accepts connections again; fast and immediate (crash) restarts. One
//! caller, asking every millisecond; the fault table under 64 callers,
//! beside deadpool-postgres and bb8-postgres, is `examples/faults.rs`.
//!
//! Run with: `cargo run --release -p lido-postgres --example recovery [rounds]`
//! (default 5 rounds; needs the PostgreSQL server binaries, see lido-testkit).
//! Every wait is capped at 30 s: past that it says what did not happen and exits 1.

mod support;

use std::sync::Arc;
use std::time::Duration;

use lido_postgres::{PgConfig, PgPool};
use lido_testkit::{PgServer, StopMode};
use tokio::sync::Notify;
use tokio::time::Instant;

use support::{summary, within};

const DOWNTIME: Duration = Duration::from_millis(1500);

/// The first instant a plain tokio-postgres connect succeeds.
async fn first_accept(url: String) -> Instant {
    loop {
        if tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .is_ok()
        {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The first instant `pool.get()` gives a connection that answers `SELECT 1`
/// (trying every millisecond).
async fn first_served(pool: PgPool) -> Instant {
    loop {
        if let Ok(conn) = pool.get().await {
            if conn.query_one("SELECT 1", &[]).await.is_ok() {
                return Instant::now();
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn round(server: &PgServer, pool: &PgPool, url: &str, mode: StopMode) -> Duration {
    within(
        "the pool serving before the restart",
        first_served(pool.clone()),
    )
    .await;
    tokio::task::block_in_place(|| server.stop_with(mode)).expect("stop");
    // While it is down, the application keeps asking (and the breaker opens).
    let down = Arc::new(Notify::new());
    let asking = {
        let (pool, down) = (pool.clone(), Arc::clone(&down));
        tokio::spawn(async move {
            tokio::select! {
                () = down.notified() => {}
                () = async { loop { let _ = pool.get().await; tokio::time::sleep(Duration::from_millis(5)).await; } } => {}
            }
        })
    };
    tokio::time::sleep(DOWNTIME).await;
    down.notify_one();
    let _ = asking.await;
    // Both start asking before the server starts: `pg_ctl start -w` itself
    // returns up to 100 ms after the server accepts (it polls).
    let probe = tokio::spawn(first_accept(url.to_owned()));
    let asking = tokio::spawn(first_served(pool.clone()));
    tokio::task::block_in_place(|| server.start_again()).expect("start");
    let served = within("the pool serving after the restart", asking)
        .await
        .expect("asking task");
    let accepted = within("the server accepting connections", probe)
        .await
        .expect("probe task");
    served.saturating_duration_since(accepted)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args().nth(1).map_or(Ok(5), |a| a.parse())?;
    let server = PgServer::start()?;
    let db = server.create_database()?;
    let url = server.url(&db);
    let pool = PgPool::builder(PgConfig::parse(&url)?).build().await?;
    println!(
        "pool settings: defaults (lido_core::Config::default()); {DOWNTIME:?} of downtime per round"
    );
    for mode in [StopMode::Fast, StopMode::Immediate] {
        let mut figures = Vec::new();
        for _ in 0..rounds {
            figures.push(round(&server, &pool, &url, mode).await);
        }
        let label = format!("restart {mode:?}: server accepting -> pool serving get()");
        println!("{}", summary(&label, &mut figures));
    }
    let s = pool.stats();
    println!(
        "breaker opened {} times, connect failures {}, connections created {}",
        s.breaker_opened(),
        s.connect_failures(),
        s.created()
    );
    Ok(())
}

//! How long a pool with default settings takes to serve again after its
//! server restarts, counted from the moment the server accepts connections.
//!
//! Run with: `cargo run --release -p lido-postgres --example recovery`
//! (needs the PostgreSQL server binaries; see lido-testkit).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_postgres::{PgConfig, PgPool};
use lido_testkit::{PgServer, StopMode};
use tokio::sync::Mutex;
use tokio::time::Instant;

const ROUNDS: usize = 5;
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
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Application traffic: 4 tasks running `SELECT 1` through the pool, each
/// recording its successes after `armed` is set.
async fn traffic(pool: PgPool, armed: Arc<AtomicBool>, first_ok: Arc<Mutex<Option<Instant>>>) {
    loop {
        let ok = match pool.get().await {
            Ok(conn) => conn.query_one("SELECT 1", &[]).await.is_ok(),
            Err(_) => false,
        };
        if ok && armed.load(Ordering::SeqCst) {
            let mut first = first_ok.lock().await;
            first.get_or_insert_with(Instant::now);
        }
        if !ok {
            tokio::time::sleep(Duration::from_millis(2)).await;
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

async fn round(server: &PgServer, pool: &PgPool, url: &str, mode: StopMode) -> Duration {
    let armed = Arc::new(AtomicBool::new(false));
    let first_ok = Arc::new(Mutex::new(None));
    let load: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(traffic(
                pool.clone(),
                Arc::clone(&armed),
                Arc::clone(&first_ok),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.stop_with(mode).expect("stop");
    tokio::time::sleep(DOWNTIME).await;
    *first_ok.lock().await = None;
    armed.store(true, Ordering::SeqCst);
    let probe = tokio::spawn(first_accept(url.to_owned()));
    tokio::task::block_in_place(|| server.start_again()).expect("start");
    let accepted = probe.await.expect("probe");
    let served = loop {
        if let Some(t) = *first_ok.lock().await {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    for task in load {
        task.abort();
    }
    served.saturating_duration_since(accepted)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = PgServer::start()?;
    let db = server.create_database()?;
    let url = server.url(&db);
    // Default settings: lido-core's Config::default() (breaker open_for 500 ms, ...).
    let pool = PgPool::builder(PgConfig::parse(&url)?).build().await?;
    println!("pool settings: lido_core::Config::default(); {DOWNTIME:?} of downtime per round");
    for mode in [StopMode::Fast, StopMode::Immediate] {
        let mut figures = Vec::new();
        for _ in 0..ROUNDS {
            figures.push(round(&server, &pool, &url, mode).await);
        }
        figures.sort();
        let ms: Vec<String> = figures
            .iter()
            .map(|d| format!("{:.0}", d.as_secs_f64() * 1e3))
            .collect();
        println!(
            "restart {mode:?}: server accepting -> pool serving: median {:.0} ms, max {:.0} ms (rounds: {} ms)",
            figures[ROUNDS / 2].as_secs_f64() * 1e3,
            figures[ROUNDS - 1].as_secs_f64() * 1e3,
            ms.join(", ")
        );
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

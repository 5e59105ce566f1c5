//! Serves `/health`, `/health/live`, `/health/ready` and `/metrics` for an
//! in-memory pool: `cargo run -p lido-http --example serve -- 127.0.0.1:9187`.
//! With `--once`, prints the health report and the metrics and exits.

use std::time::Duration;

use lido_core::{Manager, Pool};
use lido_http::{HealthMonitor, Metrics};

/// A stand-in database that always answers.
struct Memory;

impl Manager for Memory {
    type Connection = ();
    type Error = std::io::Error;

    async fn connect(&self) -> Result<(), std::io::Error> {
        Ok(())
    }

    async fn check(&self, _conn: &mut ()) -> Result<(), std::io::Error> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let pool = Pool::builder(Memory)
        .max_size(8)
        .min_idle(2)
        .build()
        .await?;
    let monitor = HealthMonitor::builder()
        .pool("primary", pool.clone())
        .interval(Duration::from_secs(5))
        .spawn()?;
    if args.iter().any(|a| a == "--once") {
        let conn = pool.get().await?;
        drop(conn);
        let report = monitor.refresh().await;
        println!("{}", serde_json::to_string_pretty(&*report)?);
        print!("{}", Metrics::for_monitor(&monitor).encode()?);
        return Ok(());
    }
    let addr = args.first().map_or("127.0.0.1:9187", String::as_str);
    let app = axum::Router::new().merge(lido_http::router(&monitor));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("serving on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

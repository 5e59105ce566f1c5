//! lido-postgres's spans exported to OpenTelemetry over OTLP/gRPC with
//! tracing-opentelemetry: `lido.acquire`, `lido.connect`, and one span per
//! statement named `SELECT orders` (via `otel.name`) with `db.system.name`,
//! `db.namespace`, `db.operation.name`, `server.address`, `server.port`,
//! `db.query.text` (opted in below) and, on failure, `error.type` and
//! `db.response.status_code`.
//!
//! ```text
//! cargo run -p lido-postgres --example otel --features otel-example -- [postgres://…]
//! ```
//!
//! Without a URL it starts a throwaway server (lido-testkit). Spans go to
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (default `http://localhost:4317`); with no
//! collector listening, exports fail after a short timeout and the example
//! still runs to the end. The same spans print on stderr as they close.

use std::time::Duration;

use lido_postgres::{PgConfig, PgPool, StatementOrder};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Instrument;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An OTLP/gRPC span exporter behind a batch processor. The batch
/// processor exports from its own thread; the tonic client it calls was
/// built here, inside the tokio runtime, and runs its connection there
/// (opentelemetry-otlp's documented setup), so this needs `#[tokio::main]`
/// (multi-threaded) and nothing else.
fn tracer_provider() -> Result<SdkTracerProvider, BoxError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_timeout(Duration::from_secs(2))
        .build()?;
    let resource = Resource::builder()
        .with_service_name("lido-otel-example")
        .build();
    Ok(SdkTracerProvider::builder()
        .with_resource(resource)
        .with_batch_exporter(exporter)
        .build())
}

/// `RUST_LOG` or `info`; OpenTelemetry layer plus a console layer.
fn init_tracing(provider: &SdkTracerProvider) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("lido-postgres"));
    let console = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::CLOSE);
    tracing_subscriber::registry()
        .with(filter)
        .with(otel)
        .with(console)
        .init();
}

/// One request's worth of queries, under an application span.
async fn handle_request(pool: &PgPool) -> Result<(), BoxError> {
    let conn = pool.get().await?;
    conn.batch_execute("CREATE TABLE IF NOT EXISTS orders (id int PRIMARY KEY, total int)")
        .await?;
    conn.execute(
        "INSERT INTO orders VALUES (1, 10), (2, 20) ON CONFLICT DO NOTHING",
        &[],
    )
    .await?;
    let rows = conn
        .query("SELECT id FROM orders WHERE total > $1", &[&5i32])
        .await?;
    println!("{} orders", rows.len());
    let failed = conn.query("SELECT * FROM no_such_table", &[]).await;
    println!("a failing query: {:?}", failed.err().map(|e| e.to_string()));
    conn.query("SELECT pg_sleep(0.15)", &[]).await?;
    Ok(())
}

async fn run(url: &str) -> Result<(), BoxError> {
    let pool = PgPool::builder(PgConfig::parse(url)?)
        .max_size(4)
        .trace_query_text(true)
        .slow_query_threshold(Some(Duration::from_millis(100)))
        .build()
        .await?;
    let span = tracing::info_span!("handle_request", otel.kind = "server");
    handle_request(&pool).instrument(span).await?;
    for s in pool.statement_stats().top(5, StatementOrder::TotalTime) {
        println!("{:>3} calls {:>10.1?} total  {}", s.calls, s.total, s.query);
    }
    pool.close(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let provider = tracer_provider()?;
    init_tracing(&provider);
    let (url, _server) = match std::env::args().nth(1) {
        Some(url) => (url, None),
        None => {
            let server = lido_testkit::PgServer::start()?;
            (server.url(&server.create_database()?), Some(server))
        }
    };
    run(&url).await?;
    if let Err(e) = provider.shutdown() {
        eprintln!("spans not exported (is a collector listening?): {e}");
    }
    Ok(())
}

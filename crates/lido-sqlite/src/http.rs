//! lido-http integration (feature `http`): [`PoolSource`](lido_http::PoolSource) for
//! [`SqlitePool`], so a pool registers with health checks and the exporter
//! as it is. The readers' lido-core pool gives the built-in checks and
//! families; the writer lane adds [`WriterPing`] (`writer:responseTime`: a
//! dead or wedged writer fails health even while every reader answers) and
//! [`WriterMetrics`] (`lido_sqlite_writes_queued`, and
//! `lido_sqlite_reads_queued` for reads waiting for a reader thread).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use lido_http::{HealthExt, Metrics, Status};
//! use lido_sqlite::SqlitePool;
//!
//! let db = SqlitePool::memory("http_doc").build().await?;
//! let report = db.health().await;
//! assert_eq!(report.status, Status::Pass, "{}", report.summary());
//! assert!(report.check(lido_sqlite::http::WRITER_CHECK, "default").is_some());
//! let text = Metrics::builder().pool("app", db.clone()).build()?.encode()?;
//! assert!(text.contains(r#"lido_sqlite_writes_queued{pool="app"} 0"#));
//! assert!(text.contains(r#"lido_sqlite_reads_queued{pool="app"} 0"#));
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use lido_http::{
    BackendCheck, BoxFuture, CheckContext, MetricSink, MetricsExtension, Observation, PoolBackend,
};

use crate::manager::SqliteManager;
use crate::pool::SqlitePool;

/// The `checks` key of [`WriterPing`].
pub const WRITER_CHECK: &str = "writer:responseTime";

/// Metric family names [`WriterMetrics`] writes.
pub mod names {
    /// Gauge: writes waiting for the writer lane.
    pub const WRITES_QUEUED: &str = "lido_sqlite_writes_queued";
    /// Gauge: reads waiting for a reader thread (not in the readers' pool
    /// `waiters`: a read takes its connection on the reader thread).
    pub const READS_QUEUED: &str = "lido_sqlite_reads_queued";
}

/// Milliseconds rounded to microseconds, as lido-http's checks show them.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// `writer:responseTime`: runs `SELECT 1` on the writer lane, behind the
/// writes already queued, within `ping_timeout`; judged against
/// `latency_ms`. A writer that does not answer in time (wedged on a long
/// write, stalled on a lock) or has stopped fails the check.
#[derive(Debug, Clone)]
pub struct WriterPing {
    pool: SqlitePool,
}

impl WriterPing {
    /// The check of `pool`'s writer lane.
    pub fn new(pool: &SqlitePool) -> Self {
        Self { pool: pool.clone() }
    }

    async fn ping(&self, ctx: CheckContext<'_>) -> Observation {
        let (limit, t) = (ctx.config.ping_timeout, ctx.config.latency_ms);
        let ahead = self.pool.writes_queued();
        let started = Instant::now();
        let select = self
            .pool
            .write(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)));
        let outcome = tokio::time::timeout(limit, select).await;
        let took = ms(started.elapsed());
        let o = match outcome {
            Ok(Ok(_)) => {
                let why = format!("writer lane answered in {took} ms, {ahead} writes queued ahead");
                return Observation::judged(took, "ms", t, why);
            }
            Ok(Err(e)) => Observation::fail(format!("writer lane failed after {took} ms: {e}")),
            Err(_) => Observation::fail(format!(
                "writer lane did not answer within {limit:?} (ping_timeout), {} writes queued: wedged or stalled",
                self.pool.writes_queued()
            )),
        };
        o.value(took, "ms").threshold(t)
    }
}

impl BackendCheck for WriterPing {
    fn key(&self) -> &str {
        WRITER_CHECK
    }

    /// A backstop only: the ping bounds itself by `ping_timeout`.
    fn timeout(&self, cfg: &lido_http::HealthConfig) -> Duration {
        cfg.ping_timeout.saturating_add(cfg.check_timeout)
    }

    fn check<'a>(&'a self, ctx: CheckContext<'a>) -> BoxFuture<'a, Observation> {
        Box::pin(self.ping(ctx))
    }
}

/// The lanes' families: `lido_sqlite_writes_queued` and
/// `lido_sqlite_reads_queued`.
#[derive(Debug, Clone)]
pub struct WriterMetrics {
    pool: SqlitePool,
}

impl WriterMetrics {
    /// The metrics of `pool`'s writer lane.
    pub fn new(pool: &SqlitePool) -> Self {
        Self { pool: pool.clone() }
    }
}

impl MetricsExtension for WriterMetrics {
    fn collect(&self, sink: &mut MetricSink<'_>) {
        let n = self.pool.writes_queued() as f64;
        let help = "Writes waiting for the writer lane.";
        sink.gauge(names::WRITES_QUEUED, help, &[], n);
        let n = self.pool.reads_queued() as f64;
        let help = "Reads waiting for a reader thread.";
        sink.gauge(names::READS_QUEUED, help, &[], n);
    }
}

impl PoolBackend for SqlitePool {
    type Manager = SqliteManager;

    /// The readers' pool: status, stats, breaker, leaks and the ping are
    /// the read connections'; the writer lane adds its own check.
    fn core_pool(&self) -> &lido_core::Pool<SqliteManager> {
        self.readers()
    }

    fn backend_checks(&self) -> Vec<Arc<dyn BackendCheck>> {
        vec![Arc::new(WriterPing::new(self))]
    }

    fn backend_metrics(&self) -> Vec<Arc<dyn MetricsExtension>> {
        vec![Arc::new(WriterMetrics::new(self))]
    }
}

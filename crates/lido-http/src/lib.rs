//! # lido-http
//!
//! Health checks, Kubernetes probes and a Prometheus/OpenMetrics exporter for
//! lido pools, served by an axum 0.8 [`Router`](axum::Router) you mount in one
//! line. Works for any [`lido_core::Pool`] (PostgreSQL, SQLite), several at
//! once, each under a name.
//!
//! - [`health()`] (or `pool.health().await` with [`HealthExt`]) checks one
//!   pool once; a [`HealthChecker`] checks several pools and custom
//!   [`HealthCheck`]s with sliding windows; a [`HealthMonitor`] runs one in
//!   the background and answers probes from memory, so a probe storm adds no
//!   database load. Every check reports its observed value, unit, threshold
//!   and a one-line reason.
//! - Backends add checks of their own ([`BackendCheck`], e.g. PostgreSQL's
//!   `database:queryErrorRate`, SQLite's writer-lane ping) and metric
//!   families ([`MetricsExtension`]) through [`PoolSource`], so registering
//!   their pool brings them along.
//! - Liveness ([`HealthMonitor::liveness`]) asks whether the pool's own
//!   machinery is alive and never fails because the database is down;
//!   readiness ([`HealthMonitor::readiness`]) asks whether this instance can
//!   serve now.
//! - Reports serialize as `application/health+json`
//!   (draft-inadarei-api-health-check).
//! - [`Metrics`] reads `status()` and `stats()` at scrape time; backends add
//!   families through [`MetricsExtension`] (lido-postgres's `PgMetrics`,
//!   feature `http`: query durations, errors by SQLSTATE class, statement
//!   cache, transactions, timeouts), registered with the `PgPool` itself.
//!
//! ```
//! use std::time::Duration;
//! use lido_core::{Manager, Pool};
//! use lido_http::{HealthMonitor, Status};
//! # struct Nop;
//! # impl Manager for Nop {
//! #     type Connection = ();
//! #     type Error = std::io::Error;
//! #     async fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
//! #     async fn check(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = Pool::builder(Nop).max_size(16).build().await?;
//! let monitor = HealthMonitor::builder()
//!     .pool("primary", pool.clone())
//!     .interval(Duration::from_secs(5))
//!     .spawn()?;
//! let app: axum::Router = axum::Router::new().merge(lido_http::router(&monitor));
//! # let _ = app;
//! assert_eq!(monitor.refresh().await.status, Status::Pass);
//! # Ok(()) }
//! ```
//!
//! Kubernetes probes against the router:
//!
//! ```yaml
//! livenessProbe:
//!   httpGet: { path: /health/live, port: 8080 }
//!   periodSeconds: 10
//!   failureThreshold: 3
//! readinessProbe:
//!   httpGet: { path: /health/ready, port: 8080 }
//!   periodSeconds: 5
//!   failureThreshold: 2
//! ```
//!
//! Alert rules and a Grafana dashboard over these metrics live in the
//! repository's `contrib/prometheus/alerts.yml` and `contrib/grafana/lido.json`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod future;
pub mod health;
mod json;
pub mod metrics;
mod router;
mod source;

pub use future::BoxFuture;
pub use health::{
    error_rate, health, BackendCheck, Check, CheckContext, FnCheck, HealthCheck, HealthChecker,
    HealthConfig, HealthExt, HealthMonitor, HealthMonitorBuilder, HealthReport, Limits,
    MonitorError, Observation, Probe, ServiceInfo, Status, Threshold, DEFAULT_POOL_NAME,
};
pub use json::{rfc3339, HEALTH_JSON};
pub use metrics::{
    HealthMetrics, HistogramSample, MetricSink, Metrics, MetricsBuilder, MetricsError,
    MetricsExtension, OPENMETRICS_CONTENT_TYPE,
};
pub use router::{router, Endpoints};
pub use source::{NamedPool, PingFailure, PingFailureKind, PoolBackend, PoolSource};

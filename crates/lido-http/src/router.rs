//! The axum [`Router`]: `/health`, `/health/live`, `/health/ready`, `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use crate::health::{HealthMonitor, Status};
use crate::json::HEALTH_JSON;
use crate::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE};

/// The endpoints' shared state.
#[derive(Debug)]
struct Ctx {
    monitor: HealthMonitor,
    metrics: Option<Metrics>,
}

/// The health and metrics endpoints, with the paths they are served at.
///
/// ```
/// use lido_http::{Endpoints, HealthMonitor, Metrics};
/// # fn demo(monitor: HealthMonitor) -> Result<(), lido_http::MetricsError> {
/// let metrics = Metrics::builder().monitor(&monitor).build()?;
/// let app: axum::Router = axum::Router::new()
///     .merge(Endpoints::new(monitor).metrics(metrics).prefix("/ops").router());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Endpoints {
    monitor: HealthMonitor,
    metrics: Option<Metrics>,
    with_metrics: bool,
    prefix: String,
}

impl Endpoints {
    /// Every endpoint, `/metrics` exporting the monitor's pools and health gauges.
    pub fn new(monitor: HealthMonitor) -> Self {
        Self {
            monitor,
            metrics: None,
            with_metrics: true,
            prefix: String::new(),
        }
    }

    /// Serves `metrics` at `/metrics` instead of the default exporter.
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self.with_metrics = true;
        self
    }

    /// Leaves `/metrics` out (health endpoints only).
    pub fn without_metrics(mut self) -> Self {
        self.metrics = None;
        self.with_metrics = false;
        self
    }

    /// Serves under `prefix` (e.g. `/ops` gives `/ops/health`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().trim_end_matches('/').to_owned();
        self
    }

    /// The router, for any application state.
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let metrics = match (self.metrics, self.with_metrics) {
            (Some(m), _) => Some(m),
            (None, true) => Some(Metrics::for_monitor(&self.monitor)),
            (None, false) => None,
        };
        let has_metrics = metrics.is_some();
        let ctx = Arc::new(Ctx {
            monitor: self.monitor,
            metrics,
        });
        let p = &self.prefix;
        let mut r = Router::new()
            .route(&format!("{p}/health"), get(report))
            .route(&format!("{p}/health/live"), get(live))
            .route(&format!("{p}/health/ready"), get(ready));
        if has_metrics {
            r = r.route(&format!("{p}/metrics"), get(metrics_text));
        }
        r.with_state(ctx)
    }
}

/// `/health`, `/health/live`, `/health/ready` and `/metrics` for `monitor`'s
/// pools, mounted in one line.
///
/// ```no_run
/// use std::time::Duration;
/// use lido_core::{Manager, Pool};
/// use lido_http::HealthMonitor;
/// # struct Nop;
/// # impl Manager for Nop {
/// #     type Connection = ();
/// #     type Error = std::io::Error;
/// #     async fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
/// #     async fn check(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Pool::builder(Nop).build().await?;
/// let monitor = HealthMonitor::builder().pool("primary", pool.clone()).spawn()?;
/// let app = axum::Router::new().merge(lido_http::router(&monitor));
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
/// axum::serve(listener, app).await?;
/// # Ok(()) }
/// ```
pub fn router<S: Clone + Send + Sync + 'static>(monitor: &HealthMonitor) -> Router<S> {
    Endpoints::new(monitor.clone()).router()
}

fn health_response(status: Status, body: &Value) -> Response {
    let code = StatusCode::from_u16(status.http_code()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (
        code,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        bytes,
    )
        .into_response()
}

async fn report(State(ctx): State<Arc<Ctx>>) -> Response {
    match ctx.monitor.report() {
        Some(r) => health_response(r.status, &r.to_json()),
        None => {
            let body = serde_json::json!({
                "status": "fail",
                "output": "no health report yet: the first round is still running",
            });
            health_response(Status::Fail, &body)
        }
    }
}

async fn live(State(ctx): State<Arc<Ctx>>) -> Response {
    let probe = ctx.monitor.liveness();
    health_response(probe.status, &probe.to_json())
}

async fn ready(State(ctx): State<Arc<Ctx>>) -> Response {
    let probe = ctx.monitor.readiness();
    health_response(probe.status, &probe.to_json())
}

async fn metrics_text(State(ctx): State<Arc<Ctx>>) -> Response {
    let Some(metrics) = &ctx.metrics else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "lido: encoding metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding metrics failed\n",
            )
                .into_response()
        }
    }
}

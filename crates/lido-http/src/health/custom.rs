//! User-added checks: the [`HealthCheck`] trait and [`FnCheck`] for closures.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;

use super::report::{Check, Observation};
use super::status::Status;
use crate::future::BoxFuture;

/// A custom health check, run with the built-in ones in every round and
/// bounded by its own timeout (a timed-out check fails with a reason).
///
/// ```
/// use lido_http::{BoxFuture, HealthCheck, Observation};
///
/// struct DiskSpace;
///
/// impl HealthCheck for DiskSpace {
///     fn key(&self) -> &str { "disk:utilization" }
///     fn component_type(&self) -> &str { "system" }
///     fn check(&self) -> BoxFuture<'_, Observation> {
///         Box::pin(async { Observation::pass().value(42.0, "percent") })
///     }
/// }
/// ```
pub trait HealthCheck: Send + Sync + 'static {
    /// The `checks` key, `component:measurement`.
    fn key(&self) -> &str;

    /// `componentType`: `component` (the default), `datastore` or `system`.
    fn component_type(&self) -> &str {
        "component"
    }

    /// `componentId`, if any.
    fn component_id(&self) -> Option<&str> {
        None
    }

    /// Longest the check may take (`None`: [`HealthConfig::check_timeout`](crate::HealthConfig::check_timeout)).
    fn timeout(&self) -> Option<Duration> {
        None
    }

    /// Runs the check.
    fn check(&self) -> BoxFuture<'_, Observation>;
}

type CheckFn = dyn Fn() -> BoxFuture<'static, Observation> + Send + Sync;

/// A [`HealthCheck`] from an async closure returning `Result<Observation, E>`;
/// an error fails the check with its message.
///
/// ```
/// use std::time::Duration;
/// use lido_http::{FnCheck, Observation};
///
/// let check = FnCheck::new("cache:reachable", || async {
///     Ok::<_, std::io::Error>(Observation::pass().output("cache answered"))
/// })
/// .timeout(Duration::from_millis(500));
/// ```
pub struct FnCheck {
    key: String,
    component_type: String,
    component_id: Option<String>,
    timeout: Option<Duration>,
    run: Box<CheckFn>,
}

impl FnCheck {
    /// A check under `key` running `f`.
    pub fn new<F, Fut, E>(key: impl Into<String>, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Observation, E>> + Send + 'static,
        E: fmt::Display + 'static,
    {
        let run = move || -> BoxFuture<'static, Observation> {
            let fut = f();
            Box::pin(async move {
                match fut.await {
                    Ok(o) => o,
                    Err(e) => Observation::fail(e.to_string()),
                }
            })
        };
        Self {
            key: key.into(),
            component_type: "component".to_owned(),
            component_id: None,
            timeout: None,
            run: Box::new(run),
        }
    }

    /// Sets its timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets its `componentType`.
    pub fn component_type(mut self, component_type: impl Into<String>) -> Self {
        self.component_type = component_type.into();
        self
    }

    /// Sets its `componentId`.
    pub fn component_id(mut self, id: impl Into<String>) -> Self {
        self.component_id = Some(id.into());
        self
    }
}

impl fmt::Debug for FnCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnCheck")
            .field("key", &self.key)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl HealthCheck for FnCheck {
    fn key(&self) -> &str {
        &self.key
    }

    fn component_type(&self) -> &str {
        &self.component_type
    }

    fn component_id(&self) -> Option<&str> {
        self.component_id.as_deref()
    }

    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    fn check(&self) -> BoxFuture<'_, Observation> {
        (self.run)()
    }
}

/// Runs `fut` under `limit`: a panic or a timeout fails instead of taking
/// the health loop down or stalling it.
pub(crate) async fn bounded(fut: BoxFuture<'_, Observation>, limit: Duration) -> Observation {
    match tokio::time::timeout(limit, AssertUnwindSafe(fut).catch_unwind()).await {
        Ok(Ok(o)) => o,
        Ok(Err(_)) => Observation::fail("check panicked"),
        Err(_) => Observation::fail(format!("check did not finish within {limit:?}")),
    }
}

/// A reason for a check that gave none: its value, or its status.
fn default_reason(o: &Observation) -> String {
    let unit = o.unit.as_deref().unwrap_or_default();
    match &o.value {
        Some(v) => format!("observed {v} {unit}").trim_end().to_owned(),
        None => format!("check returned {}", o.status),
    }
}

/// Runs `check` under its timeout.
pub(crate) async fn run_custom(check: &dyn HealthCheck, default_timeout: Duration) -> Check {
    let limit = check.timeout().unwrap_or(default_timeout);
    let mut obs = bounded(check.check(), limit).await;
    if obs.output.is_empty() {
        obs.output = default_reason(&obs);
    }
    if obs.status != Status::Pass {
        tracing::debug!(check = check.key(), status = %obs.status, output = %obs.output, "lido: custom health check");
    }
    obs.into_check(check.key(), check.component_id(), check.component_type())
}

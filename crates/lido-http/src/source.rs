//! [`PoolSource`]: the object-safe view of a pool that health checks and
//! metrics read, implemented for every [`lido_core::Pool`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use lido_core::{BreakerState, Config, Error, LeakReport, Manager, PingError, Pool, Stats, Status};

use crate::metrics::MetricsExtension;

/// A boxed, `Send` future (what object-safe async methods return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What kind of failure a [`PoolSource::ping`] met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PingFailureKind {
    /// No connection could be leased within `acquire_timeout`.
    AcquireTimeout,
    /// Connecting to the database failed.
    Connect,
    /// The circuit breaker is open.
    CircuitOpen,
    /// The pool is closed.
    Closed,
    /// The connection failed its check.
    Check,
    /// The check ran past the pool's `check_timeout`.
    CheckTimeout,
    /// The health check's own `ping_timeout` passed first (lease or check still running).
    HealthTimeout,
    /// Anything else.
    Other,
}

/// Why a [`PoolSource::ping`] failed: a kind and the error's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PingFailure {
    /// The kind of failure.
    pub kind: PingFailureKind,
    /// The underlying error, rendered (backends never put passwords in it).
    pub message: String,
}

impl PingFailure {
    /// A failure of `kind` with `message`.
    pub fn new(kind: PingFailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// What health checks and the metrics exporter need from a pool, object-safe
/// so pools of different managers can be registered together.
///
/// Implemented for every [`lido_core::Pool`]; a backend that wraps one can
/// implement it by forwarding, or hand out a clone of the inner `Pool`.
///
/// ```
/// use std::sync::Arc;
/// use lido_core::{Manager, Pool};
/// use lido_http::PoolSource;
///
/// # struct Nop;
/// # impl Manager for Nop {
/// #     type Connection = ();
/// #     type Error = std::io::Error;
/// #     async fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
/// #     async fn check(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Pool::builder(Nop).max_size(4).build().await?;
/// let source: Arc<dyn PoolSource> = Arc::new(pool.clone());
/// let rtt = source.ping().await?;
/// assert!(rtt < std::time::Duration::from_secs(5));
/// assert_eq!(source.status().idle, 1);
/// # Ok(()) }
/// ```
pub trait PoolSource: Send + Sync + 'static {
    /// A point-in-time view: size, idle, in use, waiters, connecting.
    fn status(&self) -> Status;
    /// Cumulative counters and histograms.
    fn stats(&self) -> &Stats;
    /// The circuit breaker's state.
    fn breaker_state(&self) -> BreakerState;
    /// Leases currently held past `leak_threshold`.
    fn leaks(&self) -> Vec<LeakReport>;
    /// Time since the pool's maintenance task last ran (its liveness heartbeat).
    fn maintenance_age(&self) -> Duration;
    /// The settings the pool runs with.
    fn config(&self) -> &Config;
    /// Whether the pool was closed.
    fn is_closed(&self) -> bool;
    /// Leases a connection and checks it; returns the check's round trip.
    fn ping(&self) -> BoxFuture<'_, Result<Duration, PingFailure>>;
}

impl<M: Manager> PoolSource for Pool<M> {
    fn status(&self) -> Status {
        Pool::status(self)
    }

    fn stats(&self) -> &Stats {
        Pool::stats(self)
    }

    fn breaker_state(&self) -> BreakerState {
        Pool::breaker_state(self)
    }

    fn leaks(&self) -> Vec<LeakReport> {
        Pool::leaks(self)
    }

    fn maintenance_age(&self) -> Duration {
        Pool::maintenance_age(self)
    }

    fn config(&self) -> &Config {
        Pool::config(self)
    }

    fn is_closed(&self) -> bool {
        Pool::is_closed(self)
    }

    fn ping(&self) -> BoxFuture<'_, Result<Duration, PingFailure>> {
        Box::pin(async move { Pool::ping(self).await.map_err(ping_failure) })
    }
}

fn ping_failure<E: std::error::Error + 'static>(err: PingError<E>) -> PingFailure {
    let kind = match &err {
        PingError::Acquire(Error::AcquireTimeout { .. }) => PingFailureKind::AcquireTimeout,
        PingError::Acquire(Error::Connect { .. }) => PingFailureKind::Connect,
        PingError::Acquire(Error::CircuitOpen { .. }) => PingFailureKind::CircuitOpen,
        PingError::Acquire(Error::Closed) => PingFailureKind::Closed,
        PingError::Check(_) => PingFailureKind::Check,
        PingError::Timeout(_) => PingFailureKind::CheckTimeout,
        _ => PingFailureKind::Other,
    };
    PingFailure::new(kind, err.to_string())
}

/// A pool registered under a name (the `pool` metric label and the health
/// check's `componentId`), with optional extra metrics.
#[derive(Clone)]
pub struct NamedPool {
    name: Arc<str>,
    source: Arc<dyn PoolSource>,
    extensions: Vec<Arc<dyn MetricsExtension>>,
}

impl NamedPool {
    /// Registers `source` under `name`.
    pub fn new(name: impl Into<Arc<str>>, source: impl PoolSource) -> Self {
        Self::from_arc(name, Arc::new(source))
    }

    /// Registers an already shared source under `name`.
    pub fn from_arc(name: impl Into<Arc<str>>, source: Arc<dyn PoolSource>) -> Self {
        Self {
            name: name.into(),
            source,
            extensions: Vec::new(),
        }
    }

    /// Adds per-pool metric families (written with this pool's `pool` label).
    pub fn with_metrics(mut self, extension: impl MetricsExtension) -> Self {
        self.extensions.push(Arc::new(extension));
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pool.
    pub fn source(&self) -> &dyn PoolSource {
        &*self.source
    }

    /// The per-pool metric extensions.
    pub fn extensions(&self) -> &[Arc<dyn MetricsExtension>] {
        &self.extensions
    }
}

impl fmt::Debug for NamedPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedPool")
            .field("name", &self.name)
            .field("status", &self.source.status())
            .field("extensions", &self.extensions.len())
            .finish()
    }
}

//! [`PoolSource`]: the object-safe view of a pool that health checks and
//! metrics read, implemented for every [`lido_core::Pool`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use lido_core::{BreakerState, Config, Error, LeakReport, Manager, PingError, Pool, Stats, Status};

use crate::future::BoxFuture;
use crate::health::backend::BackendCheck;
use crate::metrics::sink::MetricsExtension;

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
    /// The backend knows, without a round trip, that its database cannot
    /// serve now ([`PoolSource::unavailable`]: a server that stopped answering).
    Unavailable,
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
/// Implemented for every [`PoolBackend`] (every [`lido_core::Pool`], and a
/// backend's pool that names its core pool), whose own checks and metric
/// families come through [`backend_checks`](Self::backend_checks) and
/// [`backend_metrics`](Self::backend_metrics), so registering the backend's
/// pool anywhere (health, metrics, a [`NamedPool`]) brings them along:
/// lido-postgres's `PgPool` adds `database:queryErrorRate` and the `lido_pg_*`
/// families, lido-sqlite's `SqlitePool` a writer-lane ping and
/// `lido_sqlite_writes_queued` (their `http` features).
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

    /// Why the database cannot serve right now, when the backend knows it
    /// without a round trip (lido-postgres: its watchdog holds the server
    /// not answering). Readiness fails while this is `Some`, and the ping
    /// fails at once with it. `None` by default.
    fn unavailable(&self) -> Option<String> {
        None
    }

    /// Checks the backend adds to the built-in ones (none by default).
    fn backend_checks(&self) -> Vec<Arc<dyn BackendCheck>> {
        Vec::new()
    }

    /// Metric families the backend adds to the core ones (none by default).
    fn backend_metrics(&self) -> Vec<Arc<dyn MetricsExtension>> {
        Vec::new()
    }
}

/// A pool built on one [`lido_core::Pool`]: say which, and add the backend's
/// own checks and metric families, and [`PoolSource`] comes with it (every
/// other method reads the core pool). lido-core's `Pool` is one, with nothing
/// added; lido-postgres's `PgPool` and lido-sqlite's `SqlitePool` are others.
///
/// ```
/// use std::sync::Arc;
/// use lido_core::{Manager, Pool};
/// use lido_http::{BackendCheck, PoolBackend, PoolSource};
/// # struct Nop;
/// # impl Manager for Nop {
/// #     type Connection = ();
/// #     type Error = std::io::Error;
/// #     async fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
/// #     async fn check(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// struct MyPool {
///     core: Pool<Nop>,
/// }
///
/// impl PoolBackend for MyPool {
///     type Manager = Nop;
///     fn core_pool(&self) -> &Pool<Nop> {
///         &self.core
///     }
///     fn backend_checks(&self) -> Vec<Arc<dyn BackendCheck>> {
///         Vec::new() // the backend's own checks go here
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = MyPool { core: Pool::builder(Nop).max_size(2).build().await? };
/// assert_eq!(PoolSource::status(&pool).max_size, 2);
/// # Ok(()) }
/// ```
pub trait PoolBackend: Send + Sync + 'static {
    /// The core pool's manager.
    type Manager: Manager;
    /// The core pool underneath.
    fn core_pool(&self) -> &Pool<Self::Manager>;
    /// Checks the backend adds to the built-in ones (none by default).
    fn backend_checks(&self) -> Vec<Arc<dyn BackendCheck>> {
        Vec::new()
    }
    /// Metric families the backend adds to the core ones (none by default).
    fn backend_metrics(&self) -> Vec<Arc<dyn MetricsExtension>> {
        Vec::new()
    }
    /// Why the database cannot serve right now, known without a round trip
    /// (see [`PoolSource::unavailable`]; `None` by default).
    ///
    /// ```
    /// use lido_core::{Manager, Pool};
    /// use lido_http::{PingFailureKind, PoolBackend, PoolSource};
    /// # struct Nop;
    /// # impl Manager for Nop {
    /// #     type Connection = ();
    /// #     type Error = std::io::Error;
    /// #     async fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
    /// #     async fn check(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
    /// # }
    /// struct Silent(Pool<Nop>);
    ///
    /// impl PoolBackend for Silent {
    ///     type Manager = Nop;
    ///     fn core_pool(&self) -> &Pool<Nop> {
    ///         &self.0
    ///     }
    ///     fn unavailable(&self) -> Option<String> {
    ///         Some("db:5432 is not answering".into())
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = Silent(Pool::builder(Nop).build().await?);
    /// let failure = pool.ping().await.unwrap_err();
    /// assert_eq!(failure.kind, PingFailureKind::Unavailable);
    /// assert_eq!(PoolSource::unavailable(&pool).as_deref(), Some("db:5432 is not answering"));
    /// # Ok(()) }
    /// ```
    fn unavailable(&self) -> Option<String> {
        None
    }
}

impl<M: Manager> PoolBackend for Pool<M> {
    type Manager = M;
    fn core_pool(&self) -> &Pool<M> {
        self
    }
}

impl<B: PoolBackend> PoolSource for B {
    fn status(&self) -> Status {
        self.core_pool().status()
    }

    fn stats(&self) -> &Stats {
        self.core_pool().stats()
    }

    fn breaker_state(&self) -> BreakerState {
        self.core_pool().breaker_state()
    }

    fn leaks(&self) -> Vec<LeakReport> {
        self.core_pool().leaks()
    }

    fn maintenance_age(&self) -> Duration {
        self.core_pool().maintenance_age()
    }

    fn config(&self) -> &Config {
        self.core_pool().config()
    }

    fn is_closed(&self) -> bool {
        self.core_pool().is_closed()
    }

    fn ping(&self) -> BoxFuture<'_, Result<Duration, PingFailure>> {
        Box::pin(async move {
            if let Some(why) = PoolBackend::unavailable(self) {
                return Err(PingFailure::new(PingFailureKind::Unavailable, why));
            }
            self.core_pool().ping().await.map_err(ping_failure)
        })
    }

    fn unavailable(&self) -> Option<String> {
        PoolBackend::unavailable(self)
    }

    fn backend_checks(&self) -> Vec<Arc<dyn BackendCheck>> {
        PoolBackend::backend_checks(self)
    }

    fn backend_metrics(&self) -> Vec<Arc<dyn MetricsExtension>> {
        PoolBackend::backend_metrics(self)
    }
}

fn ping_failure<E: std::error::Error + 'static>(err: PingError<E>) -> PingFailure {
    let kind = match &err {
        PingError::Acquire(Error::AcquireTimeout { .. }) => PingFailureKind::AcquireTimeout,
        PingError::Acquire(Error::Connect { .. }) => PingFailureKind::Connect,
        PingError::Acquire(Error::CircuitOpen { .. }) => PingFailureKind::CircuitOpen,
        PingError::Acquire(Error::Closed) => PingFailureKind::Closed,
        PingError::Acquire(Error::Unavailable { .. }) => PingFailureKind::Unavailable,
        PingError::Check(_) => PingFailureKind::Check,
        PingError::Timeout(_) => PingFailureKind::CheckTimeout,
        _ => PingFailureKind::Other,
    };
    PingFailure::new(kind, err.to_string())
}

/// A pool registered under a name (the `pool` metric label and the health
/// checks' `componentId`), with the backend's checks and metric families
/// ([`PoolSource::backend_checks`], [`PoolSource::backend_metrics`]) and any
/// added with [`with_check`](Self::with_check) and
/// [`with_metrics`](Self::with_metrics).
#[derive(Clone)]
pub struct NamedPool {
    name: Arc<str>,
    source: Arc<dyn PoolSource>,
    checks: Vec<Arc<dyn BackendCheck>>,
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
            checks: source.backend_checks(),
            extensions: source.backend_metrics(),
            source,
        }
    }

    /// Adds per-pool metric families (written with this pool's `pool` label).
    pub fn with_metrics(mut self, extension: impl MetricsExtension) -> Self {
        self.extensions.push(Arc::new(extension));
        self
    }

    /// Drops the metric families registered so far, the backend's included
    /// (to register differently configured ones with [`with_metrics`](Self::with_metrics)).
    pub fn without_metrics(mut self) -> Self {
        self.extensions.clear();
        self
    }

    /// Adds a check run with this pool's built-in ones.
    pub fn with_check(mut self, check: impl BackendCheck) -> Self {
        self.checks.push(Arc::new(check));
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

    /// The per-pool checks beyond the built-in ones.
    pub fn checks(&self) -> &[Arc<dyn BackendCheck>] {
        &self.checks
    }
}

/// The first name two of `pools` share, if any.
pub(crate) fn duplicate_name(pools: &[NamedPool]) -> Option<&str> {
    pools
        .iter()
        .enumerate()
        .find(|(i, p)| pools[..*i].iter().any(|q| q.name() == p.name()))
        .map(|(_, p)| p.name())
}

impl fmt::Debug for NamedPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedPool")
            .field("name", &self.name)
            .field("status", &self.source.status())
            .field(
                "checks",
                &self.checks.iter().map(|c| c.key()).collect::<Vec<_>>(),
            )
            .field("extensions", &self.extensions.len())
            .finish()
    }
}

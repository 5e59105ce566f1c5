//! Typed errors: [`Error`] from `get()`, [`BuildError`] from configuration.

use std::{fmt, sync::Arc, time::Duration};

/// Why one connect attempt failed. Cheap to clone: the backend error is shared.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectFailure<E> {
    /// The backend refused or failed.
    Backend(Arc<E>),
    /// The attempt ran past `connect_timeout`.
    Timeout(Duration),
    /// The manager's `connect` panicked (a bug in the manager); the pool
    /// freed the slot and reports it like any failure.
    Panicked,
}

impl<E> Clone for ConnectFailure<E> {
    fn clone(&self) -> Self {
        match self {
            Self::Backend(e) => Self::Backend(Arc::clone(e)),
            Self::Timeout(d) => Self::Timeout(*d),
            Self::Panicked => Self::Panicked,
        }
    }
}

impl<E> ConnectFailure<E> {
    /// The backend error, when there is one.
    pub fn backend(&self) -> Option<&E> {
        match self {
            Self::Backend(e) => Some(e),
            Self::Timeout(_) | Self::Panicked => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for ConnectFailure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Backend(e) => e.fmt(f),
            Self::Timeout(d) => {
                write!(f, "connect attempt timed out after {d:?} (connect_timeout)")
            }
            Self::Panicked => f.write_str("the connection manager panicked while connecting"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ConnectFailure<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Backend(e) => Some(&**e),
            Self::Timeout(_) | Self::Panicked => None,
        }
    }
}

/// Why `get()` did not return a connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error<E: std::error::Error + 'static> {
    /// No connection became available within `acquire_timeout`.
    #[error(
        "timed out after {waited:?} waiting for a connection (acquire_timeout); \
         {in_use} of max {max_size} in use, {waiters} other callers waiting{}",
        last_connect_error.as_ref().map(|e| format!("; last connect error: {e}")).unwrap_or_default()
    )]
    AcquireTimeout {
        /// How long the caller waited.
        waited: Duration,
        /// Connections in use when it gave up.
        in_use: usize,
        /// The pool's `max_size`.
        max_size: usize,
        /// Other callers still waiting.
        waiters: usize,
        /// The most recent connect failure, if connecting was part of the problem.
        #[source]
        last_connect_error: Option<ConnectFailure<E>>,
    },
    /// Connecting failed: a permanent error, or transient ones until `retry.max_attempts`.
    #[error("could not connect after {attempts} attempt(s): {cause}")]
    Connect {
        /// The last failure.
        #[source]
        cause: ConnectFailure<E>,
        /// Attempts made.
        attempts: u32,
    },
    /// The circuit breaker is open: the database failed repeatedly, so `get()`
    /// fails fast instead of piling up waiters.
    #[error(
        "circuit breaker open after repeated connect failures; next trial connect in {retry_in:?}{}",
        last_error.as_ref().map(|e| format!("; last connect error: {e}")).unwrap_or_default()
    )]
    CircuitOpen {
        /// Time until the breaker lets a trial connect through.
        retry_in: Duration,
        /// The failure that kept it open.
        #[source]
        last_error: Option<ConnectFailure<E>>,
    },
    /// The backend found the database unavailable without a connect
    /// failing (lido-postgres: its watchdog holds the server *not
    /// answering*): `get()` fails at once rather than queue behind
    /// connections stuck on it, until the backend sees it answer again.
    #[error("the database is unavailable: {cause}")]
    Unavailable {
        /// What the backend saw.
        #[source]
        cause: ConnectFailure<E>,
    },
    /// The pool was closed with `close()`.
    #[error("the pool is closed")]
    Closed,
}

impl<E: std::error::Error + 'static> Error<E> {
    /// The backend error behind this one, when there is one.
    pub fn backend(&self) -> Option<&E> {
        match self {
            Self::AcquireTimeout {
                last_connect_error: Some(c),
                ..
            }
            | Self::Connect { cause: c, .. }
            | Self::Unavailable { cause: c }
            | Self::CircuitOpen {
                last_error: Some(c),
                ..
            } => c.backend(),
            _ => None,
        }
    }

    /// Whether this is a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::AcquireTimeout { .. })
            || matches!(
                self,
                Self::Connect {
                    cause: ConnectFailure::Timeout(_),
                    ..
                }
            )
    }
}

impl<E: std::error::Error + 'static> Clone for Error<E> {
    fn clone(&self) -> Self {
        match self {
            Self::AcquireTimeout {
                waited,
                in_use,
                max_size,
                waiters,
                last_connect_error,
            } => Self::AcquireTimeout {
                waited: *waited,
                in_use: *in_use,
                max_size: *max_size,
                waiters: *waiters,
                last_connect_error: last_connect_error.clone(),
            },
            Self::Connect { cause, attempts } => Self::Connect {
                cause: cause.clone(),
                attempts: *attempts,
            },
            Self::CircuitOpen {
                retry_in,
                last_error,
            } => Self::CircuitOpen {
                retry_in: *retry_in,
                last_error: last_error.clone(),
            },
            Self::Unavailable { cause } => Self::Unavailable {
                cause: cause.clone(),
            },
            Self::Closed => Self::Closed,
        }
    }
}

/// A configuration that cannot work, with what to change.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// `max_size` was 0.
    #[error("max_size must be at least 1")]
    ZeroMaxSize,
    /// `min_idle` above `max_size`.
    #[error("min_idle ({min_idle}) must not exceed max_size ({max_size})")]
    MinIdleAboveMax {
        /// Given `min_idle`.
        min_idle: usize,
        /// Given `max_size`.
        max_size: usize,
    },
    /// `core_size` outside `max(1, min_idle)..=max_size`.
    #[error("core_size ({core_size}) must be between max(1, min_idle = {min_idle}) and max_size ({max_size})")]
    CoreSize {
        /// Given `core_size`.
        core_size: usize,
        /// Given `min_idle`.
        min_idle: usize,
        /// Given `max_size`.
        max_size: usize,
    },
    /// A duration that must be positive was zero.
    #[error("{field} must be greater than zero (leave it unset for the default)")]
    ZeroDuration {
        /// The setting.
        field: &'static str,
    },
    /// A number outside its range.
    #[error("{field} = {value} is out of range: use {range}")]
    OutOfRange {
        /// The setting.
        field: &'static str,
        /// Given value.
        value: f64,
        /// Allowed range.
        range: &'static str,
    },
    /// Adaptive sizing settings that cannot work (`Config::adaptive`).
    #[error("adaptive: {0}")]
    Adaptive(String),
    /// Lane limits that would leave a lane no connection.
    #[error("lanes: {0}")]
    Lanes(String),
    /// `retry.max_attempts` was 0.
    #[error("retry.max_attempts must be at least 1 (1 means no retry)")]
    ZeroAttempts,
    /// `retry.cap` below `retry.base`.
    #[error("retry.cap must be at least retry.base")]
    BackoffCapBelowBase,
    /// `build()` could not open the `min_idle` warm-up connections. The
    /// source is the pool's [`Error`], whose `backend()` is the driver error.
    #[error("warm-up failed: could not open min_idle connections: {message}")]
    WarmUp {
        /// The failure, as text.
        message: String,
        /// The typed failure (downcast to `Error<YourManager::Error>`).
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// `BlockingPool::build` was called on a thread that runs a tokio runtime.
    #[error("BlockingPool::build was called inside a tokio runtime; use the async Pool there")]
    InsideRuntime,
    /// The blocking pool's own runtime could not start.
    #[error("cannot start the blocking pool's runtime: {0}")]
    Runtime(String),
    /// `build()` was called outside a tokio runtime.
    #[error("lido pools need a tokio runtime: build the pool inside #[tokio::main] or a Runtime")]
    NoRuntime,
}

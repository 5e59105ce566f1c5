//! The [`Manager`] trait: how the pool creates, validates and recycles connections.

use std::future::Future;

/// Whether a failure is worth retrying.
///
/// The pool retries [`ErrorClass::Transient`] connect failures with capped,
/// jittered exponential backoff and reports [`ErrorClass::Permanent`] ones to
/// the caller at once (a wrong password does not get better by retrying).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The database may accept a later attempt (refused, reset, shutting down, too many clients).
    Transient,
    /// Retrying cannot help (bad credentials, unknown database, bad TLS configuration).
    Permanent,
}

/// Creates, validates and recycles connections for a [`Pool`](crate::Pool).
///
/// Every method returns `impl Future + Send`, so no future is boxed on the hot path.
///
/// ```
/// use lido_core::{ErrorClass, Manager};
///
/// struct Counter;
///
/// impl Manager for Counter {
///     type Connection = u64;
///     type Error = std::io::Error;
///
///     async fn connect(&self) -> Result<u64, std::io::Error> {
///         Ok(42)
///     }
///
///     async fn check(&self, _conn: &mut u64) -> Result<(), std::io::Error> {
///         Ok(())
///     }
///
///     fn classify(&self, err: &std::io::Error) -> ErrorClass {
///         match err.kind() {
///             std::io::ErrorKind::PermissionDenied => ErrorClass::Permanent,
///             _ => ErrorClass::Transient,
///         }
///     }
/// }
/// ```
pub trait Manager: Send + Sync + 'static {
    /// The connection type handed out by the pool.
    type Connection: Send + 'static;
    /// The backend's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Opens a new connection. The pool applies `connect_timeout` around it.
    fn connect(&self) -> impl Future<Output = Result<Self::Connection, Self::Error>> + Send;

    /// Validates a connection that sat idle longer than the validation bypass
    /// window (a ping such as `SELECT 1`). An error discards the connection.
    fn check(
        &self,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Cheap synchronous test run whenever a connection is returned or checked
    /// out: `true` discards it without a round trip (for example a closed socket).
    fn has_broken(&self, _conn: &mut Self::Connection) -> bool {
        false
    }

    /// Cheap synchronous test run on return: `true` makes the pool run
    /// [`Manager::reset`] (on a background task) before the connection is reused,
    /// for example when it was returned inside an open transaction.
    fn needs_reset(&self, _conn: &mut Self::Connection) -> bool {
        false
    }

    /// Brings a returned connection back to a clean state. An error discards it.
    fn reset(
        &self,
        _conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }

    /// Classifies a connect error as worth retrying or not. Defaults to transient.
    fn classify(&self, _err: &Self::Error) -> ErrorClass {
        ErrorClass::Transient
    }

    /// A way to stop the call running on `conn` from another task, for lane
    /// lending's preemption ([`LaneLimits::lend`](crate::LaneLimits::lend)):
    /// asked once when the connection is opened. The handle must return at
    /// once (start the cancel in the background), make the interrupted call
    /// fail with an error that says it was preempted, and leave the
    /// connection reporting [`has_broken`](Self::has_broken), so it is closed
    /// rather than handed on while a cancel may still arrive. `None`
    /// (default): the backend cannot preempt, and lent connections are only
    /// taken back when their lease ends.
    fn preempt_handle(&self, _conn: &Self::Connection) -> Option<PreemptHandle> {
        None
    }
}

/// Stops the call running on one connection (see [`Manager::preempt_handle`]).
pub type PreemptHandle = std::sync::Arc<dyn Fn() + Send + Sync>;

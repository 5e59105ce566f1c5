//! Typed errors: [`PgError`] for connections and queries, [`ConfigError`] for
//! settings, [`TlsError`] for TLS, [`PgBuildError`] for building a pool.
//! The bottom layer of the crate: it imports nothing else from it.
//!
//! Server errors display what the server said, as libpq shows it
//! (`ERROR 42P01: relation "nope" does not exist`, then `DETAIL` and
//! `HINT`); connect errors name the target tried (`127.0.0.1:5432: FATAL
//! 28P01: password authentication failed for user "app"`). No error here
//! ever carries a password: configuration errors name the setting, never
//! echo the connection string; lido adds no parameter values.

pub(crate) mod kinds;
pub(crate) mod server;

use std::time::Duration;

use lido_core::ErrorClass;
use tokio_postgres::error::SqlState;

pub(crate) use kinds::invalid;
pub use kinds::{ConfigError, ResetFailure, SessionMismatch, TlsError, Unsupported};
use server::{classify_postgres, fix_for, ServerText};

/// An error from a connection, a query, or a transaction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// From the server or the wire: SQL errors (see [`PgError::code`]),
    /// I/O, a closed connection. Displays as libpq does: `ERROR 42P01:
    /// relation "nope" does not exist`, then `; DETAIL: …` and `; HINT: …`
    /// when the server sent them.
    #[error("{}", ServerText(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// A TLS failure while connecting.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// No socket could be opened: connection refused, host unreachable,
    /// name not resolved, or `connect_timeout` passed.
    #[error("could not connect to {address}: {source}")]
    Connect {
        /// `host:port`, or the Unix socket path.
        address: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The server refused the session at startup for a reason only the
    /// settings (or the server's configuration) can fix: wrong password
    /// (28P01), no `pg_hba.conf` entry or other authorization failure
    /// (28000), unknown database (3D000).
    ///
    /// Displays as `127.0.0.1:5432: FATAL 28P01: password authentication
    /// failed for user "app"; to fix: …`.
    #[error("{address}: {}; to fix: {fix}", ServerText(.source))]
    Rejected {
        /// `host:port`, or the Unix socket path, where the session was refused.
        address: String,
        /// The server's error (see [`PgError::code`]).
        #[source]
        source: tokio_postgres::Error,
        /// What to change.
        fix: &'static str,
    },
    /// A session could not be started at `address` once its socket was
    /// open: the server's error (57P03 the database is starting up, 53300
    /// too many connections, ...), or an authentication, protocol or I/O
    /// failure during startup. Displays as `{address}: FATAL 53300: …`.
    #[error("{address}: {}", ServerText(.source))]
    Startup {
        /// `host:port`, or the Unix socket path.
        address: String,
        /// What failed (see [`PgError::code`] for the server's SQLSTATE).
        #[source]
        source: tokio_postgres::Error,
    },
    /// The server was reached but does not match `target_session_attrs`.
    #[error("{address}: {reason}, but target_session_attrs={wanted}")]
    WrongSession {
        /// `host:port`, or the Unix socket path.
        address: String,
        /// What the server is (for example [`SessionMismatch::ReadOnly`]).
        reason: SessionMismatch,
        /// The `target_session_attrs` value.
        wanted: &'static str,
    },
    /// Unusable settings.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A statement ran past its timeout; a cancel request was sent.
    #[error("query timed out after {timeout:?}; {}", if *.cancelled { "it was cancelled and the connection is still usable" } else { "the cancel could not be confirmed, so the connection will be closed" })]
    QueryTimeout {
        /// The limit that passed.
        timeout: Duration,
        /// Whether the server confirmed the cancel (the connection is reusable).
        cancelled: bool,
    },
    /// A transaction ran past its `timeout`. The running statement (if
    /// any) was cancelled on the server.
    #[error("transaction timed out after {timeout:?}; {}", if *.rolled_back { "it was rolled back" } else { "it must be rolled back (rollback(), or drop the Transaction)" })]
    TransactionTimeout {
        /// The limit that passed.
        timeout: Duration,
        /// Whether lido rolled the transaction back already
        /// (`transaction_with_retry` does; a [`Transaction`](crate::Transaction)
        /// used by hand is rolled back by `rollback()` or when dropped).
        rolled_back: bool,
    },
    /// A retrying transaction failed with a retryable error on every attempt.
    #[error("transaction failed after {attempts} attempt(s): {last}")]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Box<PgError>,
    },
    /// PgBouncer mode sends parameter types with each query, and this
    /// parameter's Rust type matched no PostgreSQL type lido knows.
    #[error("cannot infer the PostgreSQL type of parameter {index} (PgBouncer mode): use query_typed with an explicit type")]
    UnknownParamType {
        /// Zero-based parameter index.
        index: usize,
    },
    /// A cancel request could not be sent (the connection is then closed).
    #[error("could not send a cancel request to {address}: {source}")]
    Cancel {
        /// `host:port`, or the Unix socket path, of the cancelled session.
        address: String,
        /// The socket, TLS or protocol error.
        #[source]
        source: std::io::Error,
    },
    /// The operation is not available in this mode or on this platform.
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    /// A connection returned to the pool could not be cleaned for reuse
    /// (the pool closes it).
    #[error(transparent)]
    Reset(ResetFailure),
    /// No connection could be leased from the pool.
    #[error(transparent)]
    Pool(Box<lido_core::Error<PgError>>),
    /// An application error returned from a transaction closure.
    #[error(transparent)]
    App(Box<dyn std::error::Error + Send + Sync>),
    /// A cached query was asked of a statement that cannot be cached.
    #[error("this statement cannot be cached: {reason}; run it without the cache")]
    NotCacheable {
        /// Why (a write, a volatile function, a row lock, a parameter).
        reason: String,
    },
    /// The query behind a cached call failed (shared by every caller that
    /// waited for it).
    #[error("cached query failed: {0}")]
    Cached(String),
    /// A call asked for a query class the pool does not have.
    #[error(transparent)]
    UnknownClass(#[from] lido_core::UnknownClass),
    /// The server stopped answering without closing its sockets (its
    /// processes stopped, or the network drops everything): a connection
    /// waited without an answer and a fresh connect was not answered
    /// either. The pool's watchdog found it; `get()` fails fast with this
    /// (inside [`lido_core::Error::Connect`]) until the server answers again,
    /// and calls stuck on it end with it at once.
    #[error("{server} is not answering: no reply for {:.1} s (server stopped or network black hole); the pool fails fast until it answers again", .silent_for.as_secs_f64())]
    NotAnswering {
        /// `host:port`, or the Unix socket path.
        server: String,
        /// How long the server has been silent.
        silent_for: Duration,
    },
    /// The call ran on a connection lent from a higher priority lane's
    /// reserve and was cancelled on the server so that a caller of that
    /// priority, who had waited past the lending budget, could be served
    /// ([`LaneLimits::lend`](lido_core::LaneLimits::lend)). Nothing of an
    /// open transaction was committed. Retry it, or run it at a higher
    /// priority.
    #[error("preempted: this call ran on a connection reserved for a higher priority and was cancelled on the server for a caller of that priority who had waited past the lending budget (LaneLimits::lend); retry it later or at a higher priority")]
    Preempted,
}

impl From<lido_core::Error<PgError>> for PgError {
    fn from(e: lido_core::Error<PgError>) -> Self {
        Self::Pool(Box::new(e))
    }
}

/// The server function that raises 0A000 "cached plan must not change
/// result type" (plancache.c): the routine name is not translated, the
/// message is.
const CACHED_PLAN_ROUTINE: &str = "RevalidateCachedQuery";

impl PgError {
    /// Wraps an application error for a transaction closure.
    pub fn app(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::App(e.into())
    }

    /// The tokio-postgres error inside, for errors from the server or the wire.
    fn postgres(&self) -> Option<&tokio_postgres::Error> {
        match self {
            Self::Postgres(e)
            | Self::Rejected { source: e, .. }
            | Self::Startup { source: e, .. } => Some(e),
            _ => None,
        }
    }

    /// The SQLSTATE of a server error.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            Self::RetriesExhausted { last, .. } => last.code(),
            Self::Pool(p) => p.backend().and_then(PgError::code),
            _ => self.postgres().and_then(tokio_postgres::Error::code),
        }
    }

    /// The server's error details, when the server reported the error.
    pub fn as_db_error(&self) -> Option<&tokio_postgres::error::DbError> {
        self.postgres().and_then(tokio_postgres::Error::as_db_error)
    }

    /// 40001: the transaction lost a serialization conflict.
    pub fn is_serialization_failure(&self) -> bool {
        self.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
    }

    /// 40P01: the transaction was chosen as a deadlock victim.
    pub fn is_deadlock(&self) -> bool {
        self.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED)
    }

    /// 0A000 "cached plan must not change result type" (DDL changed a cached statement).
    pub fn is_cached_plan_stale(&self) -> bool {
        self.as_db_error().is_some_and(|db| {
            db.code() == &SqlState::FEATURE_NOT_SUPPORTED
                && db.routine() == Some(CACHED_PLAN_ROUTINE)
        })
    }

    /// Whether running the whole transaction again may succeed.
    pub fn is_retryable_transaction_error(&self) -> bool {
        self.is_serialization_failure() || self.is_deadlock() || self.is_cached_plan_stale()
    }

    /// A query or transaction timeout, or a call ended because the server
    /// stopped answering ([`PgError::NotAnswering`]: the pool's watchdog
    /// timed it out before the call's own limit).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Self::QueryTimeout { .. } | Self::TransactionTimeout { .. } | Self::NotAnswering { .. }
        )
    }

    /// The server stopped answering ([`PgError::NotAnswering`]), also when
    /// it is the reason a `get()` failed.
    pub fn is_not_answering(&self) -> bool {
        match self {
            Self::NotAnswering { .. } => true,
            Self::Pool(p) => p.backend().is_some_and(PgError::is_not_answering),
            _ => false,
        }
    }

    /// The connection is gone (closed by the server or the network).
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Postgres(e) | Self::Startup { source: e, .. } if e.is_closed())
    }

    /// Whether a connect failing with this error is worth retrying.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Tls(t) if t.is_permanent() => ErrorClass::Permanent,
            Self::Config(_)
            | Self::Unsupported(_)
            | Self::Reset(_)
            | Self::UnknownParamType { .. } => ErrorClass::Permanent,
            Self::Postgres(e)
            | Self::Rejected { source: e, .. }
            | Self::Startup { source: e, .. } => classify_postgres(e),
            Self::Pool(p) => p.backend().map_or(ErrorClass::Transient, PgError::class),
            _ => ErrorClass::Transient,
        }
    }

    /// What to change, for errors only the settings or the server's
    /// configuration can fix.
    pub fn fix(&self) -> Option<&'static str> {
        match self {
            Self::Rejected { fix, .. } => Some(fix),
            Self::Pool(p) => p.backend().and_then(PgError::fix),
            _ => None,
        }
    }

    /// A failed startup at `address`: [`PgError::Rejected`] with what to
    /// fix where the SQLSTATE says the settings are at fault, else
    /// [`PgError::Startup`].
    pub(crate) fn at_startup(e: tokio_postgres::Error, address: String) -> Self {
        match e.code().and_then(fix_for) {
            Some(fix) => Self::Rejected {
                address,
                source: e,
                fix,
            },
            None => Self::Startup { address, source: e },
        }
    }
}

/// Why a [`PgPool`](crate::PgPool) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgBuildError {
    /// Unusable connection settings.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Unusable TLS settings (certificate files, roots).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Unusable pool settings.
    #[error(transparent)]
    Pool(#[from] lido_core::BuildError),
    /// The startup hook or the first connection failed (`build()` only).
    #[error("startup failed: {0}")]
    Startup(#[source] PgError),
    /// A query-class rule names a class the pool does not have.
    #[error(transparent)]
    Classes(#[from] lido_core::UnknownClass),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_tls_errors_are_permanent() {
        let e = PgError::Config(ConfigError::UnknownParameter("x".into()));
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert_eq!(
            PgError::Tls(TlsError::UnknownCa).class(),
            ErrorClass::Permanent
        );
        let e = PgError::Tls(TlsError::Handshake("reset".into()));
        assert_eq!(e.class(), ErrorClass::Transient);
    }

    #[test]
    fn timeouts_are_timeouts() {
        let e = PgError::QueryTimeout {
            timeout: Duration::from_millis(200),
            cancelled: true,
        };
        assert!(e.is_timeout());
        assert!(e.to_string().contains("still usable"));
        assert!(!e.is_retryable_transaction_error());
        let e = PgError::NotAnswering {
            server: "db:5432".into(),
            silent_for: Duration::from_millis(1200),
        };
        assert!(e.is_timeout() && e.is_not_answering());
        assert_eq!(e.class(), ErrorClass::Transient);
        assert!(e
            .to_string()
            .starts_with("db:5432 is not answering: no reply for 1.2 s"));
        let pool = PgError::from(lido_core::Error::Connect {
            cause: lido_core::ConnectFailure::Backend(std::sync::Arc::new(e)),
            attempts: 1,
        });
        assert!(pool.is_not_answering() && !pool.is_timeout());
    }

    #[test]
    fn typed_variants_keep_their_class_and_text() {
        let e = PgError::from(Unsupported::PgBouncerNamedStatements);
        assert!(matches!(
            e,
            PgError::Unsupported(Unsupported::PgBouncerNamedStatements)
        ));
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(e.to_string().contains("PgBouncer in transaction mode"));
        let e = PgError::Reset(ResetFailure::NotIdleAfterRollback);
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert_eq!(
            e.to_string(),
            "the connection did not return to idle after ROLLBACK"
        );
        let e = PgError::Cancel {
            address: "127.0.0.1:5432".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(e.class(), ErrorClass::Transient);
        assert!(e
            .to_string()
            .starts_with("could not send a cancel request to 127.0.0.1:5432: "));
        let e = PgError::WrongSession {
            address: "/tmp/.s.PGSQL.5432".into(),
            reason: SessionMismatch::ReadOnly,
            wanted: "read-write",
        };
        assert_eq!(
            e.to_string(),
            "/tmp/.s.PGSQL.5432: the session is read-only, but target_session_attrs=read-write"
        );
    }
}

//! Typed errors: [`PgError`] for connections and queries, [`ConfigError`] for
//! settings, [`TlsError`] for TLS, [`PgBuildError`] for building a pool.
//!
//! No error here ever carries a password: configuration errors name the
//! setting, never echo the connection string.

use std::path::PathBuf;
use std::time::Duration;

use lido_core::ErrorClass;
use tokio_postgres::error::SqlState;

/// A connection string or environment setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key that libpq does not know (or lido does not support).
    #[error("unknown connection parameter `{0}`")]
    UnknownParameter(String),
    /// A known key with a value that cannot be used.
    #[error("invalid value for `{key}`: {reason}")]
    InvalidValue {
        /// The parameter.
        key: &'static str,
        /// Why (never the value of `password`).
        reason: String,
    },
    /// The string is neither a `postgres://` URL nor `key=value` pairs.
    #[error("malformed connection string: {0}")]
    Syntax(String),
    /// `hostaddr`, `host` and `port` lists of different lengths.
    #[error("{0}")]
    HostList(String),
}

/// A [`ConfigError::InvalidValue`] for `key`.
pub(crate) fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        key,
        reason: reason.into(),
    }
}

/// A TLS failure, typed so callers can tell a wrong CA from a wrong name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// `sslmode` requires TLS but the server answered that it does not support it.
    #[error("the server does not support TLS, but sslmode={sslmode} requires it (enable ssl on the server or lower sslmode)")]
    ServerRefusedTls {
        /// The sslmode in force.
        sslmode: &'static str,
    },
    /// The server certificate is not signed by a trusted CA (`sslrootcert`).
    #[error("the server certificate is not signed by a trusted CA (check sslrootcert)")]
    UnknownCa,
    /// The server certificate does not name the host connected to (sslmode=verify-full).
    #[error("the server certificate is not valid for host `{host}` (sslmode=verify-full checks the name)")]
    HostnameMismatch {
        /// The host name checked.
        host: String,
    },
    /// The server certificate has expired or is not valid yet.
    #[error("the server certificate has expired or is not yet valid")]
    CertificateExpired,
    /// The handshake failed for another reason.
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
    /// A certificate or key file could not be read or holds nothing usable.
    #[error("cannot use {what} file {}: {reason}", path.display())]
    File {
        /// `sslrootcert`, `sslcert` or `sslkey`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No trusted roots: no `sslrootcert` and no system roots could be loaded.
    #[error(
        "no trusted root certificates: set sslrootcert (none could be loaded from the system)"
    )]
    NoRoots,
    /// rustls refused the configuration (for example a key that does not match the certificate).
    #[error("invalid TLS configuration: {0}")]
    Config(String),
}

impl TlsError {
    /// Whether the configuration (not the network) is at fault.
    fn is_permanent(&self) -> bool {
        !matches!(self, Self::Handshake(_))
    }
}

/// An error from a connection, a query, or a transaction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// From the server or the wire: SQL errors (see [`PgError::code`]),
    /// authentication, I/O, a closed connection.
    #[error(transparent)]
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
    #[error("the server refused the connection: {}; to fix: {fix}", db_message(.source))]
    Rejected {
        /// The server's error (see [`PgError::code`]).
        #[source]
        source: tokio_postgres::Error,
        /// What to change.
        fix: &'static str,
    },
    /// The server was reached but does not match `target_session_attrs`.
    #[error("{address}: {reason}, but target_session_attrs={wanted}")]
    WrongSession {
        /// `host:port`, or the Unix socket path.
        address: String,
        /// What the server is (for example "the session is read-only").
        reason: &'static str,
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
    #[error("could not send a cancel request: {0}")]
    Cancel(String),
    /// The operation is not available in this mode.
    #[error("{0}")]
    Unsupported(&'static str),
    /// No connection could be leased from the pool.
    #[error(transparent)]
    Pool(Box<lido_core::Error<PgError>>),
    /// An application error returned from a transaction closure.
    #[error(transparent)]
    App(Box<dyn std::error::Error + Send + Sync>),
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

    /// The SQLSTATE of a server error.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            Self::Postgres(e) | Self::Rejected { source: e, .. } => e.code(),
            Self::RetriesExhausted { last, .. } => last.code(),
            Self::Pool(p) => p.backend().and_then(PgError::code),
            _ => None,
        }
    }

    /// The server's error details, when the server reported the error.
    pub fn as_db_error(&self) -> Option<&tokio_postgres::error::DbError> {
        match self {
            Self::Postgres(e) | Self::Rejected { source: e, .. } => e.as_db_error(),
            _ => None,
        }
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

    /// A query or transaction timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Self::QueryTimeout { .. } | Self::TransactionTimeout { .. }
        )
    }

    /// The connection is gone (closed by the server or the network).
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Postgres(e) if e.is_closed())
    }

    /// Whether a connect failing with this error is worth retrying.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Tls(t) if t.is_permanent() => ErrorClass::Permanent,
            Self::Config(_) | Self::Unsupported(_) | Self::UnknownParamType { .. } => {
                ErrorClass::Permanent
            }
            Self::Postgres(e) | Self::Rejected { source: e, .. } => classify_postgres(e),
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

    /// Wraps a connect error from the server with what to fix, where the
    /// SQLSTATE says the settings are at fault.
    pub(crate) fn at_startup(e: tokio_postgres::Error) -> Self {
        match e.code().and_then(fix_for) {
            Some(fix) => Self::Rejected { source: e, fix },
            None => Self::Postgres(e),
        }
    }
}

/// The server's message of a server error ("" otherwise).
fn db_message(e: &tokio_postgres::Error) -> &str {
    e.as_db_error().map_or("", |db| db.message())
}

/// What to fix for a startup error that retrying cannot cure.
fn fix_for(code: &SqlState) -> Option<&'static str> {
    Some(match code.code() {
        "28P01" => "check the user name and password (password, PGPASSWORD, DATABASE_URL)",
        "28000" => "check the user name and password, and that the server's pg_hba.conf has a line for this user, database, client address and sslmode (host/hostssl/hostnossl)",
        "3D000" => "create the database (CREATE DATABASE) or fix dbname / PGDATABASE",
        _ => return None,
    })
}

/// Classifies a tokio-postgres error: by SQLSTATE when the server sent
/// one; else a closed connection or a socket error is transient, and
/// everything tokio-postgres itself refused (configuration such as a
/// missing password, authentication such as required channel binding or a
/// bad SCRAM signature, unexpected messages) is permanent.
fn classify_postgres(e: &tokio_postgres::Error) -> ErrorClass {
    match e.code() {
        Some(code) => classify_code(code),
        None if e.is_closed() || is_network(e) => ErrorClass::Transient,
        None => ErrorClass::Permanent,
    }
}

/// Whether the error's cause is a socket error (not a protocol or
/// authentication failure reported through `io::Error`, which uses the
/// InvalidInput/InvalidData kinds).
fn is_network(e: &tokio_postgres::Error) -> bool {
    use std::io::ErrorKind as K;
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
    io.is_some_and(|io| !matches!(io.kind(), K::InvalidInput | K::InvalidData | K::Unsupported))
}

/// Shutdowns, overload and lost races are transient; authentication,
/// unknown database, and SQL errors are permanent.
fn classify_code(code: &SqlState) -> ErrorClass {
    let transient = [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::CONNECTION_FAILURE,
        SqlState::CONNECTION_EXCEPTION,
        SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
        SqlState::OUT_OF_MEMORY,
        SqlState::DISK_FULL,
        SqlState::INSUFFICIENT_RESOURCES,
        SqlState::QUERY_CANCELED,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::LOCK_NOT_AVAILABLE,
    ];
    if transient.contains(code) || code.code().starts_with("08") {
        ErrorClass::Transient
    } else {
        // 28P01 / 28000 authentication, 3D000 unknown database, 42xxx SQL
        // errors in a hook, and anything else the server refuses outright.
        ErrorClass::Permanent
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
    fn sqlstates_classify_for_retry() {
        for transient in [
            "57P01", "57P02", "57P03", "53300", "53000", "08006", "08001", "40001",
        ] {
            let code = SqlState::from_code(transient);
            assert_eq!(classify_code(&code), ErrorClass::Transient, "{transient}");
        }
        for permanent in ["28P01", "28000", "3D000", "42501", "42P01"] {
            let code = SqlState::from_code(permanent);
            assert_eq!(classify_code(&code), ErrorClass::Permanent, "{permanent}");
            let fixable = fix_for(&code).is_some();
            assert_eq!(fixable, permanent.starts_with("28") || permanent == "3D000");
        }
        assert!(fix_for(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
            .is_some_and(|f| f.contains("pg_hba.conf")));
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
    }
}

//! The typed reasons inside [`PgError`](crate::PgError)'s variants and the
//! settings errors: [`ConfigError`], [`TlsError`], [`Unsupported`],
//! [`SessionMismatch`] and [`ResetFailure`].

use std::path::PathBuf;

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
    /// No host to connect to.
    #[error("no hosts configured")]
    NoHosts,
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
    #[error(
        "the server certificate is not valid for host `{host}`{} (sslmode=verify-full checks the name)",
        names_listed(presented)
    )]
    HostnameMismatch {
        /// The host name checked.
        host: String,
        /// The names the certificate lists (DNS names and IP addresses),
        /// when the TLS library reported them.
        presented: Vec<String>,
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
    pub(crate) fn is_permanent(&self) -> bool {
        !matches!(self, Self::Handshake(_))
    }
}

/// An operation lido does not offer in this mode or on this platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unsupported {
    /// `prepare_cached` in PgBouncer transaction mode
    /// ([`PgPoolBuilder::pgbouncer`](crate::PgPoolBuilder::pgbouncer)):
    /// named prepared statements do not survive PgBouncer's server switches.
    #[error("named prepared statements do not work through PgBouncer in transaction mode")]
    PgBouncerNamedStatements,
    /// A Unix-socket host on a platform without Unix sockets.
    #[error("Unix sockets need a Unix platform")]
    UnixSockets,
    /// The blocking API was called from a thread that runs a tokio runtime.
    #[error(
        "lido's blocking API was called from inside a tokio runtime; use the async PgPool there"
    )]
    BlockingInsideRuntime,
}

/// Why a server does not match `target_session_attrs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionMismatch {
    /// `read-write` wanted; the session is read-only.
    #[error("the session is read-only")]
    ReadOnly,
    /// `read-only` wanted; the session is read-write.
    #[error("the session is not read-only")]
    NotReadOnly,
    /// `primary` wanted; the server is a standby.
    #[error("the server is in hot standby mode")]
    InHotStandby,
    /// `standby` or `prefer-standby` wanted; the server is a primary.
    #[error("the server is not in hot standby mode")]
    NotInHotStandby,
    /// The check query failed.
    #[error("the session check failed")]
    CheckFailed,
    /// The check query returned no row.
    #[error("the session check returned no row")]
    CheckReturnedNoRow,
}

/// Why a connection returned to the pool could not be cleaned for reuse
/// (the pool then closes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResetFailure {
    /// lido lost track of the protocol state (an answer it did not expect).
    #[error("the connection's protocol state is unknown")]
    UnknownProtocolState,
    /// The server still reports a transaction after ROLLBACK.
    #[error("the connection did not return to idle after ROLLBACK")]
    NotIdleAfterRollback,
}

/// ` (it names a, b)`, or nothing when the names are unknown.
fn names_listed(presented: &[String]) -> String {
    if presented.is_empty() {
        String::new()
    } else {
        format!(" (it names {})", presented.join(", "))
    }
}

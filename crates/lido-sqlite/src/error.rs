//! Typed errors: [`Error`] from every call, [`ConnectError`] from opening connections.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lido_core::ErrorClass;
use rusqlite::ErrorCode;

/// Why a connection could not be opened, set up or checked.
///
/// This is the [`lido_core::Manager::Error`] of [`SqliteManager`](crate::SqliteManager),
/// so it also appears inside [`Error::Pool`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The database file's directory does not exist (SQLite would say only "unable to open").
    #[error("cannot open SQLite database {target}: directory {} does not exist", dir.display())]
    MissingDirectory {
        /// The database being opened.
        target: String,
        /// The missing directory.
        dir: PathBuf,
    },
    /// The file exists but is not a SQLite database (or is encrypted).
    #[error("{target} is not a SQLite database (or is encrypted): {source}")]
    NotADatabase {
        /// The database being opened.
        target: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// `sqlite3_open_v2` failed (permissions, a directory given as the path, ...).
    #[error("cannot open SQLite database {target}: {source}")]
    Open {
        /// The database being opened.
        target: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A pragma or the after-connect hook failed on a fresh connection.
    #[error("setting up a connection to {target} failed at {step}: {source}")]
    Setup {
        /// The database being opened.
        target: String,
        /// What was being done (`journal_mode`, `pragma cache_size`, `after_connect hook`, ...).
        step: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The validation query (`SELECT 1`) or a reset (`ROLLBACK`) failed.
    #[error("connection check failed: {0}")]
    Check(#[source] rusqlite::Error),
    /// A check was cancelled and the connection went with it.
    #[error("the connection was lost during a cancelled check")]
    Lost,
    /// A hook panicked while setting up a connection.
    #[error("a connection hook panicked: {0}")]
    Panic(String),
    /// The blocking task that opened the connection failed (runtime shutting down).
    #[error("the blocking open task failed: {0}")]
    Join(#[source] tokio::task::JoinError),
    /// The pool this connection was for has been closed.
    #[error("the pool was closed while the connection was being opened")]
    Closed,
    /// The [`SqliteFiles`](crate::SqliteFiles) connection cap stayed full for the whole wait.
    #[error("all {cap} connections allowed across database files are in use (SqliteFiles max_connections)")]
    CapReached {
        /// The global cap.
        cap: usize,
    },
}

impl ConnectError {
    /// SQLite's primary result code, when SQLite reported this error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::NotADatabase { source, .. }
            | Self::Open { source, .. }
            | Self::Setup { source, .. }
            | Self::Check(source) => source.sqlite_error_code(),
            _ => None,
        }
    }

    /// Whether retrying may help: busy or locked databases and a full cap
    /// are transient; missing directories, non-databases, permissions and
    /// panicking hooks are permanent.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::MissingDirectory { .. }
            | Self::NotADatabase { .. }
            | Self::Panic(_)
            | Self::Closed => ErrorClass::Permanent,
            Self::Lost | Self::Join(_) | Self::CapReached { .. } => ErrorClass::Transient,
            _ => match self.code() {
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) | None => {
                    ErrorClass::Transient
                }
                Some(_) => ErrorClass::Permanent,
            },
        }
    }
}

/// Every error a `lido-sqlite` call can return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// SQLite failed while running your closure, a commit or a rollback.
    #[error("SQLite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The writer connection could not be opened or reopened.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// No reader connection could be leased (timeout, connect failure, closed pool).
    #[error("could not lease a reader connection: {0}")]
    Pool(#[from] lido_core::Error<ConnectError>),
    /// The reader pool settings are invalid.
    #[error("invalid reader pool settings: {0}")]
    Build(#[from] lido_core::BuildError),
    /// An option is invalid; the message says which and how to fix it.
    #[error("invalid lido-sqlite option: {0}")]
    Config(String),
    /// The once-per-pool startup hook failed; the pool was not built.
    #[error("startup hook failed: {0}")]
    Startup(#[source] rusqlite::Error),
    /// A write waited in the writer queue (or, for an in-memory database,
    /// for the database lock) longer than `acquire_timeout`. It did not run.
    #[error("timed out after {waited:?} waiting for the writer lane (acquire_timeout); {queued} write(s) queued")]
    WriterTimeout {
        /// How long the caller waited.
        waited: Duration,
        /// Writes still queued when it gave up.
        queued: usize,
    },
    /// Your closure panicked. Any transaction it had open was rolled back and
    /// the connection stays usable.
    #[error("the closure panicked (its transaction was rolled back): {message}")]
    Panic {
        /// The panic message.
        message: String,
    },
    /// A blocking task was cancelled (the runtime is shutting down).
    #[error("blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The pool was closed.
    #[error("the SQLite pool is closed")]
    Closed,
    /// The closure returned with a transaction still open. It was rolled
    /// back: use [`SqlitePool::transaction`](crate::SqlitePool::transaction) to commit.
    #[error("the closure returned with a transaction still open; it was rolled back")]
    TransactionLeftOpen,
    /// The closure gave up with [`abort`](crate::abort); the transaction was rolled back.
    #[error("aborted: {0}")]
    Aborted(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// `PRAGMA quick_check` or `integrity_check` found problems.
    #[error("integrity check found {} problem(s): {}", .0.len(), .0.join("; "))]
    Integrity(Vec<String>),
    /// A [`blocking`](crate::blocking) call was made on a tokio runtime thread.
    #[error(
        "the blocking API was called from inside a tokio runtime; use the async SqlitePool there"
    )]
    InsideRuntime,
    /// A thread or runtime could not be started.
    #[error("could not start a thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The read ran on a reader lent from a higher priority lane's reserve
    /// and was interrupted so that a caller of that priority, who had
    /// waited past the lending budget, could be served
    /// ([`LaneLimits::lend`](lido_core::LaneLimits::lend)). Retry it, or
    /// run it at a higher priority.
    #[error("preempted: this read ran on a reader reserved for a higher priority and was interrupted for a caller of that priority who had waited past the lending budget (LaneLimits::lend); retry it later or at a higher priority")]
    Preempted,
    /// A cached read this call joined (another caller ran the identical
    /// statement) failed with this error.
    #[error(transparent)]
    Shared(Arc<Error>),
    /// The statement cannot go through the result cache; the reason says why.
    #[error("not cacheable: {reason}")]
    NotCacheable {
        /// Why.
        reason: String,
    },
    /// The call ran past its query class's deadline (waiting included) and
    /// was stopped: it did not start, or its statement was interrupted
    /// (`sqlite3_interrupt`); a transaction was rolled back.
    #[error("the call ran past the deadline of query class {class:?} ({deadline:?}, waiting included) and was stopped; raise the class's deadline or make the work smaller")]
    Deadline {
        /// The class.
        class: String,
        /// Its deadline.
        deadline: Duration,
    },
}

impl Error {
    /// SQLite's primary result code behind this error, if any.
    pub fn sqlite_code(&self) -> Option<ErrorCode> {
        match self {
            Self::Sqlite(e) | Self::Startup(e) => e.sqlite_error_code(),
            Self::Connect(e) => e.code(),
            Self::Pool(e) => e.backend().and_then(ConnectError::code),
            _ => None,
        }
    }

    /// Whether SQLite said `SQLITE_BUSY` or `SQLITE_LOCKED`.
    pub fn is_busy(&self) -> bool {
        matches!(
            self.sqlite_code(),
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
        )
    }

    /// Whether a wait ran out (reader acquire or writer queue).
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::WriterTimeout { .. } | Self::Deadline { .. } => true,
            Self::Pool(e) => e.is_timeout(),
            _ => false,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps your own error so a closure can return it as a `rusqlite::Error`:
/// the transaction rolls back and the call returns [`Error::Aborted`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use lido_sqlite::{abort, Error, Mode, SqlitePool};
///
/// let db = SqlitePool::memory("abort_doc").build().await?;
/// let err = db
///     .transaction(Mode::Immediate, |tx| -> rusqlite::Result<()> {
///         tx.execute_batch("CREATE TABLE t(x)")?;
///         Err(abort("not today"))
///     })
///     .await
///     .unwrap_err();
/// assert!(matches!(err, Error::Aborted(_)));
/// # Ok(()) }
/// ```
pub fn abort(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(Abort(err.into())))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Abort(Box<dyn std::error::Error + Send + Sync>);

/// Turns a closure's error into [`Error`], unwrapping [`abort`].
pub(crate) fn from_closure(e: rusqlite::Error) -> Error {
    match e {
        rusqlite::Error::ToSqlConversionFailure(inner) => match inner.downcast::<Abort>() {
            Ok(a) => Error::Aborted(a.0),
            Err(other) => Error::Sqlite(rusqlite::Error::ToSqlConversionFailure(other)),
        },
        other => Error::Sqlite(other),
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

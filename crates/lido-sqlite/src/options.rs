//! [`Builder`]: where the database is and how every connection is set up.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::Connection;

use crate::cap::Cap;
use crate::error::{Error, Result};

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// A database file (created if missing, unless [`Builder::create_if_missing`] is off).
    File(PathBuf),
    /// A named in-memory database shared by every connection of the pool
    /// (`file:NAME?mode=memory&cache=shared`). It lives as long as the pool.
    Memory(String),
}

impl Source {
    /// A readable name for logs and errors.
    pub fn describe(&self) -> String {
        match self {
            Self::File(p) => p.display().to_string(),
            Self::Memory(name) => format!("in-memory database {name:?}"),
        }
    }

    pub(crate) fn is_memory(&self) -> bool {
        matches!(self, Self::Memory(_))
    }
}

/// Which connection a hook is setting up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The single writer connection.
    Writer,
    /// A read-only connection of the reader pool.
    Reader,
}

/// `PRAGMA journal_mode` for database files (in-memory databases ignore it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JournalMode {
    /// Write-ahead log: readers never block the writer nor the writer readers (default).
    #[default]
    Wal,
    /// Rollback journal, deleted after each transaction.
    Delete,
    /// Rollback journal, truncated after each transaction.
    Truncate,
    /// Rollback journal, header zeroed after each transaction.
    Persist,
    /// Rollback journal kept in memory.
    Memory,
    /// No journal: no rollback, no crash safety.
    Off,
}

impl JournalMode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Wal => "wal",
            Self::Delete => "delete",
            Self::Truncate => "truncate",
            Self::Persist => "persist",
            Self::Memory => "memory",
            Self::Off => "off",
        }
    }
}

/// `PRAGMA synchronous`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// No fsync.
    Off,
    /// fsync at checkpoints: durable across crashes of the application, safe with WAL (default).
    #[default]
    Normal,
    /// fsync at every commit.
    Full,
    /// Like `Full`, plus the directory after unlinking a journal.
    Extra,
}

impl Synchronous {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Off => "OFF",
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
            Self::Extra => "EXTRA",
        }
    }
}

/// A hook run on every new connection, after the pragmas.
pub type AfterConnect = Arc<dyn Fn(&Connection, Role) -> rusqlite::Result<()> + Send + Sync>;
/// A hook run once per pool on the writer connection before anything else.
pub type Startup = Arc<dyn Fn(&mut Connection) -> rusqlite::Result<()> + Send + Sync>;

/// Configures and builds a [`SqlitePool`](crate::SqlitePool); finish with
/// [`build`](Self::build).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use lido_sqlite::{Synchronous, SqlitePool};
///
/// let dir = tempfile::tempdir()?;
/// let db = SqlitePool::file(dir.path().join("app.db"))
///     .readers(4)
///     .synchronous(Synchronous::Normal)
///     .busy_timeout(Duration::from_secs(2))
///     .pragma("cache_size", -16_000)
///     .on_startup(|conn| conn.execute_batch("CREATE TABLE IF NOT EXISTS kv(k TEXT PRIMARY KEY, v TEXT)"))
///     .build()
///     .await?;
/// db.write(|c| c.execute("INSERT INTO kv VALUES ('a', '1')", [])).await?;
/// let v: String = db.read(|c| c.query_row("SELECT v FROM kv WHERE k = 'a'", [], |r| r.get(0))).await?;
/// assert_eq!(v, "1");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Builder {
    pub(crate) source: Source,
    pub(crate) journal_mode: JournalMode,
    pub(crate) synchronous: Synchronous,
    pub(crate) busy_timeout: Duration,
    pub(crate) foreign_keys: bool,
    pub(crate) create: bool,
    pub(crate) pragmas: Vec<(String, Value)>,
    pub(crate) after_connect: Option<AfterConnect>,
    pub(crate) on_startup: Option<Startup>,
    pub(crate) quick_check_on_open: bool,
    pub(crate) readers: lido_core::Config,
    pub(crate) cap: Option<Arc<Cap>>,
    pub(crate) classes: lido_core::Classes,
    pub(crate) cache: Option<crate::cache::config::CacheConfig>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("source", &self.source)
            .field("journal_mode", &self.journal_mode)
            .field("synchronous", &self.synchronous)
            .field("busy_timeout", &self.busy_timeout)
            .field("foreign_keys", &self.foreign_keys)
            .field("pragmas", &self.pragmas)
            .field("quick_check_on_open", &self.quick_check_on_open)
            .field("readers", &self.readers)
            .finish_non_exhaustive()
    }
}

fn default_readers() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(4)
        .clamp(2, 16)
}

impl Builder {
    /// Starts from defaults: WAL, `synchronous=NORMAL`, `busy_timeout` 5 s,
    /// foreign keys on, one reader per CPU (2 to 16), lido-core's pool defaults.
    pub fn new(source: Source) -> Self {
        let readers = lido_core::Config {
            max_size: default_readers(),
            min_idle: 1,
            ..lido_core::Config::default()
        };
        Self {
            source,
            journal_mode: JournalMode::Wal,
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            foreign_keys: true,
            create: true,
            pragmas: Vec::new(),
            after_connect: None,
            on_startup: None,
            quick_check_on_open: false,
            readers,
            cap: None,
            classes: lido_core::Classes::default(),
            cache: None,
        }
    }

    /// A database file.
    pub fn file(path: impl AsRef<Path>) -> Self {
        Self::new(Source::File(path.as_ref().to_path_buf()))
    }

    /// A named in-memory database shared by the pool's connections. Names may
    /// use ASCII letters, digits, `_`, `-` and `.`. Two pools with the same
    /// name in one process share the database *and its writer lane*, so they
    /// never meet `SQLITE_LOCKED`; the shared writer connection keeps the
    /// settings (pragmas, hooks, `busy_timeout`) of the pool that opened it,
    /// while each pool's readers and timeouts follow its own builder.
    pub fn memory(name: impl Into<String>) -> Self {
        Self::new(Source::Memory(name.into()))
    }

    /// An in-memory database with a fresh, process-unique name.
    pub fn memory_unique() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Self::memory(format!("lido-{}-{n}", std::process::id()))
    }

    /// Where the database lives.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// `PRAGMA journal_mode` set by the writer on files (default [`JournalMode::Wal`]).
    pub fn journal_mode(mut self, mode: JournalMode) -> Self {
        self.journal_mode = mode;
        self
    }

    /// `PRAGMA synchronous` on every connection (default [`Synchronous::Normal`]).
    pub fn synchronous(mut self, mode: Synchronous) -> Self {
        self.synchronous = mode;
        self
    }

    /// How long SQLite retries a locked database before `SQLITE_BUSY` (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// `PRAGMA foreign_keys` (default on).
    pub fn foreign_keys(mut self, on: bool) -> Self {
        self.foreign_keys = on;
        self
    }

    /// Create the file when missing (default on). Off: a missing file is an error.
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Adds `PRAGMA name = value` for every connection, after lido's own pragmas.
    pub fn pragma(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.pragmas.push((name.into(), value.into()));
        self
    }

    /// Runs `hook` on every new connection (writer and readers) after the pragmas.
    /// An error fails that connect.
    pub fn after_connect(
        mut self,
        hook: impl Fn(&Connection, Role) -> rusqlite::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.after_connect = Some(Arc::new(hook));
        self
    }

    /// Runs `hook` once when the pool is built, on the writer lane, before
    /// any reader opens: create or migrate the schema, check a version.
    /// An error fails [`build`](Self::build) with [`Error::Startup`]. (A pool
    /// joining an open in-memory database runs its hook too, on the shared lane.)
    pub fn on_startup(
        mut self,
        hook: impl Fn(&mut Connection) -> rusqlite::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.on_startup = Some(Arc::new(hook));
        self
    }

    /// Runs `PRAGMA quick_check` on the writer connection when the pool is
    /// built, before the startup hook (default off: it reads every page, so
    /// it takes time on big files). A damaged database then fails
    /// [`build`](Self::build) with [`Error::Integrity`] instead of failing
    /// queries later. [`SqlitePool::quick_check`](crate::SqlitePool::quick_check)
    /// runs the same check on demand.
    pub fn quick_check_on_open(mut self, on: bool) -> Self {
        self.quick_check_on_open = on;
        self
    }

    /// Most reader connections open at once.
    pub fn readers(mut self, max: usize) -> Self {
        self.readers.max_size = max;
        self.readers.min_idle = self.readers.min_idle.min(max);
        self
    }

    /// Capacity per priority lane for reads: readers kept for higher
    /// lanes and a share cap per lane (see [`lido_core::LaneLimits`]), for
    /// [`SqlitePool::read_with_priority`](crate::SqlitePool::read_with_priority).
    /// Checked against the readers' `max_size` when the pool is built.
    pub fn reader_lanes(mut self, lanes: lido_core::LaneLimits) -> Self {
        self.readers.lanes = lanes;
        self
    }

    /// Every lido-core setting of the reader pool at once. `acquire_timeout`
    /// also bounds the wait in the writer queue; `max_lifetime` and
    /// `validation_bypass` also apply to the writer connection.
    pub fn reader_config(mut self, config: lido_core::Config) -> Self {
        self.readers = config;
        self
    }

    /// Longest a call waits for a reader or for its turn in the writer queue.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.readers.acquire_timeout = timeout;
        self
    }

    /// Connections (writer included) older than this are closed and reopened (`None`: never).
    pub fn max_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.readers.max_lifetime = lifetime;
        self
    }

    /// The query classes [`SqlitePool::class`](crate::SqlitePool::class)
    /// serves (default: `realtime`, `standard`, `analytics`, `batch`).
    pub fn classes(mut self, classes: lido_core::Classes) -> Self {
        self.classes = classes;
        self
    }

    /// Checks the options without opening anything.
    pub fn validate(&self) -> Result<()> {
        self.classes
            .validate()
            .map_err(|e| Error::Config(format!("query classes: {e}")))?;
        if let Source::Memory(name) = &self.source {
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !ok {
                return Err(Error::Config(format!(
                    "in-memory database name {name:?} must be non-empty ASCII letters, digits, '_', '-' or '.'"
                )));
            }
        }
        for (name, _) in &self.pragmas {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(Error::Config(format!(
                    "pragma name {name:?} must be ASCII letters, digits or '_'"
                )));
            }
        }
        self.readers.validate()?;
        Ok(())
    }
}

//! # lido-sqlite
//!
//! SQLite for lido, built on [`rusqlite`] (bundled SQLite) and [`lido_core`]:
//!
//! * **One writer lane, parallel readers.** Writes run on a single writer
//!   connection on its own thread, strictly in arrival order, so writers in
//!   this process never fight over the write lock and never see
//!   `SQLITE_BUSY` from each other; every transaction mode takes the lock at
//!   `BEGIN` (see [`Mode`] for what that means for `Deferred`). Pools on the
//!   same in-memory name share one lane. Reads run on read-only connections
//!   from a [`lido_core::Pool`] (fair waiters, timeouts, health checks,
//!   recycling), leased and used on reader threads that take reads from
//!   one FIFO queue.
//! * **Never on the executor.** Closures run on reader threads (reads) or
//!   the writer thread (writes). A panic rolls back and comes back as
//!   [`Error::Panic`]; the connection stays usable.
//! * **Transactions** in [`Mode::Deferred`], [`Mode::Immediate`] and
//!   [`Mode::Exclusive`], committed on `Ok`, rolled back on `Err` or panic,
//!   with nested [`savepoint`]s.
//! * **Per-connection setup**: WAL for files, `synchronous` (NORMAL by
//!   default), `busy_timeout`, `foreign_keys`, your pragmas, an
//!   after-connect hook, and a once-per-pool startup hook for the schema.
//! * **Shared in-memory databases** (`file:NAME?mode=memory&cache=shared`)
//!   that every connection of the pool sees, kept alive while the pool lives.
//! * [`SqliteFiles`]: one pool per database file, opened on first use, closed
//!   when idle, under a global cap on open connections.
//! * [`blocking::BlockingPool`]: the same from plain threads, no runtime needed.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use lido_sqlite::{Mode, SqlitePool};
//!
//! let dir = tempfile::tempdir()?;
//! let db = SqlitePool::file(dir.path().join("app.db"))
//!     .on_startup(|c| c.execute_batch("CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT)"))
//!     .build()
//!     .await?;
//!
//! db.write(|c| c.execute("INSERT INTO notes(body) VALUES (?1)", ["hello"])).await?;
//! let n = db
//!     .transaction(Mode::Immediate, |tx| {
//!         tx.execute("INSERT INTO notes(body) VALUES ('world')", [])?;
//!         tx.query_row("SELECT count(*) FROM notes", [], |r| r.get::<_, i64>(0))
//!     })
//!     .await?;
//! assert_eq!(n, 2);
//! let first: String = db
//!     .read(|c| c.query_row("SELECT body FROM notes ORDER BY id LIMIT 1", [], |r| r.get(0)))
//!     .await?;
//! assert_eq!(first, "hello");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// Layers, bottom up (a module imports only from those below it): error,
// exec, cap -> options -> connect -> manager (readers), writer (the lane) ->
// reads (the reader threads), database -> pool -> blocking, files, http.
pub mod blocking;
mod cache;
mod cap;
pub mod classes;
mod connect;
mod database;
mod deadline;
mod error;
mod exec;
mod files;
#[cfg(feature = "http")]
pub mod http;
mod manager;
mod options;
mod pool;
mod reads;
mod reply;
mod ticket;
mod writer;

pub use cache::config::{CacheConfig, CacheStats};
pub use cache::store::Rows;
pub use cache::CachedRead;
pub use classes::SqliteClassPool;
pub use error::{abort, ConnectError, Error, Result};
pub use exec::{savepoint, Mode};
pub use files::{FilesConfig, SqliteFiles};
pub use lido_core;
pub use manager::{SqliteConn, SqliteManager};
pub use options::{AfterConnect, Builder, JournalMode, Role, Source, Startup, Synchronous};
pub use pool::SqlitePool;
pub use rusqlite;

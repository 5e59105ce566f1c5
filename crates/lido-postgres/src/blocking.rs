//! [`BlockingPgPool`]: the PostgreSQL pool for programs without an async
//! runtime. It owns a small tokio runtime (lido-core's
//! [`BlockingPool`]); `get()` and every query block the calling thread.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use lido_postgres::blocking::BlockingPgPool;
//! use lido_postgres::{PgConfig, PgPool, TxOptions};
//!
//! let pool = BlockingPgPool::build(PgPool::builder(PgConfig::from_env()?).max_size(8))?;
//! let mut conn = pool.get()?;
//! let row = conn.query_one("SELECT $1::int + 1", &[&41i32])?;
//! assert_eq!(row.get::<_, i32>(0), 42);
//! conn.transaction(&TxOptions::new(), |tx| {
//!     tx.execute("INSERT INTO log VALUES ($1)", &[&"hello"])?;
//!     Ok(())
//! })?;
//! # Ok(()) }
//! ```

use std::future::Future;

use lido_core::blocking::{BlockingError, BlockingPool};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::builder::PgPoolBuilder;
use crate::conn::exec::Timed;
use crate::conn::pgconn::PgConn;
use crate::conn::transaction::Transaction;
use crate::conn::tx_sql::TxOptions;
use crate::error::{PgBuildError, PgError, Unsupported};
use crate::manager::PgManager;
use crate::pool::{PgPool, PgPooled};

/// Why a blocking pool could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlockingBuildError {
    /// The runtime could not start, or `build` was called inside a tokio runtime.
    #[error(transparent)]
    Runtime(#[from] lido_core::BuildError),
    /// The pool itself could not be built.
    #[error(transparent)]
    Pool(#[from] PgBuildError),
}

fn blocking_error(e: BlockingError<PgError>) -> PgError {
    match e {
        BlockingError::Pool(p) => PgError::from(p),
        _ => Unsupported::BlockingInsideRuntime.into(),
    }
}

/// A PostgreSQL pool for plain threads. Cheap to clone.
#[derive(Clone)]
pub struct BlockingPgPool {
    inner: BlockingPool<PgManager>,
}

impl std::fmt::Debug for BlockingPgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingPgPool")
            .field("status", &self.inner.pool().status())
            .finish_non_exhaustive()
    }
}

impl BlockingPgPool {
    /// Starts the pool's runtime and builds `builder` on it (startup hook,
    /// `min_idle` connections). Must not be called inside a tokio runtime.
    pub fn build(builder: PgPoolBuilder) -> Result<Self, BlockingBuildError> {
        let built = BlockingPool::from_async(|| async move {
            builder.build().await.map(|pool| pool.core().clone())
        })?;
        Ok(Self { inner: built? })
    }

    /// Leases a connection, blocking up to `acquire_timeout`. Leak reports
    /// name the caller's line.
    #[track_caller]
    pub fn get(&self) -> Result<BlockingConn, PgError> {
        self.get_with_priority(lido_core::Priority::Normal)
    }

    /// [`get`](Self::get) in `priority`'s lane (see [`lido_core::LaneLimits`]).
    #[track_caller]
    pub fn get_with_priority(
        &self,
        priority: lido_core::Priority,
    ) -> Result<BlockingConn, PgError> {
        let conn = self
            .inner
            .get_with_priority(priority)
            .map_err(blocking_error)?;
        Ok(BlockingConn {
            conn,
            pool: self.inner.clone(),
        })
    }

    /// The async pool underneath (status, statistics).
    pub fn pool(&self) -> PgPool {
        PgPool::from(self.inner.pool().clone())
    }

    /// Closes the pool, waiting up to `deadline` for leases to come back.
    pub fn close(&self, deadline: std::time::Duration) -> Result<lido_core::CloseReport, PgError> {
        let pool = self.inner.pool();
        self.inner
            .block_on(pool.close(deadline))
            .map_err(blocking_error)
    }
}

/// A leased connection whose statements block. Dropping it returns the
/// connection (rolled back first if a transaction was left open).
pub struct BlockingConn {
    conn: PgPooled,
    pool: BlockingPool<PgManager>,
}

impl std::fmt::Debug for BlockingConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BlockingConn").field(&*self.conn).finish()
    }
}

fn run<T>(
    pool: &BlockingPool<PgManager>,
    fut: impl Future<Output = Result<T, PgError>>,
) -> Result<T, PgError> {
    pool.block_on(fut).map_err(blocking_error)?
}

macro_rules! blocking_statements {
    ($on:ident) => {
        /// Runs a statement and returns its rows.
        pub fn query(
            &self,
            sql: &str,
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<Vec<Row>, PgError> {
            run(self.pool(), self.$on().query(sql, params))
        }

        /// Runs a statement that returns exactly one row.
        pub fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, PgError> {
            run(self.pool(), self.$on().query_one(sql, params))
        }

        /// Runs a statement that returns at most one row.
        pub fn query_opt(
            &self,
            sql: &str,
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<Option<Row>, PgError> {
            run(self.pool(), self.$on().query_opt(sql, params))
        }

        /// Runs a statement and returns the number of rows it changed.
        pub fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, PgError> {
            run(self.pool(), self.$on().execute(sql, params))
        }

        /// Runs one or more statements with the simple protocol.
        pub fn batch_execute(&self, sql: &str) -> Result<(), PgError> {
            run(self.pool(), self.$on().batch_execute(sql))
        }
    };
}

impl BlockingConn {
    blocking_statements!(timed);

    fn timed(&self) -> Timed<'_> {
        self.conn.exec()
    }

    fn pool(&self) -> &BlockingPool<PgManager> {
        &self.pool
    }

    /// Runs `f` in a transaction: commits if it returns `Ok`, rolls back if
    /// it returns `Err` (which is passed on).
    pub fn transaction<T>(
        &mut self,
        opts: &TxOptions,
        f: impl FnOnce(&BlockingTx<'_, '_>) -> Result<T, PgError>,
    ) -> Result<T, PgError> {
        let pool = &self.pool;
        let tx = run(pool, self.conn.begin(opts))?;
        let tx = BlockingTx { tx, pool };
        match f(&tx) {
            Ok(v) => run(pool, tx.tx.commit()).map(|()| v),
            Err(e) => {
                if let Err(rb) = run(pool, tx.tx.rollback()) {
                    tracing::debug!(error = %rb, "lido-postgres: rollback after a failed closure failed");
                }
                Err(e)
            }
        }
    }

    /// The async connection (for anything not wrapped here; run its futures
    /// with [`BlockingConn::block_on`]).
    pub fn conn(&self) -> &PgConn {
        &self.conn
    }

    /// Runs a future on the pool's runtime, blocking this thread.
    pub fn block_on<T>(&self, fut: impl Future<Output = Result<T, PgError>>) -> Result<T, PgError> {
        run(&self.pool, fut)
    }
}

/// An open transaction inside [`BlockingConn::transaction`].
pub struct BlockingTx<'c, 'p> {
    tx: Transaction<'c>,
    pool: &'p BlockingPool<PgManager>,
}

impl std::fmt::Debug for BlockingTx<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BlockingTx").field(&self.tx).finish()
    }
}

impl BlockingTx<'_, '_> {
    blocking_statements!(timed);

    fn timed(&self) -> Timed<'_> {
        self.tx.exec()
    }

    fn pool(&self) -> &BlockingPool<PgManager> {
        self.pool
    }
}

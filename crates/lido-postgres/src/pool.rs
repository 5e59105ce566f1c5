//! [`PgPool`]: the handle applications clone and call `get()` on (its
//! builder is [`PgPoolBuilder`](crate::PgPoolBuilder), in `builder.rs`).

use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::future::Either;
use lido_core::{BreakerState, Pool, Pooled, Priority, Stats, Status};
use tracing::Instrument;

use crate::conn::pgconn::ConnContext;
use crate::conn::transaction::Transaction;
use crate::conn::tx_sql::TxOptions;
use crate::error::PgError;
use crate::manager::PgManager;
use crate::net::plan::ConnectPlan;
use crate::obs::statements::StatementStats;
use crate::obs::stats::PgStats;

/// A leased connection: derefs to [`PgConn`](crate::PgConn), which derefs to
/// [`tokio_postgres::Client`]. Dropping it returns the connection.
pub type PgPooled = Pooled<PgManager>;

/// Why `get()` failed (see [`lido_core::Error`]).
pub type PoolError = lido_core::Error<PgError>;

/// A PostgreSQL connection pool. Cheap to clone.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use lido_postgres::{PgConfig, PgPool};
///
/// let pool = PgPool::builder(PgConfig::from_env()?)
///     .max_size(16)
///     .statement_timeout(Duration::from_secs(30))
///     .query_timeout(Some(Duration::from_secs(5)))
///     .build()
///     .await?;
/// let conn = pool.get().await?;
/// let row = conn.query_one("SELECT $1::int + 1", &[&41i32]).await?;
/// assert_eq!(row.get::<_, i32>(0), 42);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PgPool {
    inner: Pool<PgManager>,
}

impl PgPool {
    /// Leases a connection (see [`lido_core::Pool::get`]) inside a
    /// `lido.acquire` span.
    #[track_caller]
    pub fn get(&self) -> impl Future<Output = Result<PgPooled, PoolError>> + Send + '_ {
        self.get_at(Location::caller(), Priority::Normal)
    }

    /// [`get`](Self::get) in `priority`'s lane: waiters are served highest
    /// lane first, and with [`lido_core::LaneLimits`] a lane keeps reserved
    /// connections lower lanes never take.
    ///
    /// ```no_run
    /// # async fn f(pool: lido_postgres::PgPool) -> Result<(), lido_postgres::PoolError> {
    /// use lido_core::Priority;
    /// let conn = pool.get_with_priority(Priority::Critical).await?;
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn get_with_priority(
        &self,
        priority: Priority,
    ) -> impl Future<Output = Result<PgPooled, PoolError>> + Send + '_ {
        self.get_at(Location::caller(), priority)
    }

    /// [`get`](Self::get) with the call site given: leak reports name `location`.
    pub(crate) fn get_at(
        &self,
        location: &'static Location<'static>,
        priority: Priority,
    ) -> impl Future<Output = Result<PgPooled, PoolError>> + Send + '_ {
        let span = crate::obs::spans::acquire(&self.ctx().obs.db);
        let inner = span.clone();
        let fut = async move {
            // Fails at once while the server is held not answering; a
            // `get()` already waiting is failed by the watchdog through the
            // core pool's `Waiting` handle (set up in `From`), rather than
            // queue behind connections stuck on it. On the usual path: one
            // relaxed load.
            let live = &self.ctx().liveness;
            let result = if live.silent_for().is_some() {
                Err(pool_error(live.error_now()))
            } else {
                self.inner.get_tracked(priority, location).await
            };
            match &result {
                Err(e) => crate::obs::spans::acquire_failed(&inner, e),
                // The slow-query table names the line that took the lease.
                Ok(c) if self.ctx().obs.slow_table.is_some() => {
                    *c.lease_site.lock() = Some(location);
                }
                Ok(_) => {}
            }
            result
        };
        // No span wrapper to poll through when nothing listens.
        if span.is_disabled() {
            Either::Left(fut)
        } else {
            Either::Right(fut.instrument(span))
        }
    }

    pub(crate) fn ctx(&self) -> &ConnContext {
        &self.inner.manager().ctx
    }

    /// How long the server has been silent, while the pool's watchdog holds
    /// it not answering (see [`PgPoolBuilder::not_answering_after`](crate::PgPoolBuilder::not_answering_after));
    /// `None` while it answers.
    pub fn server_silent_for(&self) -> Option<Duration> {
        self.ctx().liveness.silent_for()
    }

    /// The error `get()` fails with while the server does not answer:
    /// [`lido_core::Error::Unavailable`] around [`PgError::NotAnswering`].
    pub fn not_answering(&self) -> Option<PoolError> {
        self.ctx().liveness.error().map(pool_error)
    }

    /// Leases a connection and runs `f` in a retrying transaction on it
    /// (see [`PgConn::transaction_with_retry`](crate::PgConn::transaction_with_retry)). A leak report for the
    /// lease names the caller's line.
    #[track_caller]
    pub fn transaction_with_retry<'a, T, F>(
        &'a self,
        opts: &'a TxOptions,
        f: F,
    ) -> impl Future<Output = Result<T, PgError>> + Send + 'a
    where
        T: Send + 'a,
        F: for<'t, 'c> FnMut(&'t mut Transaction<'c>) -> BoxFuture<'t, Result<T, PgError>>
            + Send
            + 'a,
    {
        let location = Location::caller();
        async move {
            let mut conn = self.get_at(location, Priority::Normal).await?;
            conn.transaction_with_retry_at(location, opts, f).await
        }
    }

    /// The lido-core pool underneath.
    pub fn core(&self) -> &Pool<PgManager> {
        &self.inner
    }

    /// Size, idle, in use, waiters.
    pub fn status(&self) -> Status {
        self.inner.status()
    }

    /// Pool counters (gets, connects, closes, breaker).
    pub fn stats(&self) -> &Stats {
        self.inner.stats()
    }

    /// PostgreSQL counters (timeouts, transactions, statement cache).
    pub fn pg_stats(&self) -> &PgStats {
        self.inner.manager().stats()
    }

    /// The servers this pool connects to and how (what `lido check` checks).
    pub fn plan(&self) -> &ConnectPlan {
        self.inner.manager().plan()
    }

    /// Per-statement statistics (normalized SQL, calls, errors, rows, times).
    pub fn statement_stats(&self) -> &StatementStats {
        &self.ctx().obs.statements
    }

    /// The circuit breaker's state.
    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker_state()
    }

    /// Closes the pool, waiting up to `deadline` for leases to come back;
    /// then writes what the slow-query table still has queued (for up to
    /// its `flush_timeout`).
    pub async fn close(&self, deadline: Duration) -> lido_core::CloseReport {
        let report = self.inner.close(deadline).await;
        if let Some(t) = &self.ctx().obs.slow_table {
            t.close().await;
        }
        report
    }
}

/// `get()`'s error for `e`: a connect (the watchdog's) that was not answered.
fn pool_error(e: PgError) -> PoolError {
    unavailable(Arc::new(e))
}

/// The pool error for a server found unavailable by lido-postgres itself.
fn unavailable(e: Arc<PgError>) -> PoolError {
    lido_core::Error::Unavailable {
        cause: lido_core::ConnectFailure::Backend(e),
    }
}

impl PgPool {
    /// The transaction open longest now, with where it began (`None`: none open).
    pub fn longest_open_transaction(&self) -> Option<crate::OpenTransaction> {
        self.ctx().obs.open_tx.longest()
    }

    /// Transactions open now.
    pub fn open_transactions(&self) -> usize {
        self.ctx().obs.open_tx.count()
    }
}

impl PgPool {
    /// The slow-query table's counters (`None`: the pool has no table; see
    /// [`PgPoolBuilder::slow_query_table`](crate::PgPoolBuilder::slow_query_table)).
    pub fn slow_table_stats(&self) -> Option<crate::SlowTableStats> {
        self.ctx().obs.slow_table.as_ref().map(|t| t.stats())
    }

    /// Starts the slow-query table's writer, when the pool has a table.
    pub(crate) fn start_slow_table(&self, application_name: Option<String>) {
        let ctx = self.ctx();
        if let Some(t) = &ctx.obs.slow_table {
            t.start(crate::slow_table::Link {
                plan: self.inner.manager().plan_arc(),
                tls: ctx.tls.clone(),
                application_name,
                database: ctx.obs.db.namespace.to_string(),
            });
        }
    }
}

impl From<Pool<PgManager>> for PgPool {
    fn from(inner: Pool<PgManager>) -> Self {
        let waiting = inner.waiting();
        inner
            .manager()
            .ctx
            .liveness
            .on_silent(Box::new(move |err: PgError| {
                let err = Arc::new(err);
                waiting.fail_all(|| unavailable(Arc::clone(&err)));
            }));
        Self { inner }
    }
}

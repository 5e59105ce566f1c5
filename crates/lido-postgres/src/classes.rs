//! Query classes on a pool: [`PgPool::class`] runs calls in a named class
//! (its priority lane, its deadline over acquire and statement together,
//! its slow-query threshold), and [`PgPool::class_stats`] reports each
//! class's calls, errors, timeouts and near timeouts. Calls not given a
//! class get one from a `/* class=NAME */` tag or the pool's rules
//! ([`PgPoolBuilder::classes`](crate::PgPoolBuilder::classes)).

use std::ops::Deref;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use lido_core::{Classes, QueryClass};
use tokio::time::Instant;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::conn::exec::{Sql, Timed};
use crate::conn::pgconn::PgConn;
use crate::conn::tx_sql::TxOptions;
use crate::error::PgError;
use crate::pool::{PgPool, PgPooled};
use lido_core::ClassStat;

/// A pool's calls in one query class; from [`PgPool::class`].
///
/// ```no_run
/// # async fn f(pool: lido_postgres::PgPool) -> Result<(), lido_postgres::PgError> {
/// // Background lane, 60 s for the whole call, slow at 10 s.
/// let reports = pool.class("analytics")?;
/// let rows = reports.query("SELECT region, sum(total) FROM orders GROUP BY 1", &[]).await?;
/// # let _ = rows; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PgClassPool<'p> {
    pool: &'p PgPool,
    index: usize,
    class: Arc<QueryClass>,
}

/// A connection leased in a query class: its statements share what is left
/// of the class's deadline and carry its label. Derefs to [`PgConn`] for
/// everything else (transactions run with the pool's limits).
#[derive(Debug)]
pub struct ClassConn {
    conn: PgPooled,
    index: usize,
    deadline: Option<Instant>,
}

impl PgPool {
    /// Calls in the query class `name`; [`PgError::UnknownClass`] (naming
    /// the classes the pool has) if it has none by that name.
    pub fn class(&self, name: &str) -> Result<PgClassPool<'_>, PgError> {
        let classes = self.classes();
        let class = classes.get(name)?;
        let index = classes.index(name).unwrap_or_default();
        Ok(PgClassPool {
            pool: self,
            index,
            class,
        })
    }

    /// The pool's query classes and rules.
    pub fn classes(&self) -> &Classes {
        &self.ctx().obs.classes.classes
    }

    /// Each class's calls, errors, timeouts and near timeouts so far.
    pub fn class_stats(&self) -> Vec<ClassStat> {
        self.ctx().obs.classes.snapshot()
    }
}

impl<'p> PgClassPool<'p> {
    /// The class.
    pub fn class(&self) -> &QueryClass {
        &self.class
    }

    /// The pool.
    pub fn pool(&self) -> &'p PgPool {
        self.pool
    }

    /// Leases a connection in the class's lane, within its deadline.
    #[track_caller]
    pub fn get(&self) -> impl std::future::Future<Output = Result<ClassConn, PgError>> + Send + '_ {
        let location = Location::caller();
        async move {
            let started = Instant::now();
            let deadline = self.class.deadline.map(|d| started + d);
            let get = self.pool.get_at(location, self.class.priority);
            let conn = match (deadline, self.class.deadline) {
                (Some(at), Some(limit)) => match tokio::time::timeout_at(at, get).await {
                    Ok(r) => r?,
                    Err(_) => return Err(self.expired(limit, started)),
                },
                _ => get.await?,
            };
            Ok(ClassConn {
                conn,
                index: self.index,
                deadline,
            })
        }
    }

    /// The deadline passed while waiting for a connection: nothing ran.
    fn expired(&self, limit: Duration, started: Instant) -> PgError {
        let err = PgError::QueryTimeout {
            timeout: limit,
            cancelled: true,
        };
        let book = &self.pool.ctx().obs.classes;
        book.record(self.index, started.elapsed(), Some(&err));
        err
    }

    /// Leases a connection and runs a statement, returning its rows.
    pub async fn query(
        &self,
        q: &(impl Sql + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, PgError> {
        self.get().await?.query(q, params).await
    }

    /// Leases a connection and runs a statement, returning the rows changed.
    pub async fn execute(
        &self,
        q: &(impl Sql + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, PgError> {
        self.get().await?.execute(q, params).await
    }
}

impl ClassConn {
    /// Statements with what is left of the class's deadline.
    pub fn exec(&self) -> Timed<'_> {
        let left = self
            .deadline
            .map(|at| at.saturating_duration_since(Instant::now()));
        Timed::new(&self.conn, crate::conn::exec::Limit::query(None), false)
            .in_class(self.index, left)
    }

    /// Runs a statement and returns its rows.
    pub async fn query(
        &self,
        q: &(impl Sql + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, PgError> {
        self.exec().query(q, params).await
    }

    /// Runs a statement that returns exactly one row.
    pub async fn query_one(
        &self,
        q: &(impl Sql + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, PgError> {
        self.exec().query_one(q, params).await
    }

    /// Runs a statement that returns at most one row.
    pub async fn query_opt(
        &self,
        q: &(impl Sql + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, PgError> {
        self.exec().query_opt(q, params).await
    }

    /// Runs a statement and returns the number of rows it changed.
    pub async fn execute(
        &self,
        q: &(impl Sql + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, PgError> {
        self.exec().execute(q, params).await
    }

    /// Transaction options for this class: `max_attempts` is the class's
    /// retries plus one, `timeout` what is left of its deadline; pass them
    /// to [`PgConn::transaction_with_retry`] (through `DerefMut` of the
    /// lease: [`into_inner`](Self::into_inner)).
    ///
    /// ```no_run
    /// # async fn f(pool: lido_postgres::PgPool) -> Result<(), lido_postgres::PgError> {
    /// let conn = pool.class("batch")?.get().await?;
    /// let opts = conn.tx_options().serializable();
    /// let mut lease = conn.into_inner();
    /// lease
    ///     .transaction_with_retry(&opts, |tx| {
    ///         Box::pin(async move { tx.execute("UPDATE jobs SET done = true", &[]).await })
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn tx_options(&self) -> TxOptions {
        let book = &self.conn.ctx.obs.classes;
        let retries = book.classes.at(self.index).map_or(0, |c| c.retries);
        let mut opts = TxOptions::new().max_attempts(retries.saturating_add(1));
        if let Some(at) = self.deadline {
            opts = opts.timeout(at.saturating_duration_since(Instant::now()));
        }
        opts
    }

    /// The lease, to return it early or keep it.
    pub fn into_inner(self) -> PgPooled {
        self.conn
    }
}

impl Deref for ClassConn {
    type Target = PgConn;
    fn deref(&self) -> &PgConn {
        &self.conn
    }
}

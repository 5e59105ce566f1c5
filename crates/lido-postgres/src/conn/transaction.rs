//! [`Transaction`]: BEGIN with isolation level, read-only and deferrable;
//! nested savepoints; an overall timeout.
//!
//! A `Transaction` dropped without `commit` or `rollback` is rolled back:
//! before the next statement on the same lease, or by the pool before the
//! connection is reused. No connection reaches the next caller dirty.

use std::panic::Location;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row, SimpleQueryMessage};

use crate::conn::exec::{Limit, Sql, Timed};
use crate::conn::pgconn::PgConn;
use crate::conn::tx_sql::{rollback_sql, savepoint_name, TxOptions};
use crate::error::PgError;
use crate::obs::open_tx::OpenTx;
use crate::obs::stats::bump;

/// An open transaction or savepoint on a [`PgConn`].
///
/// ```no_run
/// # async fn f(conn: &mut lido_postgres::PgConn) -> Result<(), lido_postgres::PgError> {
/// use lido_postgres::TxOptions;
/// let mut tx = conn.begin(&TxOptions::new().serializable()).await?;
/// tx.execute("INSERT INTO t VALUES ($1)", &[&1i32]).await?;
/// let mut sp = tx.savepoint().await?;
/// let failed = sp.execute("INSERT INTO t VALUES ('oops')", &[]).await;
/// assert!(failed.is_err());
/// sp.rollback().await?; // the outer transaction goes on
/// tx.commit().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Transaction<'a> {
    conn: &'a mut PgConn,
    level: u32,
    deadline: Option<(Instant, Duration)>,
    done: bool,
    /// When BEGIN was sent (level 1 with statistics on): for the duration histogram.
    started: Option<std::time::Instant>,
    /// Its entry among the pool's open transactions (level 1).
    open: Option<OpenTx>,
}

macro_rules! delegate {
    ($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*) -> $out:ty) => {
        $(#[$doc])*
        pub async fn $name(&self, $($arg: $ty),*) -> Result<$out, PgError> {
            self.exec().$name($($arg),*).await
        }
    };
}

impl PgConn {
    /// Starts a transaction. The pool's open transactions remember where
    /// ([`PgPool::longest_open_transaction`](crate::PgPool::longest_open_transaction)).
    #[track_caller]
    pub fn begin<'a>(
        &'a mut self,
        opts: &TxOptions,
    ) -> impl std::future::Future<Output = Result<Transaction<'a>, PgError>> + Send + 'a {
        let (opts, location) = (opts.clone(), Location::caller());
        async move { self.begin_at(&opts, location).await }
    }

    pub(crate) async fn begin_at<'a>(
        &'a mut self,
        opts: &TxOptions,
        location: &'static Location<'static>,
    ) -> Result<Transaction<'a>, PgError> {
        self.clean_up().await?;
        let mut sql = opts.begin_sql();
        if let Some(set) = &self.ctx.set_local {
            sql = format!("{sql}; {set}");
        }
        let limit = opts.timeout.or(self.ctx.query_timeout);
        let started = self.ctx.obs.statistics.then(std::time::Instant::now);
        let client = &self.client;
        Timed::new(self, Limit::query(limit).keep_server_timeout(), true)
            .run(async { Ok(client.batch_execute(&sql).await?) })
            .await?;
        self.depth.store(1, Ordering::Relaxed);
        self.tx_expired.store(false, Ordering::Relaxed);
        let deadline = opts.timeout.map(|t| (Instant::now() + t, t));
        let open = Some(self.ctx.obs.open_tx.begin(location));
        Ok(Transaction {
            conn: self,
            level: 1,
            deadline,
            done: false,
            started,
            open,
        })
    }

    /// Starts a transaction with default options.
    #[track_caller]
    pub fn transaction(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Transaction<'_>, PgError>> + Send + '_ {
        let location = Location::caller();
        async move {
            let opts = TxOptions::default();
            self.begin_at(&opts, location).await
        }
    }
}

impl Transaction<'_> {
    /// Statements under the pool's query timeout and this transaction's deadline.
    pub fn exec(&self) -> Timed<'_> {
        self.timed(self.conn.ctx.query_timeout)
    }

    /// Statements with their own timeout (still bounded by the transaction's deadline).
    pub fn timeout(&self, limit: Duration) -> Timed<'_> {
        self.timed(Some(limit))
    }

    fn timed(&self, query: Option<Duration>) -> Timed<'_> {
        Timed::new(self.conn, Limit::query(query).with_tx(self.deadline), true)
    }

    delegate!(/// Runs a statement and returns its rows.
        query(q: &(impl Sql + ?Sized), params: &[&(dyn ToSql + Sync)]) -> Vec<Row>);
    delegate!(/// Runs a statement that returns exactly one row.
        query_one(q: &(impl Sql + ?Sized), params: &[&(dyn ToSql + Sync)]) -> Row);
    delegate!(/// Runs a statement that returns at most one row.
        query_opt(q: &(impl Sql + ?Sized), params: &[&(dyn ToSql + Sync)]) -> Option<Row>);
    delegate!(/// Runs a statement and returns the number of rows it changed.
        execute(q: &(impl Sql + ?Sized), params: &[&(dyn ToSql + Sync)]) -> u64);
    delegate!(/// Runs statements with the simple protocol.
        batch_execute(sql: &str) -> ());
    delegate!(/// Runs statements with the simple protocol, returning text results.
        simple_query(sql: &str) -> Vec<SimpleQueryMessage>);
    delegate!(/// Runs an unnamed statement with explicit parameter types.
        query_typed(sql: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> Vec<Row>);

    /// The tokio-postgres client (statements run inside this transaction).
    pub fn client(&self) -> &Client {
        &self.conn.client
    }

    /// 1 for the transaction, 2 and up for nested savepoints.
    pub fn depth(&self) -> u32 {
        self.level
    }

    /// The connection (for the retry loop's deadline handling).
    pub(crate) fn conn(&self) -> &PgConn {
        self.conn
    }

    /// The deadline and the timeout it came from.
    pub(crate) fn deadline(&self) -> Option<(Instant, Duration)> {
        self.deadline
    }

    /// Time left before the transaction's deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|(at, _)| at.saturating_duration_since(Instant::now()))
    }

    /// Opens a nested savepoint. Rolling it back keeps the outer transaction.
    pub async fn savepoint(&mut self) -> Result<Transaction<'_>, PgError> {
        let level = self.level + 1;
        self.control(&format!("SAVEPOINT {}", savepoint_name(level)))
            .await?;
        self.conn.depth.store(level, Ordering::Relaxed);
        Ok(Transaction {
            conn: &mut *self.conn,
            level,
            deadline: self.deadline,
            done: false,
            started: None,
            open: None,
        })
    }

    /// Commits (or releases the savepoint).
    pub async fn commit(mut self) -> Result<(), PgError> {
        self.done = true;
        let sql = if self.level == 1 {
            "COMMIT".to_owned()
        } else {
            format!("RELEASE SAVEPOINT {}", savepoint_name(self.level))
        };
        let result = self.control(&sql).await;
        self.conn.depth.store(self.level - 1, Ordering::Relaxed);
        if self.level == 1 {
            let wrote = self.conn.tx_wrote.swap(false, Ordering::Relaxed);
            if let (true, Some(cache)) = (wrote, &self.conn.ctx.obs.cache) {
                // Its writes are visible now: every cached result may be old.
                cache.writes.wrote_all();
            }
            let stats = &self.conn.ctx.stats;
            match &result {
                Ok(()) => bump(&stats.tx_committed),
                Err(e) => {
                    bump(&stats.tx_rolled_back);
                    if self.started.is_some() {
                        stats.record_error(e);
                    }
                }
            }
            self.ended();
        }
        // A failed COMMIT ends the transaction on the server. A failed
        // RELEASE leaves the outer level aborted; its guard still rolls it back.
        result
    }

    /// Rolls back (or rolls back to the savepoint and releases it).
    pub async fn rollback(mut self) -> Result<(), PgError> {
        self.done = true;
        self.conn.recover_abandoned_call().await?;
        let result = self.control(&rollback_sql(self.level)).await;
        self.ended();
        match result {
            Ok(()) => {
                self.conn.depth.store(self.level - 1, Ordering::Relaxed);
                if self.level == 1 {
                    self.conn.tx_wrote.store(false, Ordering::Relaxed);
                    bump(&self.conn.ctx.stats.tx_rolled_back);
                }
                Ok(())
            }
            Err(e) => {
                self.conn
                    .abandoned_depth
                    .store(self.level, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Records the transaction's duration once (level 1, statistics on).
    fn ended(&mut self) {
        self.open = None;
        if let Some(t0) = self.started.take() {
            self.conn.ctx.stats.record_transaction(t0.elapsed());
        }
    }

    /// BEGIN/COMMIT/SAVEPOINT statements: no client-side timeout (a COMMIT
    /// may wait for synchronous replication), and never counted as abandoned.
    async fn control(&self, sql: &str) -> Result<(), PgError> {
        Ok(self.conn.client.batch_execute(sql).await?)
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.ended();
        // Roll back lazily: before the next statement, or on return to the pool.
        let pending = &self.conn.abandoned_depth;
        let cur = pending.load(Ordering::Relaxed);
        if cur == 0 || self.level < cur {
            pending.store(self.level, Ordering::Relaxed);
        }
    }
}

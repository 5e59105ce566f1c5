//! [`PgConn`]: a tokio-postgres [`Client`] plus what lido tracks about it —
//! the server's transaction status (read off the wire, see `wire.rs`),
//! abandoned calls, its statement cache.
//!
//! `PgConn` derefs to [`Client`], so the whole tokio-postgres API is there.
//! Its own `query`, `query_one`, `query_opt`, `execute`, `batch_execute`,
//! `simple_query` and `query_typed` shadow the client's: they add the pool's
//! per-query timeout (with a cancel request), the statement cache, and
//! PgBouncer mode.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row, SimpleQueryMessage, Statement};

use crate::error::PgError;
use crate::exec::{Limit, Sql, Timed};
use crate::manager::Endpoint;
use crate::obs::Obs;
use crate::stats::{bump, PgStats};
use crate::stmt_cache::StmtCache;
use crate::tls::Tls;
use crate::wire::{TxStatus, WireState};

/// Per-pool settings every connection shares.
pub(crate) struct ConnContext {
    pub(crate) tls: Tls,
    pub(crate) query_timeout: Option<Duration>,
    pub(crate) cancel_grace: Duration,
    pub(crate) pgbouncer: bool,
    pub(crate) stmt_cache: usize,
    /// PgBouncer mode: session settings applied at the start of each transaction.
    pub(crate) set_local: Option<String>,
    pub(crate) stats: Arc<PgStats>,
    /// Statistics, slow-query log and span settings.
    pub(crate) obs: Obs,
}

/// A pooled PostgreSQL connection. Derefs to [`tokio_postgres::Client`].
pub struct PgConn {
    pub(crate) client: Client,
    /// Where it is connected (for cancel requests).
    pub(crate) endpoint: Endpoint,
    pub(crate) ctx: Arc<ConnContext>,
    cache: Mutex<StmtCache<Statement>>,
    /// Open transaction levels started through lido (1 = BEGIN, 2+ = savepoints).
    pub(crate) depth: AtomicU32,
    /// A [`Transaction`](crate::Transaction) at this depth was dropped
    /// unfinished: roll back to it before the next statement (0 = none).
    pub(crate) abandoned_depth: AtomicU32,
    /// A call's future was dropped mid-flight: the server may still be running it.
    pub(crate) abandoned_call: AtomicBool,
    /// The open transaction ran past its deadline (counted once).
    pub(crate) tx_expired: AtomicBool,
    /// The server's transaction status, whatever ran on the connection.
    pub(crate) wire: Arc<WireState>,
    /// A timeout's cancel could not be confirmed: close instead of reuse.
    pub(crate) broken: AtomicBool,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn")
            .field("closed", &self.client.is_closed())
            .field("tx_depth", &self.depth.load(Ordering::Relaxed))
            .field("tx_status", &self.wire.status())
            .field("cached_statements", &self.cache.lock().len())
            .field("pgbouncer", &self.ctx.pgbouncer)
            .finish_non_exhaustive()
    }
}

/// Closing a connection whose statement still runs cancels it on the server.
impl Drop for PgConn {
    fn drop(&mut self) {
        if self.wire.status() == TxStatus::Busy {
            crate::timeout::cancel_in_background(self);
        }
    }
}

impl Deref for PgConn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
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
    pub(crate) fn new(
        client: Client,
        wire: Arc<WireState>,
        ctx: Arc<ConnContext>,
        endpoint: Endpoint,
    ) -> Self {
        let cache = Mutex::new(StmtCache::new(if ctx.pgbouncer {
            0
        } else {
            ctx.stmt_cache
        }));
        Self {
            client,
            endpoint,
            ctx,
            cache,
            depth: AtomicU32::new(0),
            abandoned_depth: AtomicU32::new(0),
            abandoned_call: AtomicBool::new(false),
            tx_expired: AtomicBool::new(false),
            wire,
            broken: AtomicBool::new(false),
        }
    }

    /// The tokio-postgres client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Statements with the pool's default per-query timeout.
    pub fn exec(&self) -> Timed<'_> {
        Timed::new(self, Limit::query(self.ctx.query_timeout), false)
    }

    /// Statements with their own timeout instead of the pool's default.
    ///
    /// ```no_run
    /// # async fn f(conn: &lido_postgres::PgConn) -> Result<(), lido_postgres::PgError> {
    /// use std::time::Duration;
    /// let rows = conn.timeout(Duration::from_millis(200)).query("SELECT pg_sleep(30)", &[]).await;
    /// assert!(rows.unwrap_err().is_timeout());
    /// # Ok(()) }
    /// ```
    pub fn timeout(&self, limit: Duration) -> Timed<'_> {
        Timed::new(self, Limit::query(Some(limit)), false)
    }

    /// Statements with no client-side timeout (the server's `statement_timeout` still applies).
    pub fn no_timeout(&self) -> Timed<'_> {
        Timed::new(self, Limit::query(None), false)
    }

    delegate!(/// Runs a statement and returns its rows (cached prepared statement, or unnamed in PgBouncer mode).
        query(q: &(impl Sql + ?Sized), params: &[&(dyn ToSql + Sync)]) -> Vec<Row>);
    delegate!(/// Runs a statement that returns exactly one row.
        query_one(q: &(impl Sql + ?Sized), params: &[&(dyn ToSql + Sync)]) -> Row);
    delegate!(/// Runs a statement that returns at most one row.
        query_opt(q: &(impl Sql + ?Sized), params: &[&(dyn ToSql + Sync)]) -> Option<Row>);
    delegate!(/// Runs a statement and returns the number of rows it changed.
        execute(q: &(impl Sql + ?Sized), params: &[&(dyn ToSql + Sync)]) -> u64);
    delegate!(/// Runs one or more statements with the simple protocol, discarding results.
        batch_execute(sql: &str) -> ());
    delegate!(/// Runs one or more statements with the simple protocol, returning text results.
        simple_query(sql: &str) -> Vec<SimpleQueryMessage>);
    delegate!(/// Runs a statement as an unnamed statement with explicit parameter types.
        query_typed(sql: &str, params: &[(&(dyn ToSql + Sync), Type)]) -> Vec<Row>);

    /// The prepared statement for `sql`, from this connection's cache when there.
    /// In PgBouncer mode named statements cannot be used: this returns
    /// [`PgError::Unsupported`].
    pub async fn prepare_cached(&self, sql: &str) -> Result<Statement, PgError> {
        if self.ctx.pgbouncer {
            return Err(PgError::Unsupported(
                "named prepared statements do not work through PgBouncer in transaction mode",
            ));
        }
        self.exec()
            .run(async { Ok(self.statement(sql).await?) })
            .await
    }

    /// Statements in this connection's cache.
    pub fn cached_statements(&self) -> usize {
        self.cache.lock().len()
    }

    /// Whether the connection is closed or marked unfit for reuse.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed) || self.client.is_closed() || self.wire.is_lost()
    }

    /// Whether a lido transaction is open on this connection.
    pub fn in_transaction(&self) -> bool {
        self.depth.load(Ordering::Relaxed) > 0
    }

    /// The session's transaction status as the server last reported it
    /// (its `ReadyForQuery` messages), whatever ran on the connection:
    /// lido's methods, prepared statements, or the tokio-postgres client.
    pub fn transaction_status(&self) -> TxStatus {
        self.wire.status()
    }

    /// The server process id (`pg_backend_pid()`), one round trip.
    pub async fn backend_pid(&self) -> Result<i32, PgError> {
        let row = self
            .client
            .query_typed_one("SELECT pg_backend_pid()", &[])
            .await?;
        Ok(row.try_get(0)?)
    }

    /// The error for a transaction past its deadline; counts the
    /// transaction as timed out the first time.
    pub(crate) fn transaction_expired(&self, timeout: Duration) -> PgError {
        if !self.tx_expired.swap(true, Ordering::Relaxed) {
            bump(&self.ctx.stats.tx_timed_out);
        }
        PgError::TransactionTimeout {
            timeout,
            rolled_back: false,
        }
    }

    /// Prepares `sql` through the cache.
    pub(crate) async fn statement(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        let stats = &self.ctx.stats;
        if let Some(s) = self.cache.lock().get(sql) {
            bump(&stats.stmt_hits);
            return Ok(s);
        }
        bump(&stats.stmt_misses);
        let stmt = self.client.prepare(sql).await?;
        let evicted = self.cache.lock().insert(sql, stmt.clone());
        if evicted > 0 {
            stats
                .stmt_evictions
                .fetch_add(evicted as u64, Ordering::Relaxed);
        }
        Ok(stmt)
    }

    /// Forgets a cached statement (its plan went stale).
    pub(crate) fn forget(&self, sql: &str) {
        self.cache.lock().remove(sql);
    }

    pub(crate) fn cache_enabled(&self) -> bool {
        self.ctx.stmt_cache > 0 && !self.ctx.pgbouncer
    }

    /// Whether the pool must clean this connection before reuse: a lido
    /// transaction or call left unfinished, or a session that the server
    /// says is not idle.
    pub(crate) fn needs_reset(&self) -> bool {
        self.depth.load(Ordering::Relaxed) > 0
            || self.abandoned_depth.load(Ordering::Relaxed) > 0
            || self.abandoned_call.load(Ordering::Relaxed)
            || self.wire.status() != TxStatus::Idle
    }

    /// Cancels an abandoned call, waits for outstanding answers, and rolls
    /// back whatever transaction the server says is open. An error (or a
    /// session still not idle) discards the connection.
    pub(crate) async fn reset(&self) -> Result<(), PgError> {
        bump(&self.ctx.stats.resets);
        self.recover_abandoned_call().await?;
        let known = self.depth.swap(0, Ordering::Relaxed) > 0;
        let abandoned = self.abandoned_depth.swap(0, Ordering::Relaxed) > 0;
        if self.wire.status() == TxStatus::Busy {
            self.settle_outstanding().await?;
        }
        if matches!(
            self.wire.status(),
            TxStatus::InTransaction | TxStatus::Failed
        ) {
            tracing::debug!(
                "lido-postgres: rolling back a connection returned inside a transaction"
            );
            self.client.batch_execute("ROLLBACK").await?;
            if known || abandoned {
                bump(&self.ctx.stats.tx_rolled_back);
            }
        }
        match self.wire.status() {
            TxStatus::Idle => Ok(()),
            other => Err(PgError::Unsupported(if other == TxStatus::Unknown {
                "the connection's protocol state is unknown"
            } else {
                "the connection did not return to idle after ROLLBACK"
            })),
        }
    }

    /// Answers still owed (a request made straight on the client and given
    /// up on, say): waits briefly for them behind an empty query, then
    /// cancels what still runs.
    async fn settle_outstanding(&self) -> Result<(), PgError> {
        let brief = self.ctx.cancel_grace.min(Duration::from_millis(100));
        if let Ok(r) = tokio::time::timeout(brief, self.client.simple_query("")).await {
            return r.map(drop).map_err(PgError::from);
        }
        self.cancel_or_fail().await
    }

    /// Cancels what runs and confirms the connection answers again.
    async fn cancel_or_fail(&self) -> Result<(), PgError> {
        if crate::timeout::cancel_and_confirm(self).await {
            Ok(())
        } else {
            Err(PgError::QueryTimeout {
                timeout: self.ctx.cancel_grace,
                cancelled: false,
            })
        }
    }

    /// If a call was abandoned mid-flight, cancels it and waits until the
    /// connection answers again; marks the connection broken if it does not.
    pub(crate) async fn recover_abandoned_call(&self) -> Result<(), PgError> {
        if !self.abandoned_call.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        self.cancel_or_fail().await
    }

    /// Rolls back a transaction level whose guard was dropped unfinished.
    pub(crate) async fn settle(&self) -> Result<(), PgError> {
        let level = self.abandoned_depth.swap(0, Ordering::Relaxed);
        if level == 0 {
            return Ok(());
        }
        self.recover_abandoned_call().await?;
        let sql = crate::transaction::rollback_sql(level);
        self.client.batch_execute(&sql).await?;
        self.depth.store(level - 1, Ordering::Relaxed);
        if level == 1 {
            bump(&self.ctx.stats.tx_rolled_back);
        }
        Ok(())
    }
}

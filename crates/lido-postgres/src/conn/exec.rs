//! [`Timed`]: statements run under a time limit. On expiry lido sends the
//! server a cancel request, waits until the connection answers again, and
//! returns [`PgError::QueryTimeout`]; a connection whose cancel cannot be
//! confirmed is closed instead of reused.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Row, SimpleQueryMessage, Statement};
use tracing::Instrument;

use crate::conn::pgconn::PgConn;
use crate::error::{PgError, Unsupported};
use crate::net::wire::TxStatus;
use crate::obs::call::{Call, CallOpts, Params, RowCount};
use crate::obs::stats::{bump, Operation};
use crate::obs::{record, spans, writes};

/// SQL text or a prepared statement: what the query methods accept.
pub trait Sql: Send + Sync {
    /// The statement to run.
    fn sql(&self) -> SqlRef<'_>;
}

/// See [`Sql`].
#[derive(Debug, Clone, Copy)]
pub enum SqlRef<'a> {
    /// SQL text: prepared through the cache (or unnamed in PgBouncer mode).
    Text(&'a str),
    /// A statement prepared already.
    Prepared(&'a Statement),
}

impl<'a> SqlRef<'a> {
    /// The SQL text, when this is text (a prepared `Statement` does not keep it).
    pub fn text(&self) -> Option<&'a str> {
        match self {
            Self::Text(s) => Some(s),
            Self::Prepared(_) => None,
        }
    }
}

impl Sql for str {
    fn sql(&self) -> SqlRef<'_> {
        SqlRef::Text(self)
    }
}

impl Sql for String {
    fn sql(&self) -> SqlRef<'_> {
        SqlRef::Text(self)
    }
}

impl Sql for Statement {
    fn sql(&self) -> SqlRef<'_> {
        SqlRef::Prepared(self)
    }
}

/// Which limit ran out.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Query(Duration),
    Transaction(Duration),
}

/// A statement limit and the enclosing transaction's deadline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limit {
    pub(crate) query: Option<Duration>,
    tx: Option<(Instant, Duration)>,
    /// Whether a limit longer than the pushed-down `statement_timeout`
    /// raises it first (not for BEGIN, which takes no time).
    raise: bool,
}

impl Limit {
    pub(crate) fn query(query: Option<Duration>) -> Self {
        Self {
            query,
            tx: None,
            raise: true,
        }
    }

    /// Leaves the server's `statement_timeout` as it is.
    pub(crate) fn keep_server_timeout(mut self) -> Self {
        self.raise = false;
        self
    }

    pub(crate) fn with_tx(mut self, tx: Option<(Instant, Duration)>) -> Self {
        self.tx = tx;
        self
    }

    /// The longest this call may run (`None`: unlimited).
    fn longest(&self) -> Option<Duration> {
        let t = self
            .tx
            .map(|(at, _)| at.saturating_duration_since(Instant::now()));
        match (self.query, t) {
            (Some(q), Some(t)) => Some(q.min(t)),
            (q, t) => q.or(t),
        }
    }

    fn effective(&self, now: Instant) -> Option<(Instant, Kind)> {
        let q = self.query.map(|d| (now + d, Kind::Query(d)));
        let t = self.tx.map(|(at, total)| (at, Kind::Transaction(total)));
        match (q, t) {
            (Some(q), Some(t)) => Some(if t.0 < q.0 { t } else { q }),
            (q, t) => q.or(t),
        }
    }
}

fn text_call<'q>(op: Operation, sql: &'q str, params: Params<'q>) -> Call<'q> {
    Call {
        op,
        sql: Some(sql),
        params,
    }
}

/// Marks the connection when a call's future is dropped before it finished.
struct CallGuard<'a>(Option<&'a AtomicBool>);

impl CallGuard<'_> {
    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if let Some(flag) = self.0 {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

/// Statements on a connection under a time limit. Get one from
/// [`PgConn::exec`], [`PgConn::timeout`] or [`Transaction`](crate::Transaction).
///
/// Per-call settings chain: `conn.timeout(d).slow_query_threshold(Some(t)).query(..)`.
/// It is `Copy`, and its statement methods take it by value, so their
/// futures borrow only the connection.
#[derive(Debug, Clone, Copy)]
pub struct Timed<'a> {
    pub(crate) conn: &'a PgConn,
    pub(crate) limit: Limit,
    in_tx: bool,
    pub(crate) opts: CallOpts,
    /// The limit is the pool's default (a query class may replace it).
    pub(crate) defaulted: bool,
}

macro_rules! statement_method {
    ($(#[$doc:meta])* $name:ident, $typed:ident, $op:ident, $out:ty) => {
        $(#[$doc])*
        pub async fn $name(
            self,
            q: &(impl Sql + ?Sized),
            params: &[&(dyn ToSql + Sync)],
        ) -> Result<$out, PgError> {
            let c = &self.conn.client;
            let sql = q.sql();
            let call = Call { op: Operation::$op, sql: sql.text(), params: Params::Plain(params) };
            // Pinned where it is built: the layers below take a reference,
            // not a copy of this (large) future.
            let fut = pin!(async {
                match sql {
                    SqlRef::Prepared(s) => Ok(c.$name(s, params).await?),
                    SqlRef::Text(sql) if self.conn.ctx.pgbouncer => {
                        let typed = crate::conn::params::typed(params)?;
                        Ok(c.$typed(sql, &typed).await?)
                    }
                    SqlRef::Text(sql) => {
                        self.cached(sql, |s| async move { c.$name(&s, params).await }).await
                    }
                }
            });
            self.observed(&call, fut).await
        }
    };
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
    /// Statements with the pool's default per-query timeout.
    pub fn exec(&self) -> Timed<'_> {
        let mut t = Timed::new(self, Limit::query(self.ctx.query_timeout), false);
        t.defaulted = true;
        t
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
    /// [`PgError::Unsupported`] ([`Unsupported::PgBouncerNamedStatements`]).
    pub async fn prepare_cached(&self, sql: &str) -> Result<Statement, PgError> {
        if self.ctx.pgbouncer {
            return Err(Unsupported::PgBouncerNamedStatements.into());
        }
        self.exec()
            .run(async { Ok(self.statement(sql).await?) })
            .await
    }
}

impl<'a> Timed<'a> {
    pub(crate) fn new(conn: &'a PgConn, limit: Limit, in_tx: bool) -> Self {
        Self {
            conn,
            limit,
            in_tx,
            opts: CallOpts::default(),
            defaulted: false,
        }
    }

    /// Overrides the pool's slow-query threshold for these statements
    /// (`None`: never logged as slow).
    pub fn slow_query_threshold(mut self, threshold: Option<Duration>) -> Self {
        self.opts.slow = Some(threshold);
        self
    }

    /// Whether the slow-query log shows these statements' parameter values
    /// (default: the pool's setting, off).
    pub fn log_parameters(mut self, yes: bool) -> Self {
        self.opts.log_parameters = Some(yes);
        self
    }

    statement_method!(/// Runs a statement and returns its rows.
        query, query_typed, Query, Vec<Row>);
    statement_method!(/// Runs a statement that returns exactly one row.
        query_one, query_typed_one, Query, Row);
    statement_method!(/// Runs a statement that returns at most one row.
        query_opt, query_typed_opt, Query, Option<Row>);
    statement_method!(/// Runs a statement and returns the number of rows it changed.
        execute, execute_typed, Execute, u64);

    /// Runs statements with the simple protocol, discarding results.
    pub async fn batch_execute(self, sql: &str) -> Result<(), PgError> {
        let call = text_call(Operation::Execute, sql, Params::None);
        let fut = pin!(async { Ok(self.conn.client.batch_execute(sql).await?) });
        self.observed(&call, fut).await
    }

    /// Runs statements with the simple protocol, returning text results.
    pub async fn simple_query(self, sql: &str) -> Result<Vec<SimpleQueryMessage>, PgError> {
        let call = text_call(Operation::Query, sql, Params::None);
        let fut = pin!(async { Ok(self.conn.client.simple_query(sql).await?) });
        self.observed(&call, fut).await
    }

    /// Runs an unnamed statement with explicit parameter types (works through PgBouncer).
    pub async fn query_typed(
        self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, PgError> {
        let call = text_call(Operation::Query, sql, Params::Typed(params));
        let fut = pin!(async { Ok(self.conn.client.query_typed(sql, params).await?) });
        self.observed(&call, fut).await
    }

    /// Runs a statement call under this limit, inside its span, and records
    /// it (statistics, slow-query log).
    async fn observed<T: RowCount>(
        &self,
        call: &Call<'_>,
        fut: impl Future<Output = Result<T, PgError>>,
    ) -> Result<T, PgError> {
        let obs = &self.conn.ctx.obs;
        // Once per call: the statement's entry (statistics on, seen before)
        // serves the span, the statistics and the slow-query log alike.
        let known = call.sql.and_then(|sql| obs.statements.lookup(sql));
        let known = known.as_deref();
        let me = self.classified(call, known);
        let ep = &self.conn.endpoint;
        let server = (ep.tls_name.as_str(), ep.port);
        let span = spans::query(obs, server, call, (known.map(|e| &e.shape), me.opts.class));
        // One clock reading: the call's start for its time limit and for
        // the statistics alike.
        let t0 = Instant::now();
        let timed = obs.wants_timing(me.opts) || me.opts.class.is_some();
        let result = if span.is_disabled() {
            pin!(me.run_from(t0, fut)).await
        } else {
            pin!(me.run_from(t0, fut).instrument(span.clone())).await
        };
        if timed {
            let took = t0.elapsed();
            // Inside the span: the slow-query event belongs to its trace.
            let stats = &self.conn.ctx.stats;
            let done = record::Done {
                took,
                opts: me.opts,
                result: &result,
                site: &self.conn.lease_site,
            };
            span.in_scope(|| record::finish(obs, stats, call, known, &done));
        }
        spans::finish(&span, &result);
        if let (Some(cache), Ok(_)) = (&obs.cache, &result) {
            let tx = (me.in_tx || me.conn.in_transaction()).then_some(&me.conn.tx_wrote);
            writes::after_call(&cache.writes, call.sql, known, tx);
        }
        result
    }

    /// Runs `fut` under this limit; on expiry cancels the server-side statement.
    pub(crate) async fn run<T>(
        &self,
        fut: impl Future<Output = Result<T, PgError>>,
    ) -> Result<T, PgError> {
        self.run_from(Instant::now(), fut).await
    }

    /// [`run`](Self::run), for a call that began at `now`.
    async fn run_from<T>(
        &self,
        now: Instant,
        fut: impl Future<Output = Result<T, PgError>>,
    ) -> Result<T, PgError> {
        self.conn.clean_up().await?;
        if let Some((at, total)) = self.limit.tx {
            if at <= now {
                // Past the transaction's deadline: nothing more is sent.
                return Err(self.conn.transaction_expired(total));
            }
        }
        let call = CallGuard(Some(&self.conn.abandoned_call));
        // The usual path runs `fut` itself; only a call whose limit is
        // longer than the pushed-down `statement_timeout` raises it first.
        let result = match self.statement_timeout_raise() {
            None => self.limited(now, call, fut).await,
            Some(ms) => {
                let raised = async {
                    self.conn.raise_statement_timeout(ms, self.in_tx).await?;
                    fut.await
                };
                self.limited(now, call, raised).await
            }
        };
        // The limit ran out: its error as it is.
        let result = result?;
        match result {
            // The watchdog closed the connection: the server stopped answering.
            Err(_) if self.conn.wire.is_silenced() => Err(self.conn.not_answering()),
            Err(e) if self.conn.was_preempted(&e) => Err(PgError::Preempted),
            r => r,
        }
    }

    /// Runs `fut` within this call's limit (from `now`); disarms `call`
    /// once it finished or was cancelled. The outer error: the limit ran
    /// out (and the statement was cancelled, or the connection closed).
    async fn limited<T>(
        &self,
        now: Instant,
        call: CallGuard<'_>,
        fut: impl Future<Output = Result<T, PgError>>,
    ) -> Result<Result<T, PgError>, PgError> {
        let Some((deadline, kind)) = self.limit.effective(now) else {
            let result = fut.await;
            call.done();
            return Ok(result);
        };
        // Pinned in place: the timer holds a reference to it.
        let mut fut = pin!(fut);
        let result = match self.conn.timer.within(deadline, fut.as_mut()).await {
            Ok(r) => Ok(r),
            // `call` stays armed while cancelling: if this future is
            // dropped mid-cancel, the next user cancels again.
            Err(()) => Err(self.expired(kind).await),
        };
        call.done();
        result
    }

    /// The `statement_timeout` (ms, 0 unlimited) to set before this call,
    /// when lido pushed one down and this call's limit is longer. One
    /// relaxed load on the usual path.
    fn statement_timeout_raise(&self) -> Option<u64> {
        let current = self.conn.server_timeout_ms.load(Ordering::Relaxed);
        if current == 0 || !self.limit.raise {
            return None;
        }
        let need = match self.limit.longest() {
            None => 0,
            Some(d) => crate::conn::pgconn::push_down_ms(d),
        };
        (need == 0 || need > current).then_some(need)
    }

    async fn expired(&self, kind: Kind) -> PgError {
        // No cancel to a server that does not answer: it would wait out the
        // cancel grace. The connection is closed instead.
        let silent = self.conn.wire.is_silenced() || self.conn.ctx.liveness.silent_for().is_some();
        let cancelled = if silent {
            self.conn.broken.store(true, Ordering::Relaxed);
            false
        } else {
            self.conn.cancel_and_confirm().await
        };
        match kind {
            Kind::Query(timeout) => {
                bump(&self.conn.ctx.stats.query_timeouts);
                PgError::QueryTimeout { timeout, cancelled }
            }
            Kind::Transaction(timeout) => self.conn.transaction_expired(timeout),
        }
    }

    /// Runs `f` with the cached statement for `sql`; after DDL made the
    /// cached plan stale, prepares it again and retries once (outside a
    /// transaction, where the failed statement did not abort anything).
    async fn cached<T, F, Fut>(&self, sql: &str, f: F) -> Result<T, PgError>
    where
        F: Fn(Statement) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let conn = self.conn;
        if !conn.cache_enabled() {
            let s = conn.client.prepare(sql).await?;
            return Ok(f(s).await?);
        }
        let s = conn.statement(sql).await?;
        // Before the call: a failed statement inside a transaction block
        // aborts it, so only outside one may it simply run again.
        let outside_tx = !self.in_tx && conn.wire.status() == TxStatus::Idle;
        let err = match f(s).await {
            Ok(v) => return Ok(v),
            Err(e) => PgError::from(e),
        };
        if !err.is_cached_plan_stale() {
            return Err(err);
        }
        conn.forget(sql);
        if !outside_tx {
            return Err(err);
        }
        tracing::debug!("lido-postgres: cached plan went stale after DDL; preparing it again");
        bump(&conn.ctx.stats.stmt_reprepared);
        conn.ctx.obs.statements.note_prepare(sql, true);
        let s = conn.statement(sql).await?;
        Ok(f(s).await?)
    }
}

//! [`PgConn`]: a tokio-postgres [`Client`] plus what lido tracks about it —
//! the server's transaction status (read off the wire, see `net/wire.rs`),
//! abandoned calls, its statement cache.
//!
//! `PgConn` derefs to [`Client`], so the whole tokio-postgres API is there.
//! Its own `query`, `query_one`, `query_opt`, `execute`, `batch_execute`,
//! `simple_query` and `query_typed` (in `exec.rs`) shadow the client's: they
//! add the pool's per-query timeout (with a cancel request), the statement
//! cache, and PgBouncer mode. Recovery after unfinished calls is in
//! `recover.rs`, transactions in `transaction.rs`.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_postgres::{Client, Statement};

use crate::conn::call_timer::CallTimer;
use crate::conn::stmt_cache::StmtCache;
use crate::error::PgError;
use crate::net::cancel::{cancel_in_background, CancelTarget};
use crate::net::dial::Opened;
use crate::net::endpoint::Endpoint;
use crate::net::liveness::Liveness;
use crate::net::notifications::NotifySink;
use crate::net::tls::Tls;
use crate::net::wire::{TxStatus, WireState};
use crate::obs::call::LeaseSite;
use crate::obs::call::Obs;
use crate::obs::stats::{bump, PgStats};

/// What the server's `statement_timeout` adds to a client-side limit when
/// lido pushes it down: the client's timeout (and its cancel) comes first,
/// the server's stops the work should the cancel not arrive.
pub(crate) const STATEMENT_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

/// The `statement_timeout`, in ms, pushed down for a client-side limit `d`
/// (at most the server's largest, `INT_MAX` ms).
pub(crate) fn push_down_ms(d: Duration) -> u64 {
    let ms = d.saturating_add(STATEMENT_TIMEOUT_MARGIN).as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX).min(i32::MAX as u64)
}

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
    /// Whether the server answers (the watchdog's findings).
    pub(crate) liveness: Arc<Liveness>,
    /// How long a connection may owe an answer before the watchdog checks
    /// the server (`None`: no watchdog).
    pub(crate) not_answering_after: Option<Duration>,
    /// The `statement_timeout` lido derived from `query_timeout` and sent
    /// in the startup packet, in ms (0: none, or the user's own); calls
    /// with a longer limit raise it first.
    pub(crate) pushed_statement_timeout_ms: u64,
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
    /// The session's `statement_timeout` in ms when lido manages it (0:
    /// lido does not, or it is unlimited now).
    pub(crate) server_timeout_ms: AtomicU64,
    /// The pool preempted the lease's call (lane lending): its errors say
    /// so, and the connection is closed when the lease ends.
    pub(crate) preempted: Arc<AtomicBool>,
    /// The open lido transaction wrote (its commit clears the result cache).
    pub(crate) tx_wrote: AtomicBool,
    /// The timer of its calls' time limits, kept between calls (see
    /// [`CallTimer`]).
    pub(crate) timer: CallTimer,
    /// Where its current lease was taken, while a slow-query table wants it.
    pub(crate) lease_site: LeaseSite,
    /// Where the session's `NOTIFY` messages go (dropped unless a lido
    /// feature listening on its own connection subscribed).
    pub(crate) notify: Arc<NotifySink>,
    /// A connect gate's permit (the tenant set's global cap), released
    /// when the connection is dropped; last, so the client goes first.
    pub(crate) permit: Option<Box<dyn GatePermit>>,
}

/// A connect gate's permit kept by a connection (see [`PgConn::permit`]).
pub(crate) trait GatePermit: Send + Sync {
    /// Asked at every checkout and return of the connection: whether it
    /// should close now so its permit goes to someone waiting.
    fn shed(&self) -> bool;
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
            let why = "closing a connection with a statement still running";
            cancel_in_background(self.client.cancel_token(), self.cancel_target(), why);
        }
    }
}

impl Deref for PgConn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl PgConn {
    pub(crate) fn new(opened: Opened, ctx: Arc<ConnContext>) -> Self {
        let Opened {
            client,
            wire,
            target,
            io,
            notify,
            ..
        } = opened;
        if ctx.not_answering_after.is_some() {
            ctx.liveness.register(&wire, io, &target);
        }
        let endpoint = target.endpoint();
        let cache = Mutex::new(StmtCache::new(if ctx.pgbouncer {
            0
        } else {
            ctx.stmt_cache
        }));
        Self {
            client,
            endpoint,
            cache,
            depth: AtomicU32::new(0),
            abandoned_depth: AtomicU32::new(0),
            abandoned_call: AtomicBool::new(false),
            tx_expired: AtomicBool::new(false),
            wire,
            broken: AtomicBool::new(false),
            server_timeout_ms: AtomicU64::new(ctx.pushed_statement_timeout_ms),
            preempted: Arc::new(AtomicBool::new(false)),
            tx_wrote: AtomicBool::new(false),
            ctx,
            notify,
            lease_site: LeaseSite::default(),
            timer: CallTimer::default(),
            permit: None,
        }
    }

    /// The tokio-postgres client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Statements in this connection's cache.
    pub fn cached_statements(&self) -> usize {
        self.cache.lock().len()
    }

    /// Whether the connection is closed or marked unfit for reuse.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
            || self.preempted.load(Ordering::Relaxed)
            || self.client.is_closed()
            || self.wire.is_lost()
            || self.wire.is_silenced()
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
            stats.hit();
            return Ok(s);
        }
        bump(&stats.stmt_misses);
        self.ctx.obs.statements.note_prepare(sql, false);
        let stmt = self.client.prepare(sql).await?;
        let evicted = self.cache.lock().insert(sql, stmt.clone());
        if !evicted.is_empty() {
            stats
                .stmt_evictions
                .fetch_add(evicted.len() as u64, Ordering::Relaxed);
            for gone in &evicted {
                self.ctx.obs.statements.note_cache_eviction(gone);
            }
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

    /// Whether a lido transaction level or call on this connection was
    /// dropped unfinished (and must be cleaned up before the next call).
    pub(crate) fn left_unfinished(&self) -> bool {
        self.abandoned_depth.load(Ordering::Relaxed) > 0
            || self.abandoned_call.load(Ordering::Relaxed)
    }

    /// Whether the pool must clean this connection before reuse: a lido
    /// transaction or call left unfinished, or a session that the server
    /// says is not idle.
    pub(crate) fn needs_reset(&self) -> bool {
        self.depth.load(Ordering::Relaxed) > 0
            || self.left_unfinished()
            || self.wire.status() != TxStatus::Idle
    }

    /// The error for a call on this connection while its server does not
    /// answer (the watchdog closed the connection).
    pub(crate) fn not_answering(&self) -> PgError {
        self.ctx
            .liveness
            .error()
            .unwrap_or_else(|| PgError::NotAnswering {
                server: self.ctx.liveness.server().to_owned(),
                silent_for: self.ctx.not_answering_after.unwrap_or_default(),
            })
    }

    /// Raises the session's `statement_timeout` to `ms` (0: unlimited) for
    /// a call with a longer limit than the pushed-down one: for the
    /// transaction only inside one (`SET LOCAL`), else for the session.
    /// `in_tx`: the call belongs to a lido transaction.
    pub(crate) async fn raise_statement_timeout(
        &self,
        ms: u64,
        in_tx: bool,
    ) -> Result<(), PgError> {
        let (local, remember) = match self.wire.status() {
            TxStatus::InTransaction => (true, false),
            TxStatus::Idle => (false, true),
            // Answers still owed (an error's ReadyForQuery not read yet, say):
            // the state it ends in is not known, so it is not remembered.
            TxStatus::Busy => (in_tx, false),
            // A failed transaction takes only ROLLBACK; an unknown state nothing.
            TxStatus::Failed | TxStatus::Unknown => return Ok(()),
        };
        let sql = if local {
            format!("SET LOCAL statement_timeout = {ms}")
        } else {
            format!("SET statement_timeout = {ms}")
        };
        self.client.batch_execute(&sql).await?;
        if remember {
            self.server_timeout_ms.store(ms, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Where this connection's cancel requests go.
    pub(crate) fn cancel_target(&self) -> CancelTarget<'_> {
        CancelTarget {
            endpoint: &self.endpoint,
            tls: &self.ctx.tls,
            grace: self.ctx.cancel_grace,
        }
    }
}

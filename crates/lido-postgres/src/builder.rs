//! [`PgPoolBuilder`]: a [`PgPool`]'s settings, and the defaults that bound
//! every call ([`DEFAULT_QUERY_TIMEOUT`], [`DEFAULT_NOT_ANSWERING_AFTER`]).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use lido_core::{Config, Observer, Pool};

use crate::config::pgconfig::PgConfig;
use crate::config::session::SessionSettings;
use crate::conn::pgconn::{push_down_ms, ConnContext, PgConn};
use crate::error::{PgBuildError, PgError};
use crate::manager::{ConnectGate, Hook, ManagerParts, PgManager};
use crate::net::liveness::Liveness;
use crate::obs::settings::ObsSettings;
use crate::obs::stats::PgStats;
use crate::pool::PgPool;

/// The default [`PgPoolBuilder::query_timeout`]: no statement waits
/// longer than this unless told otherwise.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// The default [`PgPoolBuilder::not_answering_after`].
pub const DEFAULT_NOT_ANSWERING_AFTER: Duration = Duration::from_secs(1);

/// Configures a [`PgPool`].
pub struct PgPoolBuilder {
    config: PgConfig,
    session: SessionSettings,
    pool: Config,
    query_timeout: Option<Duration>,
    not_answering_after: Option<Duration>,
    cancel_grace: Duration,
    stmt_cache: usize,
    pgbouncer: bool,
    after_connect: Option<Hook>,
    on_startup: Option<Hook>,
    observer: Option<Arc<dyn Observer>>,
    obs: ObsSettings,
    gate: Option<Arc<dyn ConnectGate>>,
    slow_table: Option<crate::SlowTableConfig>,
}

impl std::fmt::Debug for PgPoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPoolBuilder")
            .field("config", &self.config)
            .field("session", &self.session)
            .field("pool", &self.pool)
            .field("query_timeout", &self.query_timeout)
            .field("not_answering_after", &self.not_answering_after)
            .field("stmt_cache", &self.stmt_cache)
            .field("pgbouncer", &self.pgbouncer)
            .field("observability", &self.obs)
            .field("slow_table", &self.slow_table)
            .finish_non_exhaustive()
    }
}

fn hook<F>(f: F) -> Hook
where
    F: for<'a> Fn(&'a mut PgConn) -> BoxFuture<'a, Result<(), PgError>> + Send + Sync + 'static,
{
    Arc::new(f)
}

impl PgPoolBuilder {
    fn new(config: PgConfig) -> Self {
        Self {
            config,
            session: SessionSettings::default(),
            pool: Config::default(),
            query_timeout: Some(DEFAULT_QUERY_TIMEOUT),
            not_answering_after: Some(DEFAULT_NOT_ANSWERING_AFTER),
            cancel_grace: Duration::from_secs(5),
            stmt_cache: 256,
            pgbouncer: false,
            after_connect: None,
            on_startup: None,
            observer: None,
            obs: ObsSettings::default(),
            gate: None,
            slow_table: None,
        }
    }

    /// Every connect goes through `gate` (the tenant set's global cap).
    pub(crate) fn gate(mut self, gate: Arc<dyn ConnectGate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// The core pool settings, to adjust in place.
    pub(crate) fn core_config_mut(&mut self) -> &mut Config {
        &mut self.pool
    }

    /// Every core pool setting at once (size, timeouts, retry, breaker).
    pub fn pool_config(mut self, config: Config) -> Self {
        self.pool = config;
        self
    }

    /// Most connections open at once.
    pub fn max_size(mut self, n: usize) -> Self {
        self.pool.max_size = n;
        self
    }

    /// Capacity per priority lane (reserves, share caps, lending); see
    /// [`lido_core::LaneLimits`].
    pub fn lanes(mut self, lanes: lido_core::LaneLimits) -> Self {
        self.pool.lanes = lanes;
        self
    }

    /// The pool's query classes and their rules (default: `realtime`,
    /// `standard`, `analytics`, `batch`, no rules); see
    /// [`PgPool::class`](crate::PgPool::class).
    pub fn classes(mut self, classes: lido_core::Classes) -> Self {
        self.obs.classes = classes;
        self
    }

    /// A result cache for [`PgPool::cached`](crate::PgPool::cached) calls
    /// and classes with a cache TTL: rows kept by statement and parameter
    /// values, bounded by bytes, dropped when a write through this pool
    /// touches their tables. Off by default.
    pub fn result_cache(mut self, config: crate::ResultCacheConfig) -> Self {
        self.obs.cache = Some(config);
        self
    }

    /// Adaptive sizing: a target size between `adaptive.min` and
    /// `adaptive.max` (at most `max_size`) from the pool's own latency and
    /// queueing; see [`lido_core::AdaptiveConfig`].
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use lido_core::AdaptiveConfig;
    /// use lido_postgres::{PgConfig, PgPool};
    /// let pool = PgPool::builder(PgConfig::from_env()?)
    ///     .max_size(64)
    ///     .adaptive(AdaptiveConfig { min: 2, max: 64, ..AdaptiveConfig::default() })
    ///     .build()
    ///     .await?;
    /// println!("target now {}", pool.core().target_size());
    /// # Ok(()) }
    /// ```
    pub fn adaptive(mut self, adaptive: lido_core::AdaptiveConfig) -> Self {
        self.pool.adaptive = Some(adaptive);
        self
    }

    /// Idle connections kept ready.
    pub fn min_idle(mut self, n: usize) -> Self {
        self.pool.min_idle = n;
        self
    }

    /// Longest `get()` waits.
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.pool.acquire_timeout = d;
        self
    }

    /// All server settings at once.
    pub fn session(mut self, s: SessionSettings) -> Self {
        self.session = s;
        self
    }

    /// Server-side `statement_timeout` for every connection. Unset, lido
    /// pushes down `query_timeout` plus 1 s (see
    /// [`query_timeout`](Self::query_timeout)); set, it is sent as it is and
    /// calls with longer limits do not change it.
    pub fn statement_timeout(mut self, d: Duration) -> Self {
        self.session.statement_timeout = Some(d);
        self
    }

    /// Server-side `lock_timeout`.
    pub fn lock_timeout(mut self, d: Duration) -> Self {
        self.session.lock_timeout = Some(d);
        self
    }

    /// Server-side `idle_in_transaction_session_timeout`.
    pub fn idle_in_transaction_session_timeout(mut self, d: Duration) -> Self {
        self.session.idle_in_transaction_session_timeout = Some(d);
        self
    }

    /// `search_path`, for example `"app, public"`.
    pub fn search_path(mut self, path: impl Into<String>) -> Self {
        self.session.search_path = Some(path.into());
        self
    }

    /// Session `TimeZone`.
    pub fn timezone(mut self, tz: impl Into<String>) -> Self {
        self.session.timezone = Some(tz.into());
        self
    }

    /// `application_name` (a startup parameter; PgBouncer passes it on).
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.config.application_name = Some(name.into());
        self
    }

    /// Default client-side per-statement timeout: [`DEFAULT_QUERY_TIMEOUT`]
    /// (30 s) unless set; `None` turns it off. On expiry lido sends a cancel
    /// request and keeps the connection if the cancel is confirmed. Per
    /// call: [`PgConn::timeout`], [`PgConn::no_timeout`], and a
    /// transaction's [`TxOptions::timeout`](crate::TxOptions::timeout).
    ///
    /// A whole call is bounded too: `get()` by `acquire_timeout` (30 s by
    /// default) and failing fast while the server does not answer (see
    /// [`not_answering_after`](Self::not_answering_after)), then the
    /// statement by this.
    ///
    /// Unless [`statement_timeout`](Self::statement_timeout) is set, this
    /// limit plus 1 s is pushed down as the server's `statement_timeout`
    /// (in the startup packet, so no round trip; in PgBouncer mode with
    /// `SET LOCAL` in each lido transaction), so the server stops work the
    /// client stopped waiting for even if the cancel request never arrives.
    /// A call with a longer limit (or none) first raises it on its
    /// connection (`SET LOCAL` inside a transaction, else `SET` for the
    /// session, one round trip, only for such calls): a longer per-call
    /// deadline is never cut short by the pushed-down one.
    pub fn query_timeout(mut self, d: Option<Duration>) -> Self {
        self.query_timeout = d;
        self
    }

    /// How soon the pool notices a server that stopped answering without
    /// closing its sockets (processes stopped, network black hole):
    /// [`DEFAULT_NOT_ANSWERING_AFTER`] (1 s) unless set; `None` turns the
    /// watchdog off.
    ///
    /// A per-pool watchdog task samples, every 50 ms, counters the
    /// connections' I/O keeps anyway (nothing runs per query). A connection
    /// owing an answer without progress for 30 % of this makes it knock on
    /// that connection's server (an SSLRequest on a fresh socket, answered
    /// by a process the postmaster starts: no session, no authentication)
    /// with the other 70 % as its limit. If that is not answered either, and
    /// no connection heard from the server meanwhile, it is held not
    /// answering: connections
    /// stuck on it are closed (their calls end at once with
    /// [`PgError::NotAnswering`], the pool discards them), `get()` fails at
    /// once with that error (inside [`lido_core::Error::Connect`]) naming the
    /// server and how long it has been silent, and lido-http readiness
    /// fails; connects already under way wait (bounded by
    /// `connect_timeout`). One knock stays open; when the server answers it,
    /// `get()` serves again. A slow statement on a server that answers the
    /// knock is left alone. Behind PgBouncer the knock reaches PgBouncer,
    /// so only a frozen PgBouncer is noticed.
    pub fn not_answering_after(mut self, d: Option<Duration>) -> Self {
        self.not_answering_after = d;
        self
    }

    /// How long to wait for a cancel to be confirmed before closing the connection.
    pub fn cancel_grace(mut self, d: Duration) -> Self {
        self.cancel_grace = d;
        self
    }

    /// Prepared statements cached per connection (0 disables the cache). Default 256.
    pub fn statement_cache(mut self, capacity: usize) -> Self {
        self.stmt_cache = capacity;
        self
    }

    /// PgBouncer transaction mode: unnamed statements only (`query_typed`,
    /// parameter types taken from the Rust types), no startup `options`;
    /// session settings are applied with `SET LOCAL` in each lido transaction.
    pub fn pgbouncer(mut self, on: bool) -> Self {
        self.pgbouncer = on;
        self
    }

    /// Keeps query statistics: durations by operation, errors by SQLSTATE
    /// class ([`PgStats`]) and per-statement statistics
    /// ([`PgPool::statement_stats`]). On by default; costs a few atomic
    /// adds and a hash lookup per statement.
    pub fn statistics(mut self, on: bool) -> Self {
        self.obs.statistics = on;
        self
    }

    /// Most distinct statements [`PgPool::statement_stats`] keeps (default
    /// 1000); a new one evicts the one with the fewest calls.
    pub fn statement_stats_capacity(mut self, n: usize) -> Self {
        self.obs.capacity = n;
        self
    }

    /// Statements taking at least this long are logged at WARN with target
    /// `lido::slow_query` (default 1 s; `None` turns the log off). Override
    /// per call with [`Timed::slow_query_threshold`](crate::Timed::slow_query_threshold).
    pub fn slow_query_threshold(mut self, threshold: Option<Duration>) -> Self {
        self.obs.slow_threshold = threshold;
        self
    }

    /// Whether the slow-query log shows parameter values (default off; the
    /// SQL is always logged normalized, without literals). Values may hold
    /// personal data or secrets: turn this on only where logs may hold them.
    pub fn log_parameters(mut self, on: bool) -> Self {
        self.obs.log_parameters = on;
        self
    }

    /// Also writes the calls the slow-query log reports to a table
    /// (default `lido.slow_queries`, created when allowed), off the hot path:
    /// a bounded queue drained by one background task over its own
    /// connection, outside `max_size`. See [`crate::slow_table`]. The
    /// writer starts with [`build`](Self::build) or
    /// [`build_lazy`](Self::build_lazy) (on the current tokio runtime); a
    /// core pool built by hand from [`manager`](Self::manager) has none.
    pub fn slow_query_table(mut self, config: crate::SlowTableConfig) -> Self {
        self.slow_table = Some(config);
        self
    }

    /// Whether query spans carry `db.query.text` (the normalized SQL, with
    /// literals replaced by placeholders). Off by default.
    pub fn trace_query_text(mut self, on: bool) -> Self {
        self.obs.query_text = on;
        self
    }

    /// Runs on every new connection before it is handed out.
    pub fn after_connect<F>(mut self, f: F) -> Self
    where
        F: for<'a> Fn(&'a mut PgConn) -> BoxFuture<'a, Result<(), PgError>> + Send + Sync + 'static,
    {
        self.after_connect = Some(hook(f));
        self
    }

    /// Runs once per pool, on the first connection (schema checks or
    /// creation). A failure fails that connect; the next connect tries again.
    pub fn on_startup<F>(mut self, f: F) -> Self
    where
        F: for<'a> Fn(&'a mut PgConn) -> BoxFuture<'a, Result<(), PgError>> + Send + Sync + 'static,
    {
        self.on_startup = Some(hook(f));
        self
    }

    /// Receives pool events (metrics, tracing).
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The connection manager alone (to build a `lido_core::Pool` by hand).
    pub fn manager(&self) -> Result<PgManager, PgBuildError> {
        self.config.validate()?;
        self.obs.classes.validate()?;
        self.session.validate()?;
        let mut session = self.session.clone();
        let pushed = match (session.statement_timeout, self.query_timeout) {
            (None, Some(q)) => {
                let ms = push_down_ms(q);
                session.statement_timeout = Some(Duration::from_millis(ms));
                ms
            }
            _ => 0,
        };
        if self.pgbouncer && !self.session.is_empty() {
            tracing::info!("lido-postgres: PgBouncer mode applies session settings only inside lido transactions (SET LOCAL)");
        }
        let ctx = ConnContext {
            tls: crate::net::tls::connector(&self.config)?,
            query_timeout: self.query_timeout,
            cancel_grace: self.cancel_grace,
            pgbouncer: self.pgbouncer,
            stmt_cache: self.stmt_cache,
            set_local: self.pgbouncer.then(|| session.set_local_sql()).flatten(),
            stats: Arc::new(PgStats::default()),
            obs: self.obs_with_table()?,
            liveness: Arc::new(Liveness::new(server_label(&self.config))),
            not_answering_after: self.not_answering_after,
            // PgBouncer shares sessions: no session-level SET there.
            pushed_statement_timeout_ms: if self.pgbouncer { 0 } else { pushed },
        };
        Ok(PgManager::new(ManagerParts {
            config: self.config.clone(),
            session,
            ctx: Arc::new(ctx),
            after_connect: self.after_connect.clone(),
            on_startup: self.on_startup.clone(),
            gate: self.gate.clone(),
        }))
    }

    /// The pool's observability, with its slow-query table when asked for.
    fn obs_with_table(&self) -> Result<crate::obs::call::Obs, PgBuildError> {
        let mut obs = self.obs.build(&self.config);
        if let Some(cfg) = &self.slow_table {
            cfg.validate()
                .map_err(|e| crate::error::invalid("slow_query_table", e.to_string()))?;
            obs.slow_table = Some(Arc::new(crate::slow_table::SlowTable::new(cfg.clone())));
        }
        Ok(obs)
    }

    fn core(&self) -> Result<lido_core::PoolBuilder<PgManager>, PgBuildError> {
        let mut b = Pool::builder(self.manager()?).config(self.pool.clone());
        if let Some(o) = &self.observer {
            b = b.observer(Arc::clone(o));
        }
        Ok(b)
    }

    /// Builds the pool, opens `min_idle` connections, and (with a startup
    /// hook) opens one connection to run it, so setup errors surface here.
    pub async fn build(self) -> Result<PgPool, PgBuildError> {
        let has_startup = self.on_startup.is_some();
        let pool = PgPool::from(self.core()?.build().await?);
        pool.start_slow_table(self.config.application_name.clone());
        if has_startup {
            let conn = pool
                .get()
                .await
                .map_err(|e| PgBuildError::Startup(e.into()))?;
            drop(conn);
        }
        Ok(pool)
    }

    /// Builds the pool without connecting: connections open on demand.
    pub fn build_lazy(self) -> Result<PgPool, PgBuildError> {
        let pool = PgPool::from(self.core()?.build_lazy()?);
        pool.start_slow_table(self.config.application_name.clone());
        Ok(pool)
    }
}

impl PgPool {
    /// Starts configuring a pool.
    pub fn builder(config: PgConfig) -> PgPoolBuilder {
        PgPoolBuilder::new(config)
    }
}

/// The server named in "not answering" errors: the first target, and how
/// many others there are.
fn server_label(c: &PgConfig) -> String {
    let host = c
        .hostaddrs
        .first()
        .map(|a| a.to_string())
        .or_else(|| c.hosts.first().cloned())
        .unwrap_or_else(crate::config::defaults::default_host);
    let port = c.ports.first().copied().unwrap_or(5432);
    let first = if host.starts_with('/') {
        format!("{host}/.s.PGSQL.{port}")
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match c.hosts.len().max(c.hostaddrs.len()) {
        0 | 1 => first,
        n => format!("{first} (+{} more hosts)", n - 1),
    }
}

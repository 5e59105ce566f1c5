//! lido-http integration (feature `http`): [`PoolSource`] for [`PgPool`], so
//! a pool registers with health checks and the exporter as it is and brings
//! [`PgMetrics`] (the PostgreSQL metric families) and [`QueryErrorRate`]
//! (the `database:queryErrorRate` check) along.
//!
//! ```no_run
//! # async fn f(pool: lido_postgres::PgPool) -> Result<(), Box<dyn std::error::Error>> {
//! use lido_http::{HealthExt, HealthMonitor, Metrics};
//! let monitor = HealthMonitor::builder().pool("orders", pool.clone()).spawn()?;
//! let text = Metrics::for_monitor(&monitor).encode()?;
//! assert!(text.contains("lido_pg_query_duration_seconds"));
//! let report = pool.health().await;
//! assert!(report.check("database:queryErrorRate", "default").is_some());
//! # Ok(()) }
//! ```

pub use crate::http_slow::names as slow_table_names;
pub use crate::tenants::TenantsMetrics;
use std::sync::Arc;

use lido_http::health::keys;
use lido_http::{
    error_rate, BackendCheck, BoxFuture, CheckContext, MetricSink, MetricsExtension, NamedPool,
    Observation, PoolBackend,
};

use crate::manager::PgManager;
use crate::obs::statements::{StatementOrder, StatementStats};
use crate::obs::stats::{Operation, PgStats};
use crate::pool::PgPool;

/// Metric family names [`PgMetrics`] writes (counters get `_total` on export).
pub mod names {
    /// Histogram, `operation` = `query` | `execute` | `transaction`.
    pub const QUERY_DURATION: &str = "lido_pg_query_duration_seconds";
    /// Counter: statements run.
    pub const QUERIES: &str = "lido_pg_queries";
    /// Counter: statements that failed (any error class).
    pub const QUERY_ERRORS: &str = "lido_pg_query_errors";
    /// Counter, `class` = SQLSTATE class (`23`, `40`, `42`, ...) | `timeout` | `connection` | `other`.
    pub const ERRORS: &str = "lido_pg_errors";
    /// Counter: statements at or above the slow-query threshold.
    pub const SLOW_QUERIES: &str = "lido_pg_slow_queries";
    /// Counter: prepared-statement cache hits.
    pub const STMT_CACHE_HITS: &str = "lido_pg_statement_cache_hits";
    /// Counter: prepared-statement cache misses.
    pub const STMT_CACHE_MISSES: &str = "lido_pg_statement_cache_misses";
    /// Counter: statements evicted from full caches.
    pub const STMT_CACHE_EVICTIONS: &str = "lido_pg_statement_cache_evictions";
    /// Counter: statements prepared again after DDL.
    pub const STMT_CACHE_REPREPARED: &str = "lido_pg_statement_cache_reprepared";
    /// Counter, `outcome` = `commit` | `rollback`.
    pub const TRANSACTIONS: &str = "lido_pg_transactions";
    /// Counter: transaction attempts retried after 40001 / 40P01.
    pub const TX_RETRIES: &str = "lido_pg_transaction_retries";
    /// Counter: transactions past their timeout.
    pub const TX_TIMEOUTS: &str = "lido_pg_transaction_timeouts";
    /// Counter: statements past their client-side timeout.
    pub const QUERY_TIMEOUTS: &str = "lido_pg_query_timeouts";
    /// Counter, `outcome` = `confirmed` | `unconfirmed`.
    pub const CANCELS: &str = "lido_pg_cancels";
    /// Counter: connect attempts.
    pub const CONNECT_ATTEMPTS: &str = "lido_pg_connect_attempts";
    /// Counter: connections rolled back or cancelled on return.
    pub const RESETS: &str = "lido_pg_connection_resets";
    /// Gauge: statements in the per-statement table.
    pub const STATEMENTS_TRACKED: &str = "lido_pg_statements_tracked";
    /// Counter, `fingerprint`, `query` (only with [`PgMetrics::top_statements`](super::PgMetrics::top_statements)).
    pub const STATEMENT_CALLS: &str = "lido_pg_statement_calls";
    /// Counter, `fingerprint`, `query`: seconds spent (top statements only).
    pub const STATEMENT_SECONDS: &str = "lido_pg_statement_time_seconds";
    /// Counter, `fingerprint`, `query`: failures (top statements only).
    pub const STATEMENT_ERRORS: &str = "lido_pg_statement_errors";
    /// Statements run per query class (counter).
    pub const CLASS_CALLS: &str = "lido_pg_class_calls";
    /// Failed statements per query class (counter).
    pub const CLASS_ERRORS: &str = "lido_pg_class_errors";
    /// Statements stopped by their class deadline (counter).
    pub const CLASS_TIMEOUTS: &str = "lido_pg_class_timeouts";
    /// Statements that finished above the near-timeout share of their class deadline (counter).
    pub const CLASS_NEAR_TIMEOUTS: &str = "lido_pg_class_near_timeouts";
    /// Transaction retries by cause: deadlock, serialization (counter).
    pub const TX_RETRIES_BY_CAUSE: &str = "lido_pg_transaction_retries_by_cause";
    /// Transactions open now (gauge).
    pub const TX_OPEN: &str = "lido_pg_transactions_open";
    /// Age of the transaction open longest now (gauge, seconds; 0: none).
    pub const TX_LONGEST_OPEN: &str = "lido_pg_transaction_longest_open_seconds";
    /// Result cache events: hit, miss, join, invalidated, too_large, evicted, bypassed (a positioned read the feed could not serve; counter).
    pub const CACHE_EVENTS: &str = "lido_pg_cache_events";
    /// Result cache bytes kept (gauge).
    pub const CACHE_BYTES: &str = "lido_pg_cache_bytes";
    /// Result cache entries kept (gauge).
    pub const CACHE_ENTRIES: &str = "lido_pg_cache_entries";
    /// Calls of statements naming a table, by kind (read, write) (counter).
    pub const TABLE_CALLS: &str = "lido_pg_table_calls";
    /// Time in statements naming a table (counter, seconds).
    pub const TABLE_SECONDS: &str = "lido_pg_table_time_seconds";
    /// A top statement's timeouts and near timeouts, by kind (counter).
    pub const STATEMENT_DEADLINE_EVENTS: &str = "lido_pg_statement_deadline_events";
    /// A top statement's learned deadline (gauge, seconds).
    pub const STATEMENT_LEARNED_DEADLINE: &str = "lido_pg_statement_learned_deadline_seconds";
    /// A class's deadline now (gauge, seconds).
    pub const CLASS_DEADLINE: &str = "lido_pg_class_deadline_seconds";
}

/// PostgreSQL metric families for lido-http's exporter, read from a pool's
/// [`PgStats`] and [`StatementStats`] at scrape time. A `PgPool` registered
/// with lido-http brings one along; to export the top statements too,
/// replace it: `NamedPool::new("orders", pool.clone()).without_metrics()
/// .with_metrics(PgMetrics::new(&pool).top_statements(10))`.
#[derive(Debug, Clone)]
pub struct PgMetrics {
    stats: Arc<PgStats>,
    statements: Arc<StatementStats>,
    classes: Arc<crate::obs::classes::ClassBook>,
    cache: Option<Arc<crate::obs::result_cache::ResultCache>>,
    open_tx: Arc<crate::obs::open_tx::OpenTransactions>,
    slow_table: Option<Arc<crate::slow_table::SlowTable>>,
    top: usize,
}

impl PgMetrics {
    /// The metrics of `pool`.
    pub fn new(pool: &PgPool) -> Self {
        let ctx = &pool.core().manager().ctx;
        Self {
            stats: Arc::clone(&ctx.stats),
            statements: Arc::clone(&ctx.obs.statements),
            classes: Arc::clone(&ctx.obs.classes),
            cache: ctx.obs.cache.clone(),
            open_tx: Arc::clone(&ctx.obs.open_tx),
            slow_table: ctx.obs.slow_table.clone(),
            top: 0,
        }
    }

    /// Also exports calls, time and errors of the `n` statements with the
    /// most total time, labelled by fingerprint and normalized query (cut to
    /// 100 characters). Off (0) by default: each statement is a series.
    pub fn top_statements(mut self, n: usize) -> Self {
        self.top = n;
        self
    }

    fn durations(&self, sink: &mut MetricSink<'_>) {
        let help = "Time statements and transactions took.";
        for op in Operation::ALL {
            let h = self.stats.duration(op);
            let labels = [("operation", op.as_str())];
            sink.duration_histogram(names::QUERY_DURATION, help, &labels, h);
        }
        let s = &self.stats;
        sink.counter(names::QUERIES, "Statements run.", &[], s.queries());
        let help = "Statements that failed (any error class).";
        sink.counter(names::QUERY_ERRORS, help, &[], s.query_errors());
        let help =
            "Failed statements and commits by SQLSTATE class (or timeout, connection, other).";
        for (class, n) in s.errors_by_class() {
            sink.counter(names::ERRORS, help, &[("class", &class)], n);
        }
        let help = "Statements at or above the slow-query threshold.";
        sink.counter(names::SLOW_QUERIES, help, &[], s.slow_queries());
    }

    fn cache(&self, sink: &mut MetricSink<'_>) {
        let s = &self.stats;
        for (name, help, v) in [
            (
                names::STMT_CACHE_HITS,
                "Prepared statements reused from the cache.",
                s.stmt_hits(),
            ),
            (
                names::STMT_CACHE_MISSES,
                "Statements prepared anew.",
                s.stmt_misses(),
            ),
            (
                names::STMT_CACHE_EVICTIONS,
                "Statements evicted from full caches.",
                s.stmt_evictions(),
            ),
            (
                names::STMT_CACHE_REPREPARED,
                "Statements prepared again after DDL.",
                s.stmt_reprepared(),
            ),
        ] {
            sink.counter(name, help, &[], v);
        }
    }

    fn transactions(&self, sink: &mut MetricSink<'_>) {
        let s = &self.stats;
        let help = "Transactions ended, by outcome.";
        sink.counter(
            names::TRANSACTIONS,
            help,
            &[("outcome", "commit")],
            s.tx_committed(),
        );
        sink.counter(
            names::TRANSACTIONS,
            help,
            &[("outcome", "rollback")],
            s.tx_rolled_back(),
        );
        sink.counter(
            names::TX_RETRIES,
            "Transaction attempts retried (40001, 40P01).",
            &[],
            s.tx_retried(),
        );
        sink.counter(
            names::TX_TIMEOUTS,
            "Transactions past their timeout.",
            &[],
            s.tx_timed_out(),
        );
        let help = "Transaction attempts retried, by cause.";
        for (cause, n) in [
            ("deadlock", s.tx_retried_deadlock()),
            ("serialization", s.tx_retried_serialization()),
        ] {
            sink.counter(names::TX_RETRIES_BY_CAUSE, help, &[("cause", cause)], n);
        }
        let open = self.open_tx.count() as f64;
        sink.gauge(names::TX_OPEN, "Transactions open now.", &[], open);
        let longest = self.open_tx.longest().map_or(0.0, |t| t.age.as_secs_f64());
        let help = "Age of the transaction open longest now (0: none open).";
        sink.gauge(names::TX_LONGEST_OPEN, help, &[], longest);
    }

    fn timeouts(&self, sink: &mut MetricSink<'_>) {
        let s = &self.stats;
        let help = "Statements past their client-side timeout.";
        sink.counter(names::QUERY_TIMEOUTS, help, &[], s.query_timeouts());
        let help = "Cancel requests after timeouts, by outcome.";
        sink.counter(
            names::CANCELS,
            help,
            &[("outcome", "confirmed")],
            s.cancels_confirmed(),
        );
        sink.counter(
            names::CANCELS,
            help,
            &[("outcome", "unconfirmed")],
            s.cancels_unconfirmed(),
        );
        sink.counter(
            names::CONNECT_ATTEMPTS,
            "Connect attempts.",
            &[],
            s.connect_attempts(),
        );
        let help = "Connections rolled back or cancelled on return.";
        sink.counter(names::RESETS, help, &[], s.resets());
    }

    fn statements(&self, sink: &mut MetricSink<'_>) {
        let n = self.statements.len() as f64;
        let help = "Statements in the per-statement statistics table.";
        sink.gauge(names::STATEMENTS_TRACKED, help, &[], n);
        if self.top == 0 {
            return;
        }
        for st in self.statements.top(self.top, StatementOrder::TotalTime) {
            let fp = format!("{:016x}", st.fingerprint);
            let query = crate::obs::slowlog::truncate(&st.query, 100);
            let labels = [("fingerprint", fp.as_str()), ("query", query.as_str())];
            sink.counter(
                names::STATEMENT_CALLS,
                "Calls of a statement.",
                &labels,
                st.calls,
            );
            let secs = st.total.as_secs_f64();
            sink.counter_f64(
                names::STATEMENT_SECONDS,
                "Time spent in a statement.",
                &labels,
                secs,
            );
            sink.counter(
                names::STATEMENT_ERRORS,
                "Failures of a statement.",
                &labels,
                st.errors,
            );
            let help = "Timeouts and near timeouts of a statement.";
            for (kind, n) in [("timeout", st.timeouts), ("near_timeout", st.near_timeouts)] {
                let with_kind = [labels[0], labels[1], ("kind", kind)];
                sink.counter(names::STATEMENT_DEADLINE_EVENTS, help, &with_kind, n);
            }
            if let Some(d) = st.learned_deadline {
                let help = "The deadline a statement's query class learned from its latency.";
                sink.gauge(
                    names::STATEMENT_LEARNED_DEADLINE,
                    help,
                    &labels,
                    d.as_secs_f64(),
                );
            }
        }
    }
}

impl MetricsExtension for PgMetrics {
    fn collect(&self, sink: &mut MetricSink<'_>) {
        self.durations(sink);
        self.cache(sink);
        self.transactions(sink);
        self.timeouts(sink);
        self.statements(sink);
        self.classes(sink);
        self.tables(sink);
        self.result_cache(sink);
        crate::http_slow::collect(self.slow_table.as_deref(), sink);
    }
}

/// Tables exported by name; the rest are summed as `other`.
const TOP_TABLES: usize = 20;

impl PgMetrics {
    /// The result cache, when the pool has one.
    fn result_cache(&self, sink: &mut MetricSink<'_>) {
        let Some(cache) = &self.cache else { return };
        let s = cache.stats();
        let help = "Result cache events.";
        for (event, n) in [
            ("hit", s.hits),
            ("miss", s.misses),
            ("join", s.joins),
            ("invalidated", s.invalidated),
            ("too_large", s.too_large),
            ("evicted", s.evictions),
            ("bypassed", s.bypassed),
        ] {
            sink.counter(names::CACHE_EVENTS, help, &[("event", event)], n);
        }
        sink.gauge(
            names::CACHE_BYTES,
            "Result cache bytes kept.",
            &[],
            s.bytes as f64,
        );
        sink.gauge(
            names::CACHE_ENTRIES,
            "Result cache entries kept.",
            &[],
            s.entries as f64,
        );
    }

    /// Per table (the 20 with the most time, the rest as `other`): calls
    /// by kind and time.
    fn tables(&self, sink: &mut MetricSink<'_>) {
        let mut all = self.statements.tables();
        let mut rest = all.split_off(all.len().min(TOP_TABLES));
        if let Some(i) = all.iter().position(|t| t.table == crate::OTHER_TABLES) {
            rest.push(all.remove(i));
        }
        if !rest.is_empty() {
            let mut other = crate::TableStat {
                table: crate::OTHER_TABLES.to_owned(),
                reads: 0,
                writes: 0,
                errors: 0,
                total: std::time::Duration::ZERO,
            };
            for t in rest {
                other.reads += t.reads;
                other.writes += t.writes;
                other.errors += t.errors;
                other.total += t.total;
            }
            all.push(other);
        }
        for t in all {
            let help = "Calls of statements naming a table, by kind.";
            for (kind, n) in [("read", t.reads), ("write", t.writes)] {
                let labels = [("table", t.table.as_str()), ("kind", kind)];
                sink.counter(names::TABLE_CALLS, help, &labels, n);
            }
            let labels = [("table", t.table.as_str())];
            let help = "Time in statements naming a table.";
            sink.counter_f64(names::TABLE_SECONDS, help, &labels, t.total.as_secs_f64());
        }
    }

    /// Per query class: calls, errors, timeouts, near timeouts, deadline
    /// (one series per class the pool defines: bounded).
    fn classes(&self, sink: &mut MetricSink<'_>) {
        for c in self.classes.snapshot() {
            let labels = [("class", c.class.as_str())];
            sink.counter(
                names::CLASS_CALLS,
                "Statements run in a query class.",
                &labels,
                c.calls,
            );
            sink.counter(
                names::CLASS_ERRORS,
                "Failed statements of a query class.",
                &labels,
                c.errors,
            );
            let help = "Statements stopped by their query class's deadline.";
            sink.counter(names::CLASS_TIMEOUTS, help, &labels, c.timeouts);
            let help =
                "Statements that finished above the near-timeout share of their class's deadline.";
            sink.counter(names::CLASS_NEAR_TIMEOUTS, help, &labels, c.near_timeouts);
            if let Some(d) = c.deadline {
                let help = "A query class's deadline.";
                sink.gauge(names::CLASS_DEADLINE, help, &labels, d.as_secs_f64());
            }
        }
    }
}

/// The `database:queryErrorRate` check: failed statements as a share of
/// statements run over the health window, judged against
/// [`HealthConfig::query_error_percent`](lido_http::HealthConfig::query_error_percent)
/// (passes below `min_samples` statements). Counts need statistics on
/// (`PgPoolBuilder::statistics`, the default).
#[derive(Debug, Clone)]
pub struct QueryErrorRate {
    stats: Arc<PgStats>,
    statistics: bool,
}

impl QueryErrorRate {
    /// The check over `pool`'s statements.
    pub fn new(pool: &PgPool) -> Self {
        let ctx = &pool.core().manager().ctx;
        Self {
            stats: Arc::clone(&ctx.stats),
            statistics: ctx.obs.statistics,
        }
    }
}

impl BackendCheck for QueryErrorRate {
    fn key(&self) -> &str {
        keys::QUERY_ERRORS
    }

    fn counters(&self) -> Vec<u64> {
        vec![self.stats.queries(), self.stats.query_errors()]
    }

    fn check<'a>(&'a self, ctx: CheckContext<'a>) -> BoxFuture<'a, Observation> {
        let cfg = ctx.config;
        let t = cfg.query_error_percent;
        let o = if self.statistics {
            let (run, failed) = (ctx.counter(0), ctx.counter(1));
            error_rate(t, cfg.min_samples, failed, run, "statements", &ctx)
        } else {
            Observation::pass()
                .value(0.0, "percent")
                .threshold(t)
                .output("not counted: statistics are off (PgPoolBuilder::statistics(false))")
        };
        Box::pin(std::future::ready(o))
    }
}

/// `pool` under `name`: the same as `NamedPool::new(name, pool.clone())`,
/// [`PgMetrics`] and [`QueryErrorRate`] included.
pub fn named(name: impl Into<Arc<str>>, pool: &PgPool) -> NamedPool {
    NamedPool::new(name, pool.clone())
}

impl PoolBackend for PgPool {
    type Manager = PgManager;

    fn core_pool(&self) -> &lido_core::Pool<PgManager> {
        self.core()
    }

    fn backend_checks(&self) -> Vec<Arc<dyn BackendCheck>> {
        vec![Arc::new(QueryErrorRate::new(self))]
    }

    fn backend_metrics(&self) -> Vec<Arc<dyn MetricsExtension>> {
        vec![Arc::new(PgMetrics::new(self))]
    }

    /// While the watchdog holds the server not answering: readiness fails
    /// and the health ping fails at once, naming the server and how long it
    /// has been silent.
    fn unavailable(&self) -> Option<String> {
        let e = self.not_answering()?;
        e.backend().map(ToString::to_string)
    }
}

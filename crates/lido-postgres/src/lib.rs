//! # lido-postgres
//!
//! lido's PostgreSQL backend, on tokio-postgres and rustls:
//!
//! - [`PgConfig`]: libpq URLs, `key=value` strings, the `PG*` environment and
//!   `DATABASE_URL`; multiple hosts with `target_session_attrs`; every
//!   `sslmode` with libpq's meaning, `sslrootcert`, client certificates.
//!   `Debug` and `Display` never show the password.
//! - [`PgPool`]: a [`lido_core::Pool`] of [`PgConn`]s with server settings in
//!   the startup packet, an after-connect hook and a once-per-pool startup hook.
//! - [`PgConn`] derefs to [`tokio_postgres::Client`] and adds per-query
//!   timeouts that cancel on the server ([`PgConn::timeout`]), transactions
//!   with isolation, savepoints and a deadline ([`PgConn::begin`]), retrying
//!   transactions ([`PgConn::transaction_with_retry`]), and a per-connection
//!   LRU statement cache that survives DDL.
//! - PgBouncer transaction mode ([`PgPoolBuilder::pgbouncer`]): unnamed
//!   statements only, no session state.
//! - [`cluster::PgCluster`]: a primary and its streaming replicas, one pool
//!   per node: roles discovered by a monitor (`pg_is_in_recovery()`), lag in
//!   bytes and time with a hold-down rotation, read-your-writes by WAL
//!   position (on by default; tokens travel between requests), failover to
//!   a promoted replica, and a stated policy when no replica qualifies.
//! - [`PgError`] says what the server said, as libpq shows it:
//!   `ERROR 42P01: relation "nope" does not exist` (then `DETAIL` and
//!   `HINT`), and for connect errors the target tried:
//!   `127.0.0.1:5432: FATAL 28P01: password authentication failed for user
//!   "app"`. Never the password; lido adds no parameter values.
//!
//! ## Observability
//!
//! On by default, a few relaxed atomic adds per statement
//! ([`PgPoolBuilder::statistics`] turns them off):
//!
//! - [`PgStats`]: durations by [`Operation`] (lido-core's lock-free
//!   histograms), errors by SQLSTATE class, statement-cache, transaction,
//!   timeout and cancel counters.
//! - [`StatementStats`] ([`PgPool::statement_stats`]): pg_stat_statements in
//!   the client. Statements are normalized ([`normalize_sql`]: literals to
//!   `$n`, comments out, whitespace collapsed) and kept per [`fingerprint`]:
//!   calls, errors, rows, total/mean/p50/p95/p99 time; the 1000 most called
//!   are kept; [`StatementStats::top`] lists them.
//! - The slow-query log: statements at or above
//!   [`PgPoolBuilder::slow_query_threshold`] (1 s by default, per call with
//!   [`Timed::slow_query_threshold`]) are logged at WARN with target
//!   `lido::slow_query`: duration, normalized SQL cut to [`SQL_LOG_CHARS`],
//!   fingerprint, rows, `error.type`. Parameter values only with
//!   [`PgPoolBuilder::log_parameters`].
//! - The slow-query table (opt-in, [`PgPoolBuilder::slow_query_table`]):
//!   the same calls written to `lido.slow_queries` by a background task
//!   over its own connection, from a bounded queue that never blocks a
//!   caller (a full queue drops and counts: [`PgPool::slow_table_stats`]),
//!   with retention and, sampled per fingerprint, the statement's generic
//!   plan and its [`explain::Finding`]s. See [`slow_table`].
//! - [`explain`]: generic plans (`PREPARE` + `force_generic_plan` +
//!   `EXPLAIN EXECUTE`), `EXPLAIN ANALYZE` for read-only statements only,
//!   and findings a person can act on ([`explain::summarize`]).
//! - `tracing` spans `lido.acquire`, `lido.connect` and `lido.query` (INFO,
//!   target [`SPAN_TARGET`]) with OpenTelemetry's database attributes:
//!   `db.system`/`db.system.name` = `postgresql`, `db.namespace`,
//!   `db.operation.name`, `db.collection.name`, `server.address`,
//!   `server.port`, `db.response.returned_rows`, and on failure `error.type`
//!   and `db.response.status_code`; `otel.name` = `SELECT orders`.
//!   `db.query.text` (normalized) only with [`PgPoolBuilder::trace_query_text`].
//!   `examples/otel.rs` exports them over OTLP.
//! - Feature `http`: `PgPool` implements lido-http's `PoolSource`, so
//!   registering it with lido-http brings `PgMetrics` (all of it, on the
//!   Prometheus/OpenMetrics exporter) and the `database:queryErrorRate`
//!   health check along; `pool.health().await` with `lido_http::HealthExt`.
//!
//! A connection returned inside a transaction, or with a statement still
//! running, is rolled back (and the statement cancelled) before anyone else
//! gets it, or closed. lido reads the server's own transaction status from
//! each ReadyForQuery message ([`PgConn::transaction_status`]), so this
//! holds whatever ran: lido's methods, prepared statements, or the
//! tokio-postgres client directly.
//!
//! [`tenants::PgTenants`] keeps one pool per tenant (a database, a role or
//! a `search_path` each) under one global cap on server connections, with
//! fair sharing, per-tenant minimums and idle eviction.
//!
//! [`blocking::BlockingPgPool`] is the same pool for programs without an
//! async runtime.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use lido_postgres::{PgConfig, PgPool, TxOptions};
//!
//! let pool = PgPool::builder(PgConfig::parse("postgres://app@db/orders?sslmode=verify-full")?)
//!     .query_timeout(Some(Duration::from_secs(2)))
//!     .build()
//!     .await?;
//! let n: i64 = pool
//!     .transaction_with_retry(&TxOptions::new().serializable(), |tx| {
//!         Box::pin(async move {
//!             let row = tx.query_one("SELECT count(*) FROM orders", &[]).await?;
//!             Ok(row.get(0))
//!         })
//!     })
//!     .await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod blocking;
mod builder;
mod cache;
mod cache_feed;
mod cache_notify;
mod classes;
pub mod cluster;
mod config;
mod conn;
mod error;
pub mod explain;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "http")]
mod http_slow;
mod manager;
mod net;
mod obs;
mod pool;
pub mod slow_table;
pub mod tenants;
mod watchdog;

pub use builder::{PgPoolBuilder, DEFAULT_NOT_ANSWERING_AFTER, DEFAULT_QUERY_TIMEOUT};
pub use cache::CachedQuery;
pub use cache_feed::{FeedConfig, FeedError, WalFeed};
pub use cache_notify::{write_triggers_sql, NotifyFeedConfig, DEFAULT_NOTIFY_CHANNEL};
pub use classes::{ClassConn, PgClassPool};
pub use config::defaults::{default_host, default_user};
pub use config::env::PG_ENV;
pub use config::pgconfig::{PgConfig, RootCert, SslMode, TargetSessionAttrs};
pub use config::secret::Secret;
pub use config::session::SessionSettings;
pub use conn::exec::{Sql, SqlRef, Timed};
pub use conn::params::infer_type;
pub use conn::pgconn::PgConn;
pub use conn::transaction::Transaction;
pub use conn::tx_sql::{IsolationLevel, TxOptions};
pub use error::{
    ConfigError, PgBuildError, PgError, ResetFailure, SessionMismatch, TlsError, Unsupported,
};
pub use lido_core::ClassStat;
pub use manager::{Hook, PgManager};
pub use net::events::{describe, DialEvent, DialObserver, Lookup, Next, Stage, TlsOutcome};
pub use net::plan::{connect_traced, ConnectPlan, Dialed};
pub use net::target::Target;
pub use net::tls::{verification, Verification};
pub use net::tls_stream::TlsInfo;
pub use net::wire::TxStatus;
pub use obs::normalize::{fingerprint, normalize_sql};
pub use obs::open_tx::OpenTransaction;
pub use obs::result_cache::{CacheStats, ResultCacheConfig};
pub use obs::slowlog::SQL_LOG_CHARS;
pub use obs::spans::{DB_SYSTEM, SPAN_TARGET};
pub use obs::statements::{StatementOrder, StatementStat, StatementStats};
pub use obs::statements_json::STATEMENTS_JSON_FORMAT;
pub use obs::stats::{Operation, PgStats};
pub use obs::table_stats::{TableStat, OTHER_TABLES};
pub use obs::tables::tables_of;
pub use pool::{PgPool, PgPooled, PoolError};
pub use slow_table::{
    ExplainSampling, SlowTableConfig, SlowTableError, SlowTableStats, DEFAULT_SLOW_TABLE,
};
pub use tenants::{PgTenants, PgTenantsBuilder, TenantLimits, TenantsError, TenantsSnapshot};

#[cfg(feature = "http")]
pub use http::PgMetrics;

pub use futures::future::BoxFuture;
pub use tokio_postgres;

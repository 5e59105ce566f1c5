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
//!
//! A connection returned inside a transaction, or with a statement still
//! running, is rolled back (and the statement cancelled) before anyone else
//! gets it, or closed.
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

mod config;
mod conn;
mod conninfo;
mod env;
mod error;
mod exec;
mod manager;
mod params;
mod pool;
mod retry;
mod secret;
mod session;
mod stats;
mod stmt_cache;
mod timeout;
mod tls;
mod transaction;
mod url;

pub use config::{PgConfig, RootCert, Secret, SslMode, TargetSessionAttrs};
pub use conn::PgConn;
pub use env::PG_ENV;
pub use error::{ConfigError, PgBuildError, PgError, TlsError};
pub use exec::{Sql, SqlRef, Timed};
pub use manager::{Hook, PgManager};
pub use params::infer_type;
pub use pool::{PgPool, PgPoolBuilder, PgPooled, PoolError};
pub use session::SessionSettings;
pub use stats::PgStats;
pub use tls::{verification, Verification};
pub use transaction::{IsolationLevel, Transaction, TxOptions};

pub use futures::future::BoxFuture;
pub use tokio_postgres;

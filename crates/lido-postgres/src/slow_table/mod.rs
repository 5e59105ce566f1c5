//! The slow-query table: the calls the slow-query log reports, also kept
//! in a database table (opt-in, [`PgPoolBuilder::slow_query_table`](crate::PgPoolBuilder::slow_query_table)).
//!
//! A slow call puts one row in a bounded in-memory queue (a `try_send`: a
//! caller never waits; a full queue drops the row and counts it). One
//! background task drains the queue in batches, one `INSERT ... SELECT FROM
//! unnest(...)` per batch, over its own single connection (outside the
//! pool's `max_size`), reconnecting with backoff while the database is
//! down. It creates the table when allowed, deletes rows older than the
//! retention, and, for a sample of slow statements (at most one per
//! fingerprint per [`ExplainSampling::per_fingerprint`]), fetches the
//! generic plan ([`crate::explain::explain_generic`]) and stores it with
//! its [`findings`](crate::explain::summarize) in the row.
//!
//! The table ([`SlowTableConfig::ddl`] gives the exact DDL):
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS lido.slow_queries (id bigserial PRIMARY KEY,
//!   logged_at timestamptz NOT NULL DEFAULT now(), duration_ms double precision NOT NULL,
//!   fingerprint text NOT NULL, query text NOT NULL, rows bigint, sqlstate text,
//!   class text, application_name text, database text, call_site text, params text,
//!   plan jsonb, findings jsonb)
//! ```
//!
//! `query` is the normalized SQL (literals replaced by `$n`), `fingerprint`
//! its [`fingerprint`](crate::fingerprint) as 16 hex digits, `sqlstate` the
//! call's `error.type` (the SQLSTATE for server errors; `timeout`,
//! `connection`, ... otherwise), `params` the parameter values only with
//! `log_parameters`. No password is ever written.

mod config;
mod ddl;
mod plans;
mod queue;
mod row;
mod shared;
mod writer;

pub use config::{ExplainSampling, SlowTableConfig, SlowTableStats, DEFAULT_SLOW_TABLE};
pub use ddl::SlowTableError;
pub(crate) use queue::SlowTable;
pub(crate) use row::SlowRow;
pub(crate) use writer::Link;

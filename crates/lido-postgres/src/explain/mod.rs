//! EXPLAIN analysis: a statement's plan as JSON, and [`Finding`]s a person
//! can act on ([`summarize`]).
//!
//! - [`explain_generic`]: the generic plan (the one a prepared statement
//!   gets for any parameter values), without running the statement:
//!   `PREPARE lido_explain_N(types) AS <sql>`, then inside a read-only
//!   transaction `SET LOCAL plan_cache_mode = force_generic_plan` and
//!   `EXPLAIN (FORMAT JSON) EXECUTE lido_explain_N(NULL, ...)`; rolled back
//!   and deallocated. Parameters without a given type are inferred by the
//!   server. This is what the slow-query table stores.
//! - [`explain_analyze`]: `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` with real
//!   parameter values. It runs the statement, so only statements that
//!   cannot write are accepted ([`ExplainError::Writes`]), and they run in a
//!   `READ ONLY` transaction that is rolled back.
//!
//! ```no_run
//! # async fn f(pool: lido_postgres::PgPool) -> Result<(), Box<dyn std::error::Error>> {
//! use lido_postgres::explain::{explain_generic, summarize};
//! let conn = pool.get().await?;
//! let plan = explain_generic(&conn, "SELECT * FROM orders WHERE note = $1", &[]).await?;
//! for f in summarize(&plan) {
//!     println!("{}: {} ({})", f.node, f.message, f.suggestion);
//! }
//! # Ok(()) }
//! ```

mod findings;
mod node;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;

use crate::error::PgError;
use crate::obs::normalize::normalize_sql;
use crate::obs::summary::summarize as summarize_sql;
use crate::obs::table_stats::may_write;

pub use findings::{summarize, summarize_with, Finding, FindingKind, TableSize, Thresholds};
pub use node::relations;

/// The longest an EXPLAIN may take (`SET LOCAL statement_timeout`).
pub const EXPLAIN_TIMEOUT_MS: u32 = 10_000;

/// The longest [`explain_generic`] waits for a table lock (a migration
/// holding one), `SET LOCAL lock_timeout`.
pub const EXPLAIN_LOCK_TIMEOUT_MS: u32 = 1_000;

/// Why a plan could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExplainError {
    /// `EXPLAIN ANALYZE` runs the statement; this one may write.
    #[error("EXPLAIN ANALYZE refused: the statement may write ({operation}); use explain_generic")]
    Writes {
        /// Its first keyword (`UPDATE`, ...), or `unknown`.
        operation: String,
    },
    /// The server gave no plan, or one that is not JSON.
    #[error("EXPLAIN returned no JSON plan: {0}")]
    NoPlan(String),
    /// The server refused (the statement cannot be prepared, types...).
    #[error(transparent)]
    Db(#[from] PgError),
}

impl From<tokio_postgres::Error> for ExplainError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e.into())
    }
}

/// `ident` quoted as a PostgreSQL identifier.
pub(crate) fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

static NEXT: AtomicU64 = AtomicU64::new(1);

/// The generic plan of `sql` (`$n` placeholders allowed), as the JSON that
/// `EXPLAIN (FORMAT JSON)` returns. `param_types` gives the types of `$1`,
/// `$2`, ... (fewer, or none, and the server infers the rest).
/// Nothing is executed: the statement is only planned.
///
/// It opens and rolls back its own transaction: call it on a connection
/// that is not inside one.
pub async fn explain_generic(
    client: &Client,
    sql: &str,
    param_types: &[Type],
) -> Result<Value, ExplainError> {
    let name = format!("lido_explain_{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let types: Vec<String> = param_types
        .iter()
        .map(|t| format!("{}.{}", quote_ident(t.schema()), quote_ident(t.name())))
        .collect();
    let head = if types.is_empty() {
        format!("PREPARE {name} AS ")
    } else {
        format!("PREPARE {name}({}) AS ", types.join(", "))
    };
    client.batch_execute("BEGIN READ ONLY").await?;
    let mut prepared = false;
    let result = generic_in_tx(client, &name, &format!("{head}{sql}"), &mut prepared).await;
    // A prepared statement outlives the transaction: deallocated inside it
    // while it is healthy (behind PgBouncer the same server session), else
    // after the rollback.
    let dealloc = format!("DEALLOCATE {name}");
    if prepared && result.is_ok() && client.batch_execute(&dealloc).await.is_ok() {
        prepared = false;
    }
    let rollback = client.batch_execute("ROLLBACK").await;
    if prepared {
        let _ = client.batch_execute(&dealloc).await;
    }
    let plan = result?;
    rollback?;
    Ok(plan)
}

/// Unnamed statements only (`*_typed`): they work behind PgBouncer too.
async fn generic_in_tx(
    client: &Client,
    name: &str,
    prepare: &str,
    prepared: &mut bool,
) -> Result<Value, ExplainError> {
    client
        .batch_execute(&format!(
            "SET LOCAL plan_cache_mode = force_generic_plan; \
             SET LOCAL statement_timeout = {EXPLAIN_TIMEOUT_MS}; \
             SET LOCAL lock_timeout = {EXPLAIN_LOCK_TIMEOUT_MS}"
        ))
        .await?;
    // The extended protocol: one statement only, whatever `sql` holds.
    client.execute_typed(prepare, &[]).await?;
    *prepared = true;
    let rows = client
        .query_typed(
            "SELECT coalesce(array_length(parameter_types, 1), 0) FROM pg_prepared_statements WHERE name = $1",
            &[(&name, Type::TEXT)],
        )
        .await?;
    let n: i32 = rows.first().map_or(0, |r| r.get(0));
    let args = if n > 0 {
        format!(
            "({})",
            vec!["NULL"; usize::try_from(n).unwrap_or(0)].join(", ")
        )
    } else {
        String::new()
    };
    let explain = format!("EXPLAIN (FORMAT JSON) EXECUTE {name}{args}");
    let rows = client.query_typed(&explain, &[]).await?;
    let row = rows
        .first()
        .ok_or_else(|| ExplainError::NoPlan("no row".into()))?;
    json_plan(row)
}

/// `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` of `sql` with `params`: it
/// runs the statement, in a `READ ONLY` transaction that is rolled back.
/// A statement that may write is refused ([`ExplainError::Writes`]) before
/// anything is sent; the read-only transaction stops one that hides a
/// write (a volatile function) on the server. Call it on a connection
/// that is not inside a transaction.
pub async fn explain_analyze(
    client: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Value, ExplainError> {
    let summary = summarize_sql(&normalize_sql(sql));
    let operation = summary.operation.as_deref();
    if operation.is_none() || may_write(operation, sql) {
        return Err(ExplainError::Writes {
            operation: operation.unwrap_or("unknown").to_owned(),
        });
    }
    client.batch_execute("BEGIN READ ONLY").await?;
    let explain = format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}");
    let result = client.query_one(&explain, params).await;
    let rollback = client.batch_execute("ROLLBACK").await;
    let row = result?;
    rollback?;
    json_plan(&row)
}

fn json_plan(row: &tokio_postgres::Row) -> Result<Value, ExplainError> {
    row.try_get::<_, Value>(0)
        .map_err(|e| ExplainError::NoPlan(e.to_string()))
}

/// `pg_class` sizes of the relations `plan` scans, by the name the plan
/// gives them (resolved through the session's `search_path`).
pub async fn table_sizes(
    client: &Client,
    plan: &Value,
) -> Result<HashMap<String, TableSize>, ExplainError> {
    let names = relations(plan);
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    let quoted: Vec<String> = names
        .iter()
        .map(|n| n.split('.').map(quote_ident).collect::<Vec<_>>().join("."))
        .collect();
    let rows = client
        .query_typed(
            "SELECT n.i::int4, c.reltuples::float8, c.relpages::float8 \
             FROM unnest($1::text[]) WITH ORDINALITY AS n(name, i) \
             JOIN pg_class c ON c.oid = to_regclass(n.name)",
            &[(&quoted, Type::TEXT_ARRAY)],
        )
        .await?;
    let mut out = HashMap::new();
    for r in rows {
        let i = usize::try_from(r.get::<_, i32>(0) - 1).unwrap_or(usize::MAX);
        if let Some(name) = names.get(i) {
            out.insert(
                name.clone(),
                TableSize {
                    rows: r.get(1),
                    pages: r.get(2),
                },
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

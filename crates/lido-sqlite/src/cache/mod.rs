//! A result cache on a SQLite pool (opt-in, [`Builder::result_cache`]):
//! rows of read-only statements kept by statement text and parameter
//! values in lido-core's `ResultStore` (bounded by bytes), each with a TTL, one
//! query for concurrent identical misses. Every write through the pool's
//! writer lane (any closure on the writer connection) makes every entry
//! stale before the writer answers its caller, so a read after a write
//! never sees the rows from before it; writes by other processes reach the
//! cache only through the TTL. A statement that is not read-only (asked of
//! SQLite itself: `sqlite3_stmt_readonly`) or calls a function whose result
//! changes from call to call (`random()`, `'now'`, `changes()`, ...) gets
//! [`Error::NotCacheable`] with the reason.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use lido_sqlite::rusqlite::types::Value;
//! use lido_sqlite::{CacheConfig, SqlitePool};
//!
//! let db = SqlitePool::memory("cache_doc").result_cache(CacheConfig::default()).build().await?;
//! db.write(|c| c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2)")).await?;
//! let rows = db.cached().query("SELECT x FROM t WHERE x > ?1", &[Value::Integer(1)]).await?;
//! assert_eq!(rows[0][0], Value::Integer(2));
//! # Ok(()) }
//! ```

pub(crate) mod config;
pub(crate) mod store;

use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::Value;

use crate::cache::config::{CacheConfig, CacheStats};
use lido_core::result_store::Stored;

use crate::cache::store::{key, weight, Rows};
use crate::error::{Error, Result};
use crate::options::Builder;
use crate::pool::SqlitePool;

impl Builder {
    /// Keeps results of [`SqlitePool::cached`] reads (see [`CacheConfig`]).
    pub fn result_cache(mut self, config: CacheConfig) -> Self {
        self.cache = Some(config);
        self
    }
}

/// A read through the result cache; from [`SqlitePool::cached`].
#[derive(Debug, Clone, Copy)]
pub struct CachedRead<'p> {
    pool: &'p SqlitePool,
    ttl: Option<Duration>,
}

impl SqlitePool {
    /// A read through the pool's result cache (its default TTL).
    pub fn cached(&self) -> CachedRead<'_> {
        CachedRead {
            pool: self,
            ttl: None,
        }
    }

    /// The result cache's counters (`None`: the pool has no cache).
    pub async fn cache_stats(&self) -> Option<CacheStats> {
        let c = self.inner.cache.as_ref()?;
        c.store.settle().await;
        let n = c.store.counts();
        Some(CacheStats {
            hits: n.hits,
            misses: n.misses,
            joins: n.joins,
            invalidated: n.invalidated,
            too_large: n.too_large,
            bytes: n.bytes,
            entries: n.entries,
        })
    }
}

impl CachedRead<'_> {
    /// Keeps this result for `ttl`.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The rows of `sql` with `params` (`?1`, `?2`, ...): from the cache
    /// while valid, else from a reader (and kept).
    pub async fn query(&self, sql: &str, params: &[Value]) -> Result<Rows> {
        let Some(cache) = self.pool.inner.cache.as_ref() else {
            return Err(not_cacheable(
                "the pool has no result cache (Builder::result_cache)",
            ));
        };
        let key = key(sql, params);
        let writes = || self.pool.inner.db.writer.writes();
        if let Some(rows) = cache.store.get(&key, |before| *before == writes()).await {
            return Ok(rows);
        }
        volatile(sql).map_or(Ok(()), |f| {
            Err(not_cacheable(&format!(
                "it calls {f}, whose result changes from call to call"
            )))
        })?;
        let ttl = self.ttl.unwrap_or(cache.config.default_ttl);
        let fill = async {
            let tag = writes();
            let rows = self.run(sql, params.to_vec()).await?;
            let bytes = weight(&rows);
            Ok::<_, Error>(Stored {
                rows,
                bytes,
                ttl,
                tag,
            })
        };
        cache.store.fill(key, fill).await.map_err(unshared)
    }

    /// Runs `sql` on a reader, refusing a statement that is not read-only.
    async fn run(&self, sql: &str, params: Vec<Value>) -> Result<Rows> {
        let text = sql.to_owned();
        let rows = self
            .pool
            .read(move |c| {
                let mut stmt = c.prepare_cached(&text)?;
                if !stmt.readonly() {
                    return Err(crate::abort(NotReadOnly));
                }
                let cols = stmt.column_count();
                let mut out = Vec::new();
                let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
                while let Some(r) = rows.next()? {
                    let row: rusqlite::Result<Vec<Value>> = (0..cols).map(|i| r.get(i)).collect();
                    out.push(row?);
                }
                Ok(out)
            })
            .await
            .map_err(|e| match e {
                Error::Aborted(a) if a.is::<NotReadOnly>() => {
                    not_cacheable("only read-only statements are cached; this one writes")
                }
                other => other,
            })?;
        Ok(rows.into())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("not read-only")]
struct NotReadOnly;

/// The error of a cached read that failed (shared by every caller who
/// joined it): a refusal as it was, anything else shared.
fn unshared(e: Arc<Error>) -> Error {
    match Arc::try_unwrap(e) {
        Ok(e) => e,
        Err(shared) => match &*shared {
            Error::NotCacheable { reason } => not_cacheable(reason),
            _ => Error::Shared(shared),
        },
    }
}

fn not_cacheable(reason: &str) -> Error {
    Error::NotCacheable {
        reason: reason.to_owned(),
    }
}

/// A function in `sql` whose result changes from call to call, if any.
fn volatile(sql: &str) -> Option<&'static str> {
    const VOLATILE: [(&str, &str); 9] = [
        ("random(", "random()"),
        ("randomblob(", "randomblob()"),
        ("'now'", "'now'"),
        ("changes(", "changes()"),
        ("last_insert_rowid(", "last_insert_rowid()"),
        ("current_timestamp", "CURRENT_TIMESTAMP"),
        ("current_date", "CURRENT_DATE"),
        ("current_time", "CURRENT_TIME"),
        ("unixepoch()", "unixepoch()"),
    ];
    let lower = sql.to_ascii_lowercase();
    VOLATILE
        .iter()
        .find(|(needle, _)| lower.contains(needle))
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_value_and_type_and_volatile_calls_are_named() {
        let k = |p: &[Value]| key("SELECT ?1", p);
        assert_ne!(k(&[Value::Integer(1)]), k(&[Value::Integer(2)]));
        assert_ne!(k(&[Value::Integer(1)]), k(&[Value::Real(1.0)]));
        assert_ne!(
            k(&[Value::Text("a".into())]),
            k(&[Value::Blob(b"a".to_vec())])
        );
        assert_eq!(k(&[Value::Null]), k(&[Value::Null]));
        assert_eq!(volatile("SELECT datetime('now')"), Some("'now'"));
        assert_eq!(volatile("select abs(random())"), Some("random()"));
        assert_eq!(volatile("SELECT x FROM t"), None);
    }
}

//! A pool's result cache: decoded rows keyed by statement text and
//! parameter values in lido-core's [`ResultStore`] (bounded by bytes, a TTL
//! per entry, single flight for concurrent misses), each entry checked
//! against the pool's [`WriteLog`] before it is served.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use lido_core::result_store::{ResultStore, Stored};
use tokio_postgres::types::{FromSql, ToSql, Type};
use tokio_postgres::Row;

use crate::conn::params::infer_type;
use crate::error::PgError;
use crate::obs::feed_position::FeedPosition;
use crate::obs::tables::tables_of;
use crate::obs::writes::{Snapshot, WriteLog};

/// Result cache settings (`PgPoolBuilder::result_cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultCacheConfig {
    /// Most bytes of rows kept (default 64 MiB).
    pub max_bytes: u64,
    /// A result larger than this is returned but not kept (default 1 MiB).
    pub max_entry_bytes: u64,
    /// How long an entry is served when the call names no TTL (default 30 s).
    pub default_ttl: Duration,
    /// How long a read that must see a WAL position (`CachedQuery::after`,
    /// `CachedQuery::fresh`) waits for the outside-writes feed to reach it
    /// before it goes to the server instead (default 250 ms).
    pub position_wait: Duration,
}

impl Default for ResultCacheConfig {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_entry_bytes: 1 << 20,
            default_ttl: Duration::from_secs(30),
            position_wait: Duration::from_millis(250),
        }
    }
}

/// What the cache did since the pool was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Calls served from the cache.
    pub hits: u64,
    /// Calls that ran their query (and, within the bounds, kept its rows).
    pub misses: u64,
    /// Calls that waited for another caller's identical query (single flight).
    pub joins: u64,
    /// Entries found out of date after a write through the pool (dropped).
    pub invalidated: u64,
    /// Results larger than `max_entry_bytes`, returned but not kept.
    pub too_large: u64,
    /// Entries pushed out by the byte bound or their TTL.
    pub evictions: u64,
    /// Bytes of rows kept now (approximate: the rows' column bytes).
    pub bytes: u64,
    /// Entries kept now.
    pub entries: u64,
    /// Reads that had to see a WAL position the outside-writes feed had
    /// not reached in time (or no feed ran), served by the server.
    pub bypassed: u64,
}

/// The key: statement text and parameter values with their types.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    sql: Arc<str>,
    params: Box<[u8]>,
}

/// A pool's result cache: lido-core's [`ResultStore`], tagged with the
/// write generations from before each statement ran.
pub(crate) struct ResultCache {
    store: ResultStore<Key, Arc<[Row]>, Snapshot>,
    pub(crate) writes: Arc<WriteLog>,
    pub(crate) position: Arc<FeedPosition>,
    config: ResultCacheConfig,
    /// Reads that had to see a WAL position and went to the server.
    bypassed: AtomicU64,
}

impl std::fmt::Debug for ResultCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultCache")
            .field("config", &self.config)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl ResultCache {
    pub(crate) fn new(config: ResultCacheConfig) -> Self {
        Self {
            store: ResultStore::new(config.max_bytes, config.max_entry_bytes),
            writes: Arc::new(WriteLog::default()),
            position: Arc::new(FeedPosition::default()),
            config,
            bypassed: AtomicU64::new(0),
        }
    }

    /// The rows of `sql` with `params`: from the cache while still valid,
    /// else from `run` (one run for concurrent identical misses). With
    /// `after`, only once the outside-writes feed has applied every commit
    /// up to that WAL position; else straight from `run`.
    pub(crate) async fn get_or_run<F, Fut>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        ttl: Option<Duration>,
        after: Option<u64>,
        run: F,
    ) -> Result<Arc<[Row]>, PgError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Row>, PgError>>,
    {
        let key = key(sql, params)?;
        if let Some(lsn) = after {
            if !self.position.reach(lsn, self.config.position_wait).await {
                cacheable(sql).map_err(|reason| PgError::NotCacheable { reason })?;
                self.bypassed.fetch_add(1, Ordering::Relaxed);
                return Ok(run().await?.into());
            }
        }
        // Only a cacheable statement was ever kept: a hit needs no check.
        let valid = |snapshot: &Snapshot| self.writes.still_valid(snapshot);
        if let Some(rows) = self.store.get(&key, valid).await {
            return Ok(rows);
        }
        cacheable(sql).map_err(|reason| PgError::NotCacheable { reason })?;
        let ttl = ttl.unwrap_or(self.config.default_ttl);
        let fill = async {
            // Generations from before the query: a write racing it makes
            // the entry out of date at once.
            let tag = self.writes.snapshot(&tables_of(sql));
            let rows: Arc<[Row]> = run().await?.into();
            let bytes = weight(&rows);
            Ok::<_, PgError>(Stored {
                rows,
                bytes,
                ttl,
                tag,
            })
        };
        self.store
            .fill(key, fill)
            .await
            .map_err(|e| PgError::Cached(e.to_string()))
    }

    /// Runs the cache's pending housekeeping (counts then are exact).
    pub(crate) async fn settle(&self) {
        self.store.settle().await;
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let c = self.store.counts();
        CacheStats {
            hits: c.hits,
            misses: c.misses,
            joins: c.joins,
            invalidated: c.invalidated,
            too_large: c.too_large,
            bypassed: self.bypassed.load(Ordering::Relaxed),
            evictions: c.evictions,
            bytes: c.bytes,
            entries: c.entries,
        }
    }
}

/// Why `sql` cannot be cached, if it cannot: it must be a plain read with
/// no volatile function and no row lock.
pub(crate) fn cacheable(sql: &str) -> Result<(), String> {
    let lower = sql.to_ascii_lowercase();
    let first = skip_comments(&lower)
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty())
        .unwrap_or("");
    if first != "select" && first != "values" && first != "table" {
        return Err(format!(
            "only reads are cached; this statement starts with {:?}",
            first.to_uppercase()
        ));
    }
    const VOLATILE: [&str; 14] = [
        "now(",
        "random(",
        "nextval(",
        "currval(",
        "setval(",
        "clock_timestamp(",
        "statement_timestamp(",
        "timeofday(",
        "transaction_timestamp(",
        "gen_random_uuid(",
        "current_timestamp",
        "localtimestamp",
        "pg_sleep",
        "txid_current",
    ];
    if let Some(f) = VOLATILE.iter().find(|f| lower.contains(*f)) {
        let f = f.trim_end_matches('(');
        return Err(format!(
            "it calls {f}, whose result changes from call to call"
        ));
    }
    for lock in [
        "for update",
        "for share",
        "for no key update",
        "for key share",
    ] {
        if lower.contains(lock) {
            return Err(format!("it locks rows ({})", lock.to_uppercase()));
        }
    }
    Ok(())
}

/// `sql` without its leading whitespace and comments.
fn skip_comments(mut sql: &str) -> &str {
    loop {
        sql = sql.trim_start();
        if let Some(rest) = sql.strip_prefix("--") {
            sql = rest.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(rest) = sql.strip_prefix("/*") {
            sql = rest.split_once("*/").map_or("", |(_, r)| r);
        } else {
            return sql;
        }
    }
}

/// The key of `sql` with `params`: each value encoded with its inferred type.
fn key(sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Key, PgError> {
    let mut buf = BytesMut::new();
    for (index, p) in params.iter().enumerate() {
        let value = *p as &dyn ToSql;
        let ty = infer_type(value).ok_or(PgError::UnknownParamType { index })?;
        buf.extend_from_slice(&ty.oid().to_le_bytes());
        let start = buf.len();
        buf.extend_from_slice(&[0; 5]);
        let null = value
            .to_sql_checked(&ty, &mut buf)
            .map_err(|e| PgError::NotCacheable {
                reason: format!("parameter {index} could not be encoded: {e}"),
            })?;
        let null = matches!(null, tokio_postgres::types::IsNull::Yes);
        let len = u32::try_from(buf.len() - start - 5).unwrap_or(u32::MAX);
        buf[start] = u8::from(null);
        buf[start + 1..start + 5].copy_from_slice(&len.to_le_bytes());
    }
    Ok(Key {
        sql: Arc::from(sql),
        params: buf.to_vec().into_boxed_slice(),
    })
}

/// The column bytes of `rows`, plus a little per row.
fn weight(rows: &[Row]) -> u64 {
    rows.iter()
        .map(|r| {
            let cols: usize = (0..r.len())
                .map(|i| r.try_get::<_, Raw>(i).map_or(0, |raw| raw.0))
                .sum();
            (cols + 32) as u64
        })
        .sum::<u64>()
        .max(1)
}

/// Any column's raw length.
struct Raw(usize);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.len()))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(0))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_reads_are_cacheable_and_the_reason_is_given() {
        assert!(cacheable("SELECT name FROM items WHERE id = $1").is_ok());
        let e = cacheable("UPDATE items SET n = 1").expect_err("write");
        assert!(e.contains("UPDATE"), "{e}");
        let e = cacheable("select now(), x from t").expect_err("volatile");
        assert!(e.contains("now"), "{e}");
        let e = cacheable("SELECT * FROM t FOR UPDATE").expect_err("lock");
        assert!(e.contains("FOR UPDATE"), "{e}");
        assert!(cacheable("  /* c */ VALUES (1)").is_ok());
    }

    #[test]
    fn keys_differ_by_parameter_value_and_type() {
        let a = key("SELECT $1", &[&1i32]).expect("key");
        let b = key("SELECT $1", &[&2i32]).expect("key");
        let c = key("SELECT $1", &[&1i64]).expect("key");
        let d = key("SELECT $1", &[&None::<i32>]).expect("key");
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(a, key("SELECT $1", &[&1i32]).expect("key"));
    }
}

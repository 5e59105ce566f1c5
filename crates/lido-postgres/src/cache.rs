//! The result cache on a pool: [`PgPool::cached`] runs a read through the
//! pool's result cache ([`PgPoolBuilder::result_cache`](crate::PgPoolBuilder::result_cache)):
//! rows kept by statement text and parameter values, bounded by bytes,
//! each with a TTL, one query for concurrent identical misses, and an
//! entry never served once a write through this pool touched one of its
//! tables since its query began (a write whose tables cannot be found, and
//! the commit of a lido transaction that wrote, count as touching every
//! table). Writes that bypass the pool are seen only through the TTL.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::classes::PgClassPool;
use crate::error::PgError;
use crate::obs::result_cache::{CacheStats, ResultCache};
use crate::pool::PgPool;

/// A read through the result cache; from [`PgPool::cached`].
///
/// ```no_run
/// # async fn f(pool: lido_postgres::PgPool) -> Result<(), lido_postgres::PgError> {
/// use std::time::Duration;
/// let rows = pool
///     .cached()
///     .ttl(Duration::from_secs(10))
///     .query("SELECT name FROM items WHERE id = $1", &[&7i32])
///     .await?;
/// # let _ = rows; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CachedQuery<'p> {
    pool: &'p PgPool,
    ttl: Option<Duration>,
    class: Option<PgClassPool<'p>>,
}

impl PgPool {
    /// A read through the pool's result cache (the pool's default TTL).
    pub fn cached(&self) -> CachedQuery<'_> {
        CachedQuery {
            pool: self,
            ttl: None,
            class: None,
        }
    }

    /// The result cache's counters (`None`: the pool has no cache).
    pub async fn cache_stats(&self) -> Option<CacheStats> {
        let cache = self.result_cache()?;
        cache.settle().await;
        Some(cache.stats())
    }

    pub(crate) fn result_cache(&self) -> Option<&Arc<ResultCache>> {
        self.ctx().obs.cache.as_ref()
    }
}

impl<'p> PgClassPool<'p> {
    /// A read through the result cache in this class (its lane and
    /// deadline), kept for the class's `cache_ttl` (else the pool's default).
    pub fn cached(&self) -> CachedQuery<'p> {
        CachedQuery {
            pool: self.pool(),
            ttl: self.class().cache_ttl,
            class: Some(self.clone()),
        }
    }
}

impl CachedQuery<'_> {
    /// Keeps this result for `ttl`.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The rows of `sql`: from the cache while valid, else from the server
    /// (and kept). [`PgError::NotCacheable`] says why a statement cannot be
    /// cached (a write, a volatile function, a row lock, a parameter whose
    /// type cannot be told), and is also the answer when the pool has no
    /// cache.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Arc<[Row]>, PgError> {
        let Some(cache) = self.pool.result_cache() else {
            return Err(PgError::NotCacheable {
                reason: "the pool has no result cache (PgPoolBuilder::result_cache)".to_owned(),
            });
        };
        let run = || async {
            match &self.class {
                Some(class) => class.query(sql, params).await,
                None => self.pool.get().await?.query(sql, params).await,
            }
        };
        cache.get_or_run(sql, params, self.ttl, run).await
    }
}

//! The result cache on a pool: [`PgPool::cached`] runs a read through the
//! pool's result cache ([`PgPoolBuilder::result_cache`](crate::PgPoolBuilder::result_cache)):
//! rows kept by statement text and parameter values, bounded by bytes,
//! each with a TTL, one query for concurrent identical misses, and an
//! entry never served once a write through this pool touched one of its
//! tables since its query began (a write whose tables cannot be found, and
//! the commit of a lido transaction that wrote, count as touching every
//! table). Writes that bypass the pool are seen through the TTL, or soon
//! after their commit with [`PgPool::watch_outside_writes`].
//!
//! Read-your-writes across pools and processes: a writer takes its
//! position after committing ([`PgPool::wal_position`]) and hands it on (a
//! cookie, a header, a queue message); a reader passes it to
//! [`CachedQuery::after`], and the cache answers only once its feed has
//! applied every commit up to it (else the server answers).
//! [`CachedQuery::fresh`] does the same with the server's position at the
//! moment of the read: no commit acknowledged before the read began is
//! missed, at the price of a round trip.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::classes::PgClassPool;
use crate::cluster::Lsn;
use crate::conn::pgconn::PgConn;
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
    after: Option<Lsn>,
    fresh: bool,
}

impl PgPool {
    /// A read through the pool's result cache (the pool's default TTL).
    pub fn cached(&self) -> CachedQuery<'_> {
        CachedQuery {
            pool: self,
            ttl: None,
            class: None,
            after: None,
            fresh: false,
        }
    }

    /// The server's WAL insert position now: after a commit, a token that
    /// every later read must see ([`CachedQuery::after`]).
    pub async fn wal_position(&self) -> Result<Lsn, PgError> {
        let conn = self.get().await?;
        server_position(&conn).await
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
            after: None,
            fresh: false,
        }
    }
}

impl CachedQuery<'_> {
    /// Keeps this result for `ttl`.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Answers from the cache only once the pool's outside-writes feed has
    /// applied every commit up to `token` (from [`PgPool::wal_position`],
    /// or a [`PgCluster`](crate::cluster::PgCluster) token); the server
    /// answers when it does not within
    /// [`ResultCacheConfig::position_wait`](crate::ResultCacheConfig::position_wait),
    /// or when no feed runs ([`CacheStats::bypassed`]).
    pub fn after(mut self, token: Lsn) -> Self {
        self.after = Some(self.after.map_or(token, |t| t.max(token)));
        self
    }

    /// Sees every commit acknowledged before this read: asks the server for
    /// its position first (one round trip), then as [`CachedQuery::after`].
    pub fn fresh(mut self) -> Self {
        self.fresh = true;
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
        let mut after = self.after;
        if self.fresh {
            // Its own short lease, given back at once: a hit (the case a
            // cache is for) needs no connection, and holding this one through
            // the lookup and the wait for the feed would keep it from other
            // callers; a miss leases again, a few microseconds.
            let now = server_position(&*self.pool.get().await?).await?;
            after = Some(after.map_or(now, |t| t.max(now)));
        }
        // A token is an insert position: the commit it follows has ended
        // by its replay mark (see `Lsn::replayed_mark`).
        let after = after.map(|t| t.replayed_mark().0);
        cache.get_or_run(sql, params, self.ttl, after, run).await
    }
}

/// `pg_current_wal_insert_lsn()` on `conn`.
async fn server_position(conn: &PgConn) -> Result<Lsn, PgError> {
    let row = conn
        .query_one("SELECT pg_current_wal_insert_lsn()", &[])
        .await?;
    Ok(row.try_get(0)?)
}

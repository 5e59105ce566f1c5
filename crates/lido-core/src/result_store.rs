//! [`ResultStore`]: the store behind a backend's result cache (lido-postgres
//! and lido-sqlite keep theirs in one): entries bounded by bytes, each with
//! its own TTL and a tag the backend checks for validity on every hit,
//! one run for concurrent identical misses, and the counters both report.
//!
//! What makes an entry out of date (write generations, a writer's count)
//! and what may be cached at all is the backend's; the store only asks.

use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;

/// One kept result: its rows, their approximate size, how long it may be
/// kept, and the backend's validity tag (taken before the statement ran).
#[derive(Debug)]
pub struct Stored<R, T> {
    /// The rows, cheap to clone (an `Arc`).
    pub rows: R,
    /// Approximate bytes (what the byte bound weighs).
    pub bytes: u64,
    /// How long it may be kept.
    pub ttl: Duration,
    /// What the backend checks on a hit.
    pub tag: T,
}

/// What a [`ResultStore`] did since it was made, and what it keeps now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreCounts {
    /// Calls served from the store.
    pub hits: u64,
    /// Calls that ran their statement.
    pub misses: u64,
    /// Calls that waited for another caller's identical statement.
    pub joins: u64,
    /// Entries found out of date on a hit (dropped).
    pub invalidated: u64,
    /// Results over the per-entry bound, returned but not kept.
    pub too_large: u64,
    /// Entries pushed out by the byte bound or their TTL.
    pub evictions: u64,
    /// Bytes kept now.
    pub bytes: u64,
    /// Entries kept now.
    pub entries: u64,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    joins: AtomicU64,
    invalidated: AtomicU64,
    too_large: AtomicU64,
    evictions: Arc<AtomicU64>,
}

struct Ttl;

impl<K, R, T> moka::Expiry<K, Arc<Stored<R, T>>> for Ttl {
    fn expire_after_create(&self, _: &K, v: &Arc<Stored<R, T>>, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// See the module docs.
///
/// ```
/// use lido_core::result_store::{ResultStore, Stored};
/// use std::sync::Arc;
/// use std::time::Duration;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store: ResultStore<&str, Arc<[i64]>, u64> = ResultStore::new(1 << 20, 1 << 10);
/// let generation = 7;
/// assert!(store.get(&"SELECT 1", |g| *g == generation).await.is_none());
/// let rows = store
///     .fill("SELECT 1", async {
///         Ok::<_, std::io::Error>(Stored { rows: Arc::from([1i64]), bytes: 8, ttl: Duration::from_secs(30), tag: generation })
///     })
///     .await
///     .unwrap();
/// assert_eq!(&*rows, &[1]);
/// assert!(store.get(&"SELECT 1", |g| *g == generation).await.is_some());
/// // A write moved the generation on: the entry is out of date.
/// assert!(store.get(&"SELECT 1", |g| *g == generation + 1).await.is_none());
/// let c = store.counts();
/// assert_eq!((c.hits, c.misses, c.invalidated), (1, 1, 1));
/// # }
/// ```
pub struct ResultStore<K, R, T> {
    cache: Cache<K, Arc<Stored<R, T>>>,
    max_entry_bytes: u64,
    counters: Counters,
}

impl<K, R, T> std::fmt::Debug for ResultStore<K, R, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultStore")
            .field("max_entry_bytes", &self.max_entry_bytes)
            .field("entries", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl<K, R, T> ResultStore<K, R, T>
where
    K: Hash + Eq + Send + Sync + 'static,
    R: Clone + Send + Sync + 'static,
    T: Send + Sync + 'static,
{
    /// A store of at most `max_bytes`, keeping no result over
    /// `max_entry_bytes`.
    pub fn new(max_bytes: u64, max_entry_bytes: u64) -> Self {
        let counters = Counters::default();
        let evicted = Arc::clone(&counters.evictions);
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_: &K, v: &Arc<Stored<R, T>>| u32::try_from(v.bytes).unwrap_or(u32::MAX))
            .expire_after(Ttl)
            .eviction_listener(move |_, _, cause| {
                if cause.was_evicted() {
                    evicted.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        Self {
            cache,
            max_entry_bytes,
            counters,
        }
    }

    /// The kept rows of `key` if `valid` accepts its tag (a hit); an entry
    /// it rejects is dropped (counted as invalidated).
    pub async fn get(&self, key: &K, valid: impl FnOnce(&T) -> bool) -> Option<R> {
        let v = self.cache.get(key).await?;
        if valid(&v.tag) {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            return Some(v.rows.clone());
        }
        self.counters.invalidated.fetch_add(1, Ordering::Relaxed);
        self.cache.invalidate(key).await;
        None
    }

    /// The rows of a miss: `fill` runs once for concurrent callers of the
    /// same `key` (the others wait and get its rows, counted as joins);
    /// its result is kept unless it is over the per-entry bound.
    pub async fn fill<E>(
        &self,
        key: K,
        fill: impl Future<Output = Result<Stored<R, T>, E>>,
    ) -> Result<R, Arc<E>>
    where
        K: Clone,
        E: Send + Sync + 'static,
    {
        let ran = AtomicBool::new(false);
        let init = async {
            ran.store(true, Ordering::Relaxed);
            fill.await.map(Arc::new)
        };
        let entry = self
            .cache
            .entry(key.clone())
            .or_try_insert_with(init)
            .await?;
        let value = entry.into_value();
        if ran.load(Ordering::Relaxed) {
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
            if value.bytes > self.max_entry_bytes {
                self.counters.too_large.fetch_add(1, Ordering::Relaxed);
                self.cache.invalidate(&key).await;
            }
        } else {
            self.counters.joins.fetch_add(1, Ordering::Relaxed);
        }
        Ok(value.rows.clone())
    }

    /// Runs the store's pending housekeeping (so the counts are exact).
    pub async fn settle(&self) {
        self.cache.run_pending_tasks().await;
    }

    /// The counts now (see [`settle`](Self::settle)).
    pub fn counts(&self) -> StoreCounts {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StoreCounts {
            hits: load(&c.hits),
            misses: load(&c.misses),
            joins: load(&c.joins),
            invalidated: load(&c.invalidated),
            too_large: load(&c.too_large),
            evictions: load(&c.evictions),
            bytes: self.cache.weighted_size(),
            entries: self.cache.entry_count(),
        }
    }
}

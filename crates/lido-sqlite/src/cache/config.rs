//! [`CacheConfig`] and [`CacheStats`]: the SQLite result cache's settings
//! and counters (plain data, below the pool and its options).

use std::time::Duration;

/// Result cache settings ([`Builder::result_cache`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most bytes of rows kept (default 64 MiB).
    pub max_bytes: u64,
    /// A result larger than this is returned but not kept (default 1 MiB).
    pub max_entry_bytes: u64,
    /// How long an entry is served when the call names no TTL (default 30 s).
    pub default_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_entry_bytes: 1 << 20,
            default_ttl: Duration::from_secs(30),
        }
    }
}

/// What the cache did since the pool was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Calls served from the cache.
    pub hits: u64,
    /// Calls that ran their statement.
    pub misses: u64,
    /// Calls that waited for another caller's identical statement.
    pub joins: u64,
    /// Entries found out of date after a write through the pool.
    pub invalidated: u64,
    /// Results larger than `max_entry_bytes`, returned but not kept.
    pub too_large: u64,
    /// Bytes of rows kept now (approximate).
    pub bytes: u64,
    /// Entries kept now.
    pub entries: u64,
}

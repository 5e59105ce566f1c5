//! The store behind the SQLite result cache: entries keyed by statement
//! text and parameter values, bounded by bytes, each with its TTL and the
//! writer's count of writes from before its statement ran.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use rusqlite::types::Value;

use crate::cache::config::CacheConfig;

/// Rows as SQLite returned them.
pub type Rows = Arc<[Vec<Value>]>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    sql: Arc<str>,
    params: Box<[u8]>,
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) rows: Rows,
    pub(crate) bytes: u64,
    pub(crate) ttl: Duration,
    /// The writer's count of writes before the statement ran.
    pub(crate) writes: u64,
}

struct Ttl;

impl moka::Expiry<Key, Arc<Entry>> for Ttl {
    fn expire_after_create(&self, _k: &Key, v: &Arc<Entry>, _at: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) joins: AtomicU64,
    pub(crate) invalidated: AtomicU64,
    pub(crate) too_large: AtomicU64,
}

/// A pool's result cache.
pub(crate) struct ResultCache {
    pub(crate) cache: Cache<Key, Arc<Entry>>,
    pub(crate) config: CacheConfig,
    pub(crate) counters: Counters,
}

impl ResultCache {
    pub(crate) fn new(config: CacheConfig) -> Self {
        let cache = Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|_k: &Key, v: &Arc<Entry>| u32::try_from(v.bytes).unwrap_or(u32::MAX))
            .expire_after(Ttl)
            .build();
        Self {
            cache,
            config,
            counters: Counters::default(),
        }
    }
}

/// The key: statement text and each parameter with its type.
pub(crate) fn key(sql: &str, params: &[Value]) -> Key {
    let mut buf = Vec::new();
    for p in params {
        match p {
            Value::Null => buf.push(0),
            Value::Integer(i) => {
                buf.push(1);
                buf.extend_from_slice(&i.to_le_bytes());
            }
            Value::Real(f) => {
                buf.push(2);
                buf.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            Value::Text(s) => push_bytes(&mut buf, 3, s.as_bytes()),
            Value::Blob(b) => push_bytes(&mut buf, 4, b),
        }
    }
    Key {
        sql: Arc::from(sql),
        params: buf.into_boxed_slice(),
    }
}

fn push_bytes(buf: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    buf.push(tag);
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// The values' bytes, plus a little per row.
pub(crate) fn weight(rows: &[Vec<Value>]) -> u64 {
    let value = |v: &Value| match v {
        Value::Null => 1,
        Value::Integer(_) | Value::Real(_) => 8,
        Value::Text(s) => s.len(),
        Value::Blob(b) => b.len(),
    };
    rows.iter()
        .map(|r| (r.iter().map(value).sum::<usize>() + 32) as u64)
        .sum::<u64>()
        .max(1)
}

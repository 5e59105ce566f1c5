//! The store behind the SQLite result cache: lido-core's [`ResultStore`],
//! keyed by statement text and parameter values, each entry tagged with the
//! writer's count of writes from before its statement ran.

use std::sync::Arc;

use lido_core::result_store::ResultStore;
use rusqlite::types::Value;

use crate::cache::config::CacheConfig;

/// Rows as SQLite returned them.
pub type Rows = Arc<[Vec<Value>]>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    sql: Arc<str>,
    params: Box<[u8]>,
}

/// A pool's result cache: lido-core's [`ResultStore`], each entry tagged
/// with the writer's count of writes from before its statement ran.
pub(crate) struct ResultCache {
    pub(crate) store: ResultStore<Key, Rows, u64>,
    pub(crate) config: CacheConfig,
}

impl ResultCache {
    pub(crate) fn new(config: CacheConfig) -> Self {
        Self {
            store: ResultStore::new(config.max_bytes, config.max_entry_bytes),
            config,
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

//! What writes went through a pool, for its result cache: a generation per
//! table, bumped after each write naming it, and one for everything, bumped
//! by a write whose tables cannot be found and by the commit of a lido
//! transaction that wrote. A cached result remembers the generations of its
//! tables from before its query ran, and is served only while they stand.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::obs::statements::Entry;
use crate::obs::tables::tables_of;

/// The generations.
#[derive(Debug, Default)]
pub(crate) struct WriteLog {
    tables: RwLock<HashMap<Arc<str>, u64>>,
    all: AtomicU64,
}

/// Generations a cached result was computed under.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    all: u64,
    tables: Vec<(Arc<str>, u64)>,
}

impl WriteLog {
    /// The generations of `tables` now.
    pub(crate) fn snapshot(&self, tables: &[String]) -> Snapshot {
        let all = self.all.load(Ordering::Acquire);
        let map = self.tables.read();
        let tables = tables
            .iter()
            .map(|t| {
                let g = map.get(t.as_str()).copied().unwrap_or(0);
                (Arc::from(t.as_str()), g)
            })
            .collect();
        Snapshot { all, tables }
    }

    /// Whether nothing `s` depends on was written since.
    pub(crate) fn still_valid(&self, s: &Snapshot) -> bool {
        if self.all.load(Ordering::Acquire) != s.all {
            return false;
        }
        let map = self.tables.read();
        s.tables
            .iter()
            .all(|(t, g)| map.get(t).copied().unwrap_or(0) == *g)
    }

    /// A write naming `tables` finished (none found: everything).
    pub(crate) fn wrote(&self, tables: &[String]) {
        if tables.is_empty() {
            self.wrote_all();
            return;
        }
        let mut map = self.tables.write();
        for t in tables {
            *map.entry(Arc::from(t.as_str())).or_insert(0) += 1;
        }
    }

    /// Everything may have changed.
    pub(crate) fn wrote_all(&self) {
        self.all.fetch_add(1, Ordering::AcqRel);
    }
}

/// Whether a statement whose first keyword is `operation` only reads.
pub(crate) fn reads_only(operation: Option<&str>) -> bool {
    matches!(
        operation,
        Some("SELECT" | "VALUES" | "TABLE" | "SHOW" | "EXPLAIN")
    )
}

/// After a successful call: a write bumps its tables' generations (and,
/// inside a lido transaction, marks it so its commit bumps everything).
pub(crate) fn after_call(
    log: &WriteLog,
    sql: Option<&str>,
    known: Option<&Entry>,
    tx: Option<&AtomicBool>,
) {
    let Some(sql) = sql else {
        // A prepared statement: its text is not at hand here.
        log.wrote_all();
        return;
    };
    let shape = crate::obs::shape::Shape::known_or_of(known.map(|e| &e.shape), Some(sql));
    let operation = shape.as_ref().and_then(|s| s.summary.operation.as_deref());
    if reads_only(operation) && !mentions_write(sql) {
        return;
    }
    log.wrote(&tables_of(sql));
    if let Some(flag) = tx {
        flag.store(true, Ordering::Relaxed);
    }
}

/// `WITH` statements and others that may hide a write (a data-modifying
/// CTE, `SELECT ... INTO`, `FOR UPDATE`).
fn mentions_write(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    ["insert ", "update ", "delete ", " into ", "merge "]
        .iter()
        .any(|w| lower.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_invalidates_its_tables_and_an_unknown_write_everything() {
        let log = WriteLog::default();
        let orders = log.snapshot(&["orders".to_string()]);
        let items = log.snapshot(&["items".to_string()]);
        log.wrote(&["orders".to_string()]);
        assert!(!log.still_valid(&orders));
        assert!(log.still_valid(&items));
        log.wrote(&[]);
        assert!(!log.still_valid(&items), "no tables found: everything");
    }
}

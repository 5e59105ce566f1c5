//! What writes went through a pool, for its result cache: a generation per
//! table, bumped after each write naming it, and one for everything, bumped
//! by a write whose tables cannot be found and by the commit of a lido
//! transaction that wrote. A cached result remembers the generations of its
//! tables from before its query ran, and is served only while they stand.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::obs::shape::Shape;
use crate::obs::statements::Entry;
use crate::obs::table_stats::may_write;
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
    // Known statements carry the verdict, worked out once.
    match known.map(Entry::tables) {
        Some(t) if !t.write => return,
        Some(t) => log.wrote(&t.names),
        None => {
            let shape = Shape::of(sql);
            if !may_write(shape.summary.operation.as_deref(), &shape.text) {
                return;
            }
            log.wrote(&tables_of(&shape.text));
        }
    }
    if let Some(flag) = tx {
        flag.store(true, Ordering::Relaxed);
    }
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

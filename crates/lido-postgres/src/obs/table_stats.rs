//! Per-table statistics: reads and writes per table and the time spent,
//! from the tables each statement names ([`tables_of`]). A statement's
//! tables are found once, when it first enters the statement table; each
//! call then adds to its tables' counters. At most `capacity` tables are
//! kept by name; the rest share one `other` row, so the cardinality stays
//! bounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::obs::tables::tables_of;

/// The row name of the tables beyond the table's capacity.
pub const OTHER_TABLES: &str = "other";

/// One table's counters.
#[derive(Debug, Default)]
pub(crate) struct TableCounters {
    reads: AtomicU64,
    writes: AtomicU64,
    errors: AtomicU64,
    micros: AtomicU64,
}

impl TableCounters {
    pub(crate) fn add(&self, write: bool, took: Duration, failed: bool) {
        let n = if write { &self.writes } else { &self.reads };
        n.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.micros.fetch_add(us, Ordering::Relaxed);
    }
}

/// What one table saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStat {
    /// The table (unqualified, lower case unless quoted), or `other`.
    pub table: String,
    /// Calls of statements naming it that read (`SELECT`, `WITH`,
    /// `VALUES`, `TABLE`, `SHOW`, `EXPLAIN`).
    pub reads: u64,
    /// Calls of any other statement naming it (`INSERT`, `UPDATE`,
    /// `DELETE`, DDL, ...).
    pub writes: u64,
    /// Of those calls, failed ones.
    pub errors: u64,
    /// Time spent in statements naming it (a statement naming two tables
    /// counts for both).
    pub total: Duration,
}

/// The pool's per-table counters.
#[derive(Debug)]
pub(crate) struct TableBook {
    capacity: usize,
    tables: Mutex<HashMap<Arc<str>, Arc<TableCounters>>>,
    other: Arc<TableCounters>,
}

impl TableBook {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            tables: Mutex::new(HashMap::new()),
            other: Arc::new(TableCounters::default()),
        }
    }

    /// The tables a normalized statement names, their counters, and
    /// whether it may write.
    pub(crate) fn resolve(&self, normalized: &str, operation: Option<&str>) -> Resolved {
        let write = may_write(operation, normalized);
        let names = tables_of(normalized);
        if names.is_empty() {
            return Resolved {
                write,
                ..Resolved::default()
            };
        }
        let mut map = self.tables.lock();
        let counters = names
            .iter()
            .map(|name| {
                if let Some(c) = map.get(name.as_str()) {
                    return Arc::clone(c);
                }
                if map.len() >= self.capacity {
                    return Arc::clone(&self.other);
                }
                let c = Arc::new(TableCounters::default());
                map.insert(Arc::from(name.as_str()), Arc::clone(&c));
                c
            })
            .collect();
        Resolved {
            write,
            names,
            counters,
        }
    }

    /// Every table, most time first, then `other` (when it saw anything).
    pub(crate) fn snapshot(&self) -> Vec<TableStat> {
        let mut out: Vec<TableStat> = self
            .tables
            .lock()
            .iter()
            .map(|(name, c)| stat(name, c))
            .collect();
        out.sort_by(|a, b| b.total.cmp(&a.total).then(a.table.cmp(&b.table)));
        let other = stat(OTHER_TABLES, &self.other);
        if other.reads + other.writes > 0 {
            out.push(other);
        }
        out
    }
}

fn stat(name: &str, c: &TableCounters) -> TableStat {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    TableStat {
        table: name.to_owned(),
        reads: load(&c.reads),
        writes: load(&c.writes),
        errors: load(&c.errors),
        total: Duration::from_micros(load(&c.micros)),
    }
}

/// Whether a statement whose first keyword is `operation` may write: any
/// statement but a plain read, and a read whose text hides a write (a
/// data-modifying `WITH`, `SELECT ... INTO`, `FOR UPDATE`). The one rule
/// for the per-table statistics and the result cache's invalidation.
pub(crate) fn may_write(operation: Option<&str>, sql: &str) -> bool {
    let plain_read = matches!(
        operation,
        Some("SELECT" | "WITH" | "VALUES" | "TABLE" | "SHOW" | "EXPLAIN")
    );
    !plain_read || mentions_write(sql)
}

fn mentions_write(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    ["insert ", "update ", "delete ", " into ", "merge "]
        .iter()
        .any(|w| lower.contains(w))
}

/// A statement's tables, resolved once.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    /// It may write ([`may_write`]).
    pub(crate) write: bool,
    /// The tables it names ([`tables_of`]).
    pub(crate) names: Vec<String>,
    counters: Box<[Arc<TableCounters>]>,
}

impl Resolved {
    pub(crate) fn add(&self, took: Duration, failed: bool) {
        for c in self.counters.iter() {
            c.add(self.write, took, failed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_writes_and_a_bounded_table_list() {
        let book = TableBook::new(2);
        let ms = Duration::from_millis(1);
        book.resolve("SELECT * FROM a JOIN b ON $1", Some("SELECT"))
            .add(ms, false);
        book.resolve("UPDATE a SET x = $1", Some("UPDATE"))
            .add(ms * 2, true);
        book.resolve("SELECT * FROM c", Some("SELECT"))
            .add(ms, false);
        let s = book.snapshot();
        let a = s.iter().find(|t| t.table == "a").expect("a");
        assert_eq!((a.reads, a.writes, a.errors, a.total), (1, 1, 1, ms * 3));
        let other = s.last().expect("other");
        assert_eq!(
            (other.table.as_str(), other.reads),
            (OTHER_TABLES, 1),
            "{s:?}"
        );
        assert_eq!(s.len(), 3, "two by name, then other");
    }
}

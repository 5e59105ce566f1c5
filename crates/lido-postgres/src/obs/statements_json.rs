//! The statement statistics as JSON: what `lido serve` answers on
//! `GET /statements`, what `lido advise --statements FILE` reads, and what a
//! program can write to a file itself.
//!
//! Durations are milliseconds (floating point, microsecond resolution); the
//! fingerprint is 16 lower-case hex digits; a statement's SQL is its
//! normalized text, so no literal written into it appears.
//!
//! ```
//! use lido_postgres::{StatementOrder, StatementStats};
//! # fn f(stats: &StatementStats) {
//! let doc = stats.to_json(20, StatementOrder::TotalTime);
//! assert!(doc["statements"].is_array());
//! # }
//! ```

use std::time::Duration;

use serde_json::{json, Value};

use crate::obs::statement_stat::{StatementOrder, StatementStat};
use crate::obs::statements::StatementStats;
use crate::obs::table_stats::TableStat;

/// The version of the document's layout (`"format"`), raised when a field
/// changes meaning or goes away; fields may be added within a version.
pub const STATEMENTS_JSON_FORMAT: u32 = 1;

fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1e3
}

fn opt_ms(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(ms(d)))
}

impl StatementStat {
    /// This statement as one JSON object (see the [module](self) docs).
    pub fn to_json(&self) -> Value {
        json!({
            "fingerprint": format!("{:016x}", self.fingerprint),
            "query": &*self.query,
            "class": self.class.as_deref(),
            "calls": self.calls,
            "errors": self.errors,
            "rows": self.rows,
            "total_ms": ms(self.total),
            "mean_ms": ms(self.mean),
            "max_ms": ms(self.max),
            "p50_ms": ms(self.p50),
            "p95_ms": ms(self.p95),
            "p99_ms": ms(self.p99),
            "learned_deadline_ms": opt_ms(self.learned_deadline),
            "timeouts": self.timeouts,
            "near_timeouts": self.near_timeouts,
            "prepares": self.prepares,
            "reprepares": self.reprepares,
            "cache_evictions": self.cache_evictions,
        })
    }
}

impl TableStat {
    /// This table's counters as one JSON object.
    pub fn to_json(&self) -> Value {
        json!({
            "table": self.table,
            "reads": self.reads,
            "writes": self.writes,
            "errors": self.errors,
            "total_ms": ms(self.total),
        })
    }
}

impl StatementStats {
    /// The `n` statements largest by `by` and every table, as one document:
    /// `{"format": 1, "enabled", "kept", "capacity", "evictions",
    /// "order", "statements": [...], "tables": [...]}`.
    pub fn to_json(&self, n: usize, by: StatementOrder) -> Value {
        let statements: Vec<Value> = self.top(n, by).iter().map(StatementStat::to_json).collect();
        let tables: Vec<Value> = self.tables().iter().map(TableStat::to_json).collect();
        json!({
            "format": STATEMENTS_JSON_FORMAT,
            "enabled": self.is_enabled(),
            "kept": self.len(),
            "capacity": self.capacity(),
            "evictions": self.evictions(),
            "order": by.name(),
            "statements": statements,
            "tables": tables,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn stat() -> StatementStat {
        StatementStat {
            fingerprint: 0xab,
            query: Arc::from("SELECT $1"),
            calls: 3,
            errors: 1,
            rows: 3,
            total: Duration::from_micros(4_500),
            mean: Duration::from_micros(1_500),
            max: Duration::from_millis(3),
            p50: Duration::from_millis(1),
            p95: Duration::from_millis(3),
            p99: Duration::from_millis(3),
            class: Some(Arc::from("batch")),
            learned_deadline: None,
            prepares: 1,
            timeouts: 0,
            near_timeouts: 0,
            reprepares: 0,
            cache_evictions: 0,
        }
    }

    #[test]
    fn a_statement_reads_in_milliseconds_with_a_hex_fingerprint() {
        let v = stat().to_json();
        assert_eq!(v["fingerprint"], "00000000000000ab");
        assert_eq!(v["total_ms"], 4.5);
        assert_eq!(v["class"], "batch");
        assert_eq!(v["learned_deadline_ms"], Value::Null);
        assert_eq!(v["calls"], 3);
    }

    #[test]
    fn the_document_names_its_format_and_order() {
        let stats = StatementStats::new(true, 10);
        let doc = stats.to_json(5, StatementOrder::P99);
        assert_eq!(doc["format"], STATEMENTS_JSON_FORMAT);
        assert_eq!(doc["order"], "p99");
        assert_eq!(doc["statements"].as_array().map(Vec::len), Some(0));
    }
}

//! One slow call as the table keeps it, and a batch of them as the
//! columns of one insert.

use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_postgres::types::Type;

use crate::obs::normalize::fingerprint;

/// The `query` of a call made with an already prepared `Statement`.
pub(crate) const PREPARED: &str = "(prepared statement)";

/// One slow call, queued (built on the caller's task: no I/O, a few
/// small allocations, only for calls above their threshold).
#[derive(Debug)]
pub(crate) struct SlowRow {
    /// When the call ended.
    pub(crate) at: SystemTime,
    /// How long it took.
    pub(crate) took: Duration,
    /// The normalized SQL; `None` for a prepared statement.
    pub(crate) query: Option<Arc<str>>,
    /// The fingerprint of `query`.
    pub(crate) fingerprint: u64,
    /// Rows returned or changed; `None` when the call failed.
    pub(crate) rows: Option<u64>,
    /// The error's `error.type` (the SQLSTATE for server errors).
    pub(crate) sqlstate: Option<String>,
    /// The query class's name.
    pub(crate) class: Option<Arc<str>>,
    /// Where the call was made, when known.
    pub(crate) call_site: Option<&'static Location<'static>>,
    /// Parameter values (only with `log_parameters`).
    pub(crate) params: Option<String>,
    /// Parameter types given with the call (`query_typed`).
    pub(crate) param_types: Vec<Type>,
}

impl SlowRow {
    /// The `fingerprint` column: 16 hex digits.
    pub(crate) fn fingerprint_hex(&self) -> String {
        format!("{:016x}", self.fingerprint)
    }

    /// The `query` column.
    pub(crate) fn query_text(&self) -> &str {
        self.query.as_deref().unwrap_or(PREPARED)
    }

    /// The fingerprint of a prepared statement's row.
    pub(crate) fn prepared_fingerprint() -> u64 {
        fingerprint(PREPARED)
    }
}

/// A batch as the insert's arrays.
#[derive(Debug, Default)]
pub(crate) struct Columns {
    pub(crate) at: Vec<SystemTime>,
    pub(crate) duration_ms: Vec<f64>,
    pub(crate) fingerprint: Vec<String>,
    pub(crate) query: Vec<String>,
    pub(crate) rows: Vec<Option<i64>>,
    pub(crate) sqlstate: Vec<Option<String>>,
    pub(crate) class: Vec<Option<String>>,
    pub(crate) call_site: Vec<Option<String>>,
    pub(crate) params: Vec<Option<String>>,
    pub(crate) plan: Vec<Option<serde_json::Value>>,
    pub(crate) findings: Vec<Option<serde_json::Value>>,
}

/// A queued row with what the writer added: its plan and findings.
#[derive(Debug)]
pub(crate) struct Planned {
    pub(crate) row: SlowRow,
    pub(crate) plan: Option<serde_json::Value>,
    pub(crate) findings: Option<serde_json::Value>,
}

impl Columns {
    pub(crate) fn of(batch: &[Planned]) -> Self {
        let mut c = Self::default();
        for p in batch {
            let r = &p.row;
            c.at.push(r.at);
            c.duration_ms.push(r.took.as_secs_f64() * 1e3);
            c.fingerprint.push(r.fingerprint_hex());
            c.query.push(r.query_text().to_owned());
            c.rows
                .push(r.rows.map(|n| i64::try_from(n).unwrap_or(i64::MAX)));
            c.sqlstate.push(r.sqlstate.clone());
            c.class.push(r.class.as_deref().map(str::to_owned));
            c.call_site.push(r.call_site.map(ToString::to_string));
            c.params.push(r.params.clone());
            c.plan.push(p.plan.clone());
            c.findings.push(p.findings.clone());
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> SlowRow {
        SlowRow {
            at: SystemTime::UNIX_EPOCH,
            took: Duration::from_micros(1500),
            query: None,
            fingerprint: SlowRow::prepared_fingerprint(),
            rows: None,
            sqlstate: Some("57014".into()),
            class: Some("batch".into()),
            call_site: Some(Location::caller()),
            params: None,
            param_types: Vec::new(),
        }
    }

    #[test]
    fn columns_carry_each_field() {
        let planned = Planned {
            row: row(),
            plan: None,
            findings: None,
        };
        let c = Columns::of(&[planned]);
        assert_eq!(c.duration_ms, vec![1.5]);
        assert_eq!(c.query, vec![PREPARED.to_owned()]);
        assert_eq!(c.fingerprint[0].len(), 16);
        assert_eq!(c.sqlstate, vec![Some("57014".to_owned())]);
        assert_eq!(c.class, vec![Some("batch".to_owned())]);
        assert!(c.call_site[0].as_deref().unwrap().contains("row.rs"));
        assert_eq!(c.rows, vec![None]);
    }
}

//! Query classes in a pool: which class a call belongs to (given, or by the
//! rules on its statement) and the counters kept per class.

use std::time::Duration;

use lido_core::{CallOutcome, ClassStat, ClassTally, Classes, StatementInfo};

use crate::error::PgError;
use crate::obs::tables::tables_of;

/// The pool's classes and one set of counters per class.
#[derive(Debug)]
pub(crate) struct ClassBook {
    pub(crate) classes: Classes,
    tally: ClassTally,
}

impl ClassBook {
    pub(crate) fn new(classes: Classes) -> Self {
        let tally = ClassTally::new(&classes);
        Self { classes, tally }
    }

    /// The class of an unclassified call's statement: a tag or rule, or
    /// the default class (`None`: the pool's own settings).
    pub(crate) fn classify(&self, sql: &str, fingerprint: Option<u64>) -> Option<usize> {
        let tables = if self.classes.wants_tables() {
            tables_of(sql)
        } else {
            Vec::new()
        };
        let info = StatementInfo {
            sql,
            fingerprint,
            tables: &tables,
        };
        self.classes.classify_index(&info)
    }

    /// Records a call of class `i` that took `took` and ended with `err`.
    pub(crate) fn record(&self, i: usize, took: Duration, err: Option<&PgError>) {
        let outcome = match err {
            None => CallOutcome::Ok,
            Some(e) if e.is_timeout() => CallOutcome::TimedOut,
            Some(_) => CallOutcome::Failed,
        };
        self.tally.record(&self.classes, i, took, outcome);
    }

    /// Every class's counters.
    pub(crate) fn snapshot(&self) -> Vec<ClassStat> {
        self.tally.snapshot(&self.classes)
    }
}

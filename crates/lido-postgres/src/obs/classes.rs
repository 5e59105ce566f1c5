//! Query classes in a pool: which class a call belongs to (given, or by the
//! rules on its statement) and the counters kept per class.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lido_core::{Classes, StatementInfo};

use crate::error::PgError;
use crate::obs::tables::tables_of;

/// What one class did since the pool was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassStat {
    /// The class.
    pub class: String,
    /// Its deadline now (`None`: the pool's limit).
    pub deadline: Option<Duration>,
    /// Statements run in it.
    pub calls: u64,
    /// Of those, failed (timeouts included).
    pub errors: u64,
    /// Of those, stopped by their deadline.
    pub timeouts: u64,
    /// Finished, but above the class's near-timeout share of the deadline.
    pub near_timeouts: u64,
    /// Time spent in its statements (microsecond resolution).
    pub total: Duration,
}

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    near: AtomicU64,
    micros: AtomicU64,
}

/// The pool's classes and one set of counters per class.
#[derive(Debug)]
pub(crate) struct ClassBook {
    pub(crate) classes: Classes,
    counters: Vec<Counters>,
}

impl ClassBook {
    pub(crate) fn new(classes: Classes) -> Self {
        let counters = classes.all().iter().map(|_| Counters::default()).collect();
        Self { classes, counters }
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
        let (Some(c), Some(class)) = (self.counters.get(i), self.classes.at(i)) else {
            return;
        };
        c.calls.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        c.micros.fetch_add(micros, Ordering::Relaxed);
        match err {
            Some(e) => {
                c.errors.fetch_add(1, Ordering::Relaxed);
                if e.is_timeout() {
                    c.timeouts.fetch_add(1, Ordering::Relaxed);
                }
            }
            None if class.is_near_timeout(took) => {
                c.near.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
    }

    /// Every class's counters.
    pub(crate) fn snapshot(&self) -> Vec<ClassStat> {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.classes
            .all()
            .iter()
            .zip(&self.counters)
            .map(|(class, c)| ClassStat {
                class: class.name().to_owned(),
                deadline: class.deadline,
                calls: load(&c.calls),
                errors: load(&c.errors),
                timeouts: load(&c.timeouts),
                near_timeouts: load(&c.near),
                total: Duration::from_micros(load(&c.micros)),
            })
            .collect()
    }
}

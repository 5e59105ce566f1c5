//! Counters per query class, shared by the backends: calls, errors,
//! timeouts, near timeouts and time, one set per class of a [`Classes`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::classes::Classes;

/// What one class did since the pool was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassStat {
    /// The class.
    pub class: String,
    /// Its deadline now (`None`: the pool's limit).
    pub deadline: Option<Duration>,
    /// Calls run in it.
    pub calls: u64,
    /// Of those, failed (timeouts included).
    pub errors: u64,
    /// Of those, stopped by their deadline (or a timeout on the way).
    pub timeouts: u64,
    /// Finished, but above the class's near-timeout share of the deadline.
    pub near_timeouts: u64,
    /// Time spent in its calls (microsecond resolution).
    pub total: Duration,
}

/// How a classified call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// It succeeded.
    Ok,
    /// It failed, not for lack of time.
    Failed,
    /// It ran out of time (its deadline or a timeout on the way).
    TimedOut,
}

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    near: AtomicU64,
    micros: AtomicU64,
}

/// One set of counters per class of a [`Classes`] (by index).
///
/// ```
/// use std::time::Duration;
/// use lido_core::{CallOutcome, ClassTally, Classes};
/// let classes = Classes::default();
/// let tally = ClassTally::new(&classes);
/// let batch = classes.index("batch").expect("a default class");
/// tally.record(&classes, batch, Duration::from_millis(3), CallOutcome::Ok);
/// let stats = tally.snapshot(&classes);
/// assert_eq!(stats[batch].calls, 1);
/// ```
#[derive(Debug)]
pub struct ClassTally {
    counters: Vec<Counters>,
}

impl ClassTally {
    /// Zeroed counters for every class of `classes`.
    pub fn new(classes: &Classes) -> Self {
        let counters = classes.all().iter().map(|_| Counters::default()).collect();
        Self { counters }
    }

    /// Records a call of class `i` (of `classes`) that took `took`.
    pub fn record(&self, classes: &Classes, i: usize, took: Duration, outcome: CallOutcome) {
        let (Some(c), Some(class)) = (self.counters.get(i), classes.at(i)) else {
            return;
        };
        c.calls.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        c.micros.fetch_add(micros, Ordering::Relaxed);
        match outcome {
            CallOutcome::TimedOut => {
                c.errors.fetch_add(1, Ordering::Relaxed);
                c.timeouts.fetch_add(1, Ordering::Relaxed);
            }
            CallOutcome::Failed => {
                c.errors.fetch_add(1, Ordering::Relaxed);
            }
            CallOutcome::Ok if class.is_near_timeout(took) => {
                c.near.fetch_add(1, Ordering::Relaxed);
            }
            CallOutcome::Ok => {}
        }
    }

    /// Every class's counters, in the order of `classes`.
    pub fn snapshot(&self, classes: &Classes) -> Vec<ClassStat> {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        classes
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

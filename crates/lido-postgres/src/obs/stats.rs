//! [`PgStats`]: PostgreSQL-level counters and time distributions shared by
//! a pool's connections. Relaxed atomics and lido-core's lock-free
//! [`Histogram`], read at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lido_core::Histogram;

use crate::error::PgError;
use crate::obs::errors::{ErrorClasses, ErrorKind};

/// What kind of work a duration measures (the `operation` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Statements that return rows: `query`, `query_one`, `query_opt`,
    /// `query_typed`, `simple_query`.
    Query,
    /// Statements that return a row count or nothing: `execute`, `batch_execute`.
    Execute,
    /// Whole transactions, from `BEGIN` to `COMMIT` or `ROLLBACK`.
    Transaction,
}

impl Operation {
    /// Every operation, in a stable order.
    pub const ALL: [Operation; 3] = [Self::Query, Self::Execute, Self::Transaction];

    /// `query`, `execute` or `transaction`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Execute => "execute",
            Self::Transaction => "transaction",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Query => 0,
            Self::Execute => 1,
            Self::Transaction => 2,
        }
    }
}

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Cumulative counters and durations since the pool was built.
        ///
        /// Durations, errors by class, `queries` and `query_errors` are kept
        /// only with statistics on (`PgPoolBuilder::statistics`, the
        /// default); `slow_queries` whenever the slow-query log is on; the
        /// other counters always.
        #[derive(Debug, Default)]
        pub struct PgStats {
            $(pub(crate) $name: AtomicU64,)*
            durations: Durations,
            /// Statement-cache hits: bumped on nearly every call, so striped.
            hits: lido_core::StripedCounter,
            errors: ErrorClasses,
        }

        impl PgStats {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> u64 {
                    self.$name.load(Ordering::Relaxed)
                }
            )*
        }
    };
}

counters! {
    /// Connect attempts made (successful or not).
    connect_attempts,
    /// Statements that ran past their timeout.
    query_timeouts,
    /// Cancels the server confirmed (the connection stayed usable).
    cancels_confirmed,
    /// Cancels that could not be confirmed (the connection was closed).
    cancels_unconfirmed,
    /// Transactions committed.
    tx_committed,
    /// Transactions rolled back (explicitly, after an error, or abandoned).
    tx_rolled_back,
    /// Transaction attempts retried after 40001 / 40P01.
    tx_retried,
    /// Of those, after a deadlock (40P01).
    tx_retried_deadlock,
    /// Of those, after a serialization failure (40001).
    tx_retried_serialization,
    /// Transactions that ran past their timeout.
    tx_timed_out,
    /// Prepared-statement cache misses (a statement was prepared).
    stmt_misses,
    /// Statements evicted from a full cache.
    stmt_evictions,
    /// Statements prepared again after "cached plan must not change result type".
    stmt_reprepared,
    /// Connections cleaned up on return (rolled back / cancelled).
    resets,
    /// Statements that failed (statistics on).
    query_errors,
    /// Statements at or above their slow-query threshold (logged to `lido::slow_query`).
    slow_queries,
}

/// The time distributions per [`Operation`]: recorded on every call from
/// every thread, so striped (see [`Histogram::striped`]).
#[derive(Debug)]
struct Durations([Histogram; 3]);

impl Default for Durations {
    fn default() -> Self {
        Self([
            Histogram::striped(),
            Histogram::striped(),
            Histogram::striped(),
        ])
    }
}

impl PgStats {
    /// Prepared-statement cache hits.
    pub fn stmt_hits(&self) -> u64 {
        self.hits.get()
    }

    /// Counts a statement-cache hit.
    pub(crate) fn hit(&self) {
        self.hits.bump();
    }

    /// Statements run through lido's query methods (statistics on): the
    /// `query` and `execute` durations recorded.
    pub fn queries(&self) -> u64 {
        self.duration(Operation::Query).count() + self.duration(Operation::Execute).count()
    }

    /// Time taken by statements or transactions of kind `op` (statistics on).
    pub fn duration(&self, op: Operation) -> &Histogram {
        &self.durations.0[op.index()]
    }

    /// Failed statements and commits by error class, ascending: the
    /// two-character SQLSTATE class (`"23"` integrity constraint, `"40"`
    /// transaction rollback, `"42"` syntax or access rule, `"57"` operator
    /// intervention, ...), `"timeout"` for client-side timeouts,
    /// `"connection"` for closed or failed connections, `"other"` for the rest.
    pub fn errors_by_class(&self) -> Vec<(String, u64)> {
        self.errors.snapshot()
    }

    /// Failures of error class `class` (see [`errors_by_class`](Self::errors_by_class)).
    pub fn errors_of_class(&self, class: &str) -> u64 {
        self.errors.get(class)
    }

    pub(crate) fn record_query(&self, op: Operation, took: Duration, err: Option<&PgError>) {
        self.durations.0[op.index()].record(took);
        if let Some(e) = err {
            bump(&self.query_errors);
            self.record_error(e);
        }
    }

    pub(crate) fn record_error(&self, err: &PgError) {
        self.errors.record(&ErrorKind::of(err));
    }

    pub(crate) fn record_transaction(&self, took: Duration) {
        self.durations.0[Operation::Transaction.index()].record(took);
    }
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

//! What observability sees of a pool and of one statement call, as plain
//! data: the pool's settings ([`Obs`], [`DbInfo`]), per-call overrides
//! ([`CallOpts`]), the call itself ([`Call`], [`Params`]) and the rows it
//! returned ([`RowCount`]).

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Row, SimpleQueryMessage};

use crate::obs::classes::ClassBook;
use crate::obs::open_tx::OpenTransactions;
use crate::obs::result_cache::ResultCache;
use crate::obs::statements::StatementStats;
use crate::obs::stats::Operation;
use crate::slow_table::SlowTable;

/// Where a pool connects, for span attributes.
#[derive(Debug, Clone)]
pub(crate) struct DbInfo {
    /// `db.namespace`: the database name.
    pub(crate) namespace: Arc<str>,
    /// `server.address` of the first host.
    pub(crate) address: Arc<str>,
    /// `server.port` of the first host.
    pub(crate) port: u16,
}

/// A pool's observability settings and per-statement table.
#[derive(Debug)]
pub(crate) struct Obs {
    pub(crate) statistics: bool,
    pub(crate) slow_threshold: Option<Duration>,
    pub(crate) log_parameters: bool,
    pub(crate) query_text: bool,
    pub(crate) statements: Arc<StatementStats>,
    pub(crate) db: DbInfo,
    /// Query classes and their counters.
    pub(crate) classes: Arc<ClassBook>,
    /// The result cache, when the pool has one.
    pub(crate) cache: Option<Arc<ResultCache>>,
    /// Transactions open now.
    pub(crate) open_tx: Arc<OpenTransactions>,
    /// The slow-query table, when the pool has one.
    pub(crate) slow_table: Option<Arc<SlowTable>>,
}

/// Per-call settings that override the pool's.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CallOpts {
    pub(crate) slow: Option<Option<Duration>>,
    pub(crate) log_parameters: Option<bool>,
    /// The call's query class (index into the pool's classes).
    pub(crate) class: Option<usize>,
}

impl Obs {
    pub(crate) fn slow_limit(&self, opts: CallOpts) -> Option<Duration> {
        opts.slow.unwrap_or(self.slow_threshold)
    }

    /// Whether a call must be timed at all.
    pub(crate) fn wants_timing(&self, opts: CallOpts) -> bool {
        self.statistics || self.slow_limit(opts).is_some()
    }
}

/// The parameters of a call (shown in the slow-query log only on request).
#[derive(Clone, Copy)]
pub(crate) enum Params<'q> {
    None,
    Plain(&'q [&'q (dyn ToSql + Sync)]),
    Typed(&'q [(&'q (dyn ToSql + Sync), Type)]),
}

/// Where the lease a call runs on was taken (`pool.get()`'s caller), kept
/// on the connection only while a slow-query table wants it.
pub(crate) type LeaseSite = parking_lot::Mutex<Option<&'static std::panic::Location<'static>>>;

/// One statement call, as statistics, the slow log and spans see it.
pub(crate) struct Call<'q> {
    pub(crate) op: Operation,
    /// The SQL text; `None` for an already prepared `Statement`.
    pub(crate) sql: Option<&'q str>,
    pub(crate) params: Params<'q>,
}

/// Rows a statement returned or changed.
pub(crate) trait RowCount {
    fn rows(&self) -> u64;
}

impl RowCount for Vec<Row> {
    fn rows(&self) -> u64 {
        self.len() as u64
    }
}

impl RowCount for Row {
    fn rows(&self) -> u64 {
        1
    }
}

impl RowCount for Option<Row> {
    fn rows(&self) -> u64 {
        u64::from(self.is_some())
    }
}

impl RowCount for u64 {
    fn rows(&self) -> u64 {
        *self
    }
}

impl RowCount for () {
    fn rows(&self) -> u64 {
        0
    }
}

impl RowCount for Vec<SimpleQueryMessage> {
    fn rows(&self) -> u64 {
        self.iter()
            .map(|m| match m {
                SimpleQueryMessage::CommandComplete(n) => *n,
                _ => 0,
            })
            .sum()
    }
}

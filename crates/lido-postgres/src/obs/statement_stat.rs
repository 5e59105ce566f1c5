//! [`StatementStat`]: one statement's statistics as a plain copy, and
//! [`StatementOrder`], how the top statements are ranked.

use std::sync::Arc;
use std::time::Duration;

/// A point-in-time copy of one statement's statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementStat {
    /// [`fingerprint`](crate::fingerprint) of the normalized text.
    pub fingerprint: u64,
    /// The normalized text: literals replaced by `$n`, no comments, single spaces.
    pub query: Arc<str>,
    /// Times it ran (successfully or not).
    pub calls: u64,
    /// Times it failed (server errors, timeouts, broken connections).
    pub errors: u64,
    /// Rows returned or changed, summed.
    pub rows: u64,
    /// Time spent in it, summed (microsecond resolution).
    pub total: Duration,
    /// `total / calls`.
    pub mean: Duration,
    /// The slowest call.
    pub max: Duration,
    /// Median call time (±12.5 %).
    pub p50: Duration,
    /// 95th percentile call time (±12.5 %).
    pub p95: Duration,
    /// 99th percentile call time (±12.5 %).
    pub p99: Duration,
    /// The query class of its last classified call, if any.
    pub class: Option<Arc<str>>,
    /// The deadline learned from its latency (a class with
    /// [`Learning`](lido_core::Learning)), once learned.
    pub learned_deadline: Option<Duration>,
    /// Times a connection prepared it (statement cache misses); `calls`
    /// less this is how often a cached plan was reused.
    pub prepares: u64,
    /// Times it ran past its time limit (any timeout lido applied).
    pub timeouts: u64,
    /// Times it finished above its query class's near-timeout share of the
    /// deadline (calls in a class only).
    pub near_timeouts: u64,
    /// Of `prepares`, those after the server rejected the cached plan (a
    /// table it reads changed: "cached plan must not change result type").
    pub reprepares: u64,
    /// Times a connection's statement cache evicted it to make room (a
    /// count that grows with `prepares` says the cache is too small for
    /// the working set: raise `PgPoolBuilder::statement_cache`).
    pub cache_evictions: u64,
}

/// How [`StatementStats::top`] orders statements (largest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatementOrder {
    /// Most calls.
    Calls,
    /// Most time spent in total.
    TotalTime,
    /// Slowest on average.
    MeanTime,
    /// Slowest 99th percentile.
    P99,
    /// Most errors.
    Errors,
    /// Most rows.
    Rows,
}

impl StatementOrder {
    /// Every order, for parsing and listing.
    pub const ALL: [Self; 6] = [
        Self::Calls,
        Self::TotalTime,
        Self::MeanTime,
        Self::P99,
        Self::Errors,
        Self::Rows,
    ];

    /// The order's name: `calls`, `total_time`, `mean_time`, `p99`,
    /// `errors` or `rows` (what [`StatementOrder::from_name`] reads).
    pub fn name(self) -> &'static str {
        match self {
            Self::Calls => "calls",
            Self::TotalTime => "total_time",
            Self::MeanTime => "mean_time",
            Self::P99 => "p99",
            Self::Errors => "errors",
            Self::Rows => "rows",
        }
    }

    /// The order named `name` (see [`StatementOrder::name`]), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }

    pub(crate) fn key(self, s: &StatementStat) -> u128 {
        match self {
            Self::Calls => s.calls.into(),
            Self::TotalTime => s.total.as_micros(),
            Self::MeanTime => s.mean.as_micros(),
            Self::P99 => s.p99.as_micros(),
            Self::Errors => s.errors.into(),
            Self::Rows => s.rows.into(),
        }
    }
}

//! The slow-query table's settings ([`SlowTableConfig`],
//! [`ExplainSampling`]) and counters ([`SlowTableStats`]).

use std::time::Duration;

use super::ddl::{SlowTableError, TableName};

/// The default [`SlowTableConfig::table`].
pub const DEFAULT_SLOW_TABLE: &str = "lido.slow_queries";

/// Settings of the slow-query table (see the [module](crate::slow_table)).
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use lido_postgres::{PgConfig, PgPool, SlowTableConfig};
/// let pool = PgPool::builder(PgConfig::from_env()?)
///     .slow_query_threshold(Some(Duration::from_millis(200)))
///     .slow_query_table(SlowTableConfig { retention_days: 30, ..SlowTableConfig::default() })
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SlowTableConfig {
    /// `schema.table` or `table` (default [`DEFAULT_SLOW_TABLE`]); each part
    /// is quoted as an identifier.
    pub table: String,
    /// Create the schema, table and indexes when missing (default true).
    /// Off, or without the privilege, lido warns with the DDL to run and
    /// keeps the rows queued until the table exists.
    pub create: bool,
    /// Rows queued at most (default 10 000); beyond it rows are dropped.
    pub queue_capacity: usize,
    /// Rows per `INSERT` at most (default 500).
    pub batch_size: usize,
    /// How long the writer gathers a batch after its first row (default 1 s).
    pub flush_interval: Duration,
    /// Rows older than this many days are deleted (default 7; 0 keeps them).
    pub retention_days: u32,
    /// How often the retention sweep runs (default 1 h).
    pub retention_interval: Duration,
    /// How long [`PgPool::close`](crate::PgPool::close) waits for queued
    /// rows to be written (default 5 s).
    pub flush_timeout: Duration,
    /// Longest wait between reconnect attempts (default 5 s; the first
    /// waits 100 ms, each next one twice as long).
    pub reconnect_max: Duration,
    /// Fetch generic plans of slow statements (default on; `None`: never).
    pub explain: Option<ExplainSampling>,
}

impl Default for SlowTableConfig {
    fn default() -> Self {
        Self {
            table: DEFAULT_SLOW_TABLE.to_owned(),
            create: true,
            queue_capacity: 10_000,
            batch_size: 500,
            flush_interval: Duration::from_secs(1),
            retention_days: 7,
            retention_interval: Duration::from_secs(3600),
            flush_timeout: Duration::from_secs(5),
            reconnect_max: Duration::from_secs(5),
            explain: Some(ExplainSampling::default()),
        }
    }
}

impl SlowTableConfig {
    /// The DDL that creates the table and its indexes (what lido runs when
    /// [`create`](Self::create) is on, and what it asks for otherwise).
    ///
    /// ```
    /// let ddl = lido_postgres::SlowTableConfig::default().ddl().unwrap();
    /// assert!(ddl.contains("CREATE TABLE IF NOT EXISTS \"lido\".\"slow_queries\""));
    /// ```
    pub fn ddl(&self) -> Result<String, SlowTableError> {
        Ok(TableName::parse(&self.table)?.ddl())
    }

    /// Checks the settings: a valid table name, non-zero capacity and batch.
    pub fn validate(&self) -> Result<(), SlowTableError> {
        TableName::parse(&self.table)?;
        if self.queue_capacity == 0 || self.batch_size == 0 {
            return Err(SlowTableError::Setting(
                "queue_capacity and batch_size must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Which slow statements get their generic plan fetched and summarized.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainSampling {
    /// At most one plan per fingerprint this often (default 10 min).
    pub per_fingerprint: Duration,
    /// Share of eligible slow rows considered (default 1.0: all of them).
    pub sample_rate: f64,
    /// Fingerprints remembered for the rate limit (default 10 000).
    pub max_fingerprints: usize,
}

impl Default for ExplainSampling {
    fn default() -> Self {
        Self {
            per_fingerprint: Duration::from_secs(600),
            sample_rate: 1.0,
            max_fingerprints: 10_000,
        }
    }
}

/// Counters of a pool's slow-query table ([`PgPool::slow_table_stats`](crate::PgPool::slow_table_stats)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlowTableStats {
    /// Rows put in the queue.
    pub queued: u64,
    /// Rows written to the table.
    pub written: u64,
    /// Rows dropped: the queue was full (or the pool closed before they
    /// could be written).
    pub dropped: u64,
    /// Rows in batches the server rejected.
    pub failed: u64,
    /// Batches the server rejected.
    pub failed_batches: u64,
    /// Batches written.
    pub batches: u64,
    /// Rows in the queue now.
    pub queue_len: u64,
    /// Whether the writer's connection is open now.
    pub connected: bool,
    /// Connects the writer made (its first included).
    pub connects: u64,
    /// Plans fetched and stored.
    pub plans: u64,
    /// Plans that could not be fetched.
    pub plan_failures: u64,
    /// Rows deleted by the retention sweep.
    pub expired: u64,
    /// The last setup or write error, as text (it says which DDL to run
    /// when the table could not be created).
    pub last_error: Option<String>,
}

//! The slow-query table's metric families (feature `http`), written by
//! [`PgMetrics`](crate::http::PgMetrics) when the pool has a table.

use lido_http::MetricSink;

use crate::slow_table::SlowTable;

/// Metric family names for the slow-query table.
pub mod names {
    /// Counter, `outcome` = `written` | `dropped` | `failed`: slow-query rows.
    pub const ROWS: &str = "lido_pg_slow_table_rows";
    /// Gauge: rows in the queue now.
    pub const QUEUE_LENGTH: &str = "lido_pg_slow_table_queue_length";
    /// Gauge: 1 while the writer's own connection is open, else 0.
    pub const CONNECTION_UP: &str = "lido_pg_slow_table_connection_up";
    /// Counter: plans fetched for slow statements.
    pub const PLANS: &str = "lido_pg_slow_table_plans";
}

/// Writes the families of `table` (nothing without one).
pub(crate) fn collect(table: Option<&SlowTable>, sink: &mut MetricSink<'_>) {
    let Some(table) = table else { return };
    let s = table.stats();
    let help = "Slow-query table rows, by outcome (written, dropped: queue full, failed: rejected by the server).";
    for (outcome, n) in [
        ("written", s.written),
        ("dropped", s.dropped),
        ("failed", s.failed),
    ] {
        sink.counter(names::ROWS, help, &[("outcome", outcome)], n);
    }
    #[allow(clippy::cast_precision_loss)]
    let queued = s.queue_len as f64;
    let help = "Slow-query rows waiting in the queue.";
    sink.gauge(names::QUEUE_LENGTH, help, &[], queued);
    let help = "Whether the slow-query table's own connection (outside max_size) is open.";
    let up = if s.connected { 1.0 } else { 0.0 };
    sink.gauge(names::CONNECTION_UP, help, &[], up);
    let help = "Generic plans fetched for slow statements.";
    sink.counter(names::PLANS, help, &[], s.plans);
}

//! [`SlowTable`]: the pool's end of the slow-query table: the bounded
//! queue callers put rows in, the counters, and starting and stopping the
//! writer task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::config::{SlowTableConfig, SlowTableStats};
use super::ddl::TableName;
use super::row::SlowRow;
use super::shared::Shared;
use super::writer::{Link, Writer};

/// The pool's handle on its slow-query table.
#[derive(Debug)]
pub(crate) struct SlowTable {
    tx: mpsc::Sender<SlowRow>,
    /// The queue's receiving end, until the writer starts.
    rx: Mutex<Option<mpsc::Receiver<SlowRow>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) config: SlowTableConfig,
}

impl SlowTable {
    /// A queue for `config` (its writer starts with [`start`](Self::start)).
    pub(crate) fn new(config: SlowTableConfig) -> Self {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            task: Mutex::new(None),
            shared: Arc::new(Shared::new()),
            config,
        }
    }

    /// Queues `row` without waiting: a full queue drops it and counts it.
    pub(crate) fn enqueue(&self, row: SlowRow) {
        match self.tx.try_send(row) {
            Ok(()) => {
                self.shared.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                let n = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if self.shared.may_warn(&self.shared.last_drop_warn) {
                    tracing::warn!(
                        target: "lido::slow_query",
                        dropped = n,
                        capacity = self.config.queue_capacity,
                        "lido-postgres: the slow-query table's queue is full (is the database down?); \
                         slow-query rows are dropped ({n} so far)"
                    );
                }
            }
        }
    }

    /// Rows in the queue now.
    pub(crate) fn queue_len(&self) -> u64 {
        let free = self.tx.capacity();
        u64::try_from(self.tx.max_capacity().saturating_sub(free)).unwrap_or(u64::MAX)
    }

    /// Starts the writer task on the current runtime (once; without a
    /// runtime it warns and the queue only fills).
    pub(crate) fn start(&self, link: Link) {
        let Some(rx) = self.rx.lock().take() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                "lido-postgres: no tokio runtime; the slow-query table's writer did not start"
            );
            return;
        };
        // `validate` ran when the pool was built.
        let name = match TableName::parse(&self.config.table) {
            Ok(name) => name,
            Err(e) => {
                tracing::warn!("lido-postgres: {e}; the slow-query table's writer did not start");
                return;
            }
        };
        let (shared, config) = (Arc::clone(&self.shared), self.config.clone());
        let writer = Writer::new(rx, shared, config, link, name);
        *self.task.lock() = Some(rt.spawn(writer.run()));
    }

    /// Asks the writer to write what is queued and stop; waits up to the
    /// configured `flush_timeout`, then stops it, counting what it still
    /// held as dropped.
    pub(crate) async fn close(&self) {
        self.shared.closing.send_replace(true);
        let mut done = self.shared.done.subscribe();
        let task = self.task.lock().take();
        let Some(task) = task else { return };
        let waited = tokio::time::timeout(self.config.flush_timeout, done.wait_for(|d| *d)).await;
        if waited.is_err() {
            task.abort();
            let left = self.queue_len() + self.shared.in_hand.swap(0, Ordering::Relaxed);
            self.shared.dropped.fetch_add(left, Ordering::Relaxed);
            self.shared.finished();
            tracing::warn!(
                target: "lido::slow_query",
                dropped = left,
                "lido-postgres: the slow-query table was not flushed in time; {left} rows dropped"
            );
        }
    }

    /// The counters now.
    pub(crate) fn stats(&self) -> SlowTableStats {
        let s = &self.shared;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SlowTableStats {
            queued: load(&s.queued),
            written: load(&s.written),
            dropped: load(&s.dropped),
            failed: load(&s.failed),
            failed_batches: load(&s.failed_batches),
            batches: load(&s.batches),
            queue_len: self.queue_len(),
            connected: s.connected.load(Ordering::Relaxed),
            connects: load(&s.connects),
            plans: load(&s.plans),
            plan_failures: load(&s.plan_failures),
            expired: load(&s.expired),
            last_error: s.last_error.lock().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::obs::call::{Call, Params};
    use crate::obs::shape::Shape;
    use crate::obs::slowlog::{row, Slow};
    use crate::obs::stats::Operation;

    fn table(capacity: usize) -> SlowTable {
        SlowTable::new(SlowTableConfig {
            queue_capacity: capacity,
            ..SlowTableConfig::default()
        })
    }

    fn one_row(t: &SlowTable) {
        let p: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&42i32];
        let sql = "SELECT id, note FROM orders WHERE id = $1 AND state = 'open'";
        let call = Call {
            op: Operation::Query,
            sql: Some(sql),
            params: Params::Plain(&p),
        };
        let shape = Shape::of(sql);
        let slow = Slow {
            took: Duration::from_millis(1200),
            limit: Duration::from_secs(1),
            rows: 1,
            err: None,
            with_params: false,
        };
        t.enqueue(row(&call, Some(&shape), &slow, None, None));
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let t = table(2);
        for _ in 0..5 {
            one_row(&t);
        }
        let s = t.stats();
        assert_eq!((s.queued, s.dropped, s.queue_len), (2, 3, 2));
    }

    /// The caller's cost of one slow row (building it and `try_send`), not
    /// counting the statement's shape, which the log works out anyway:
    /// `cargo test -p lido-postgres --release --lib enqueue_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement: prints the cost"]
    fn enqueue_cost() {
        const N: u32 = 200_000;
        let p: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&42i32];
        let sql = "SELECT id, note FROM orders WHERE id = $1 AND state = 'open'";
        let shape = Shape::of(sql);
        let call = Call {
            op: Operation::Query,
            sql: Some(sql),
            params: Params::Plain(&p),
        };
        let slow = Slow {
            took: Duration::from_millis(1200),
            limit: Duration::from_secs(1),
            rows: 1,
            err: None,
            with_params: false,
        };
        for round in 0..3 {
            let t = table(N as usize);
            let started = Instant::now();
            for _ in 0..N {
                t.enqueue(row(&call, Some(&shape), &slow, None, None));
            }
            let per = started.elapsed() / N;
            println!(
                "round {round}: {per:?} per slow row enqueued ({} queued)",
                t.stats().queued
            );
        }
    }
}

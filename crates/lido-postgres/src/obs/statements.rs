//! [`StatementStats`]: pg_stat_statements kept in the client. Per normalized
//! statement: calls, errors, rows, total and mean time, p50/p95/p99.
//!
//! The hot path is a read lock on one of 16 shards of a map from the SQL
//! text as written to its entry, then a few relaxed atomic adds. Only a
//! statement text not seen before is normalized and takes the table lock.
//! The entry also keeps the statement's [`Shape`] (normalized text,
//! fingerprint, span name), so spans and the slow-query log of a known
//! statement do not work it out again.
//! The table keeps at most `capacity` statements; a new one evicts the
//! statement with the fewest calls.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use foldhash::fast::RandomState;
use lido_core::Histogram;
use parking_lot::{Mutex, RwLock};

use crate::obs::normalize::normalize_sql;
use crate::obs::shape::Shape;
pub use crate::obs::statement_stat::{StatementOrder, StatementStat};
use crate::obs::table_stats::{Resolved, TableBook, TableStat};

const SHARDS: usize = 16;

/// One normalized statement's counters.
pub(crate) struct Entry {
    pub(crate) shape: Shape,
    time: Histogram,
    errors: AtomicU64,
    rows: AtomicU64,
    evicted: AtomicBool,
    /// The query class of its last classified call (`usize::MAX`: none).
    class: AtomicUsize,
    /// Its learned deadline in µs (0: none yet).
    learned_us: AtomicU64,
    /// The tables it names, for the per-table statistics.
    tables: Resolved,
    prepares: AtomicU64,
    reprepares: AtomicU64,
    cache_evictions: AtomicU64,
    timeouts: AtomicU64,
    near_timeouts: AtomicU64,
}

impl Entry {
    /// The tables it names and whether it may write.
    pub(crate) fn tables(&self) -> &Resolved {
        &self.tables
    }

    /// A call of it timed out (`timeout`) or finished near its deadline.
    pub(crate) fn note_deadline(&self, timeout: bool) {
        let n = if timeout {
            &self.timeouts
        } else {
            &self.near_timeouts
        };
        n.fetch_add(1, Ordering::Relaxed);
    }

    /// Its learned deadline, once there is one.
    pub(crate) fn learned(&self) -> Option<Duration> {
        match self.learned_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Every 32 calls past `learning.min_samples`, moves the learned
    /// deadline towards `clamp(k × p99, floor, ceiling)`.
    pub(crate) fn learn(&self, learning: &lido_core::Learning, ceiling: Option<Duration>) {
        let calls = self.time.count();
        if calls < learning.min_samples.max(1) || calls % 32 != 0 {
            return;
        }
        let target = learning.target(self.time.quantile(0.99), ceiling);
        let next = learning.step(self.learned(), target);
        let us = u64::try_from(next.as_micros()).unwrap_or(u64::MAX).max(1);
        self.learned_us.store(us, Ordering::Relaxed);
    }

    fn record(&self, took: Duration, failed: bool, rows: u64, class: Option<usize>) {
        if let Some(c) = class {
            self.class.store(c, Ordering::Relaxed);
        }
        self.tables.add(took, failed);
        self.time.record(took);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        if rows > 0 {
            self.rows.fetch_add(rows, Ordering::Relaxed);
        }
    }

    fn snapshot(&self, quantiles: bool) -> StatementStat {
        let calls = self.time.count();
        let total = self.time.sum();
        let q = |p: f64| {
            if quantiles {
                self.time.quantile(p)
            } else {
                Duration::ZERO
            }
        };
        StatementStat {
            fingerprint: self.shape.fingerprint,
            query: Arc::clone(&self.shape.text),
            calls,
            errors: self.errors.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            total,
            mean: mean(total, calls),
            max: self.time.max(),
            p50: q(0.5),
            p95: q(0.95),
            p99: q(0.99),
            class: None,
            learned_deadline: None,
            prepares: self.prepares.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            near_timeouts: self.near_timeouts.load(Ordering::Relaxed),
            reprepares: self.reprepares.load(Ordering::Relaxed),
            cache_evictions: self.cache_evictions.load(Ordering::Relaxed),
        }
    }
}

fn mean(total: Duration, calls: u64) -> Duration {
    let nanos = total.as_nanos() / u128::from(calls.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

type RawMap = HashMap<Box<str>, Arc<Entry>, RandomState>;

/// Per-statement statistics of one pool, shared by its connections.
///
/// Statements given as SQL text are counted; one passed as a prepared
/// `Statement` is timed in [`PgStats`](crate::PgStats) but not here (the
/// client does not keep its text).
///
/// ```no_run
/// # async fn f(pool: &lido_postgres::PgPool) {
/// use lido_postgres::StatementOrder;
/// for s in pool.statement_stats().top(10, StatementOrder::TotalTime) {
///     println!("{:>8} calls {:>10?} mean {:>10?} p99  {}", s.calls, s.mean, s.p99, s.query);
/// }
/// # }
/// ```
pub struct StatementStats {
    enabled: bool,
    capacity: usize,
    hasher: RandomState,
    /// SQL as written → entry: the hot path.
    raw: Box<[RwLock<RawMap>]>,
    /// Normalized text → entry: the bounded table.
    table: Mutex<HashMap<Arc<str>, Arc<Entry>, RandomState>>,
    evictions: AtomicU64,
    /// The pool's query class names, by index.
    class_names: Vec<Arc<str>>,
    /// Per-table counters.
    tables: TableBook,
}

impl std::fmt::Debug for StatementStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatementStats")
            .field("enabled", &self.enabled)
            .field("capacity", &self.capacity)
            .field("statements", &self.len())
            .finish_non_exhaustive()
    }
}

impl StatementStats {
    /// A table of at most `capacity` statements; `enabled: false` records nothing.
    pub(crate) fn new(enabled: bool, capacity: usize) -> Self {
        let hasher = RandomState::default();
        let raw = (0..SHARDS)
            .map(|_| RwLock::new(HashMap::with_hasher(hasher.clone())))
            .collect();
        Self {
            enabled: enabled && capacity > 0,
            capacity,
            raw,
            table: Mutex::new(HashMap::with_hasher(hasher.clone())),
            hasher,
            evictions: AtomicU64::new(0),
            class_names: Vec::new(),
            tables: TableBook::new(100),
        }
    }

    /// Whether statistics are being kept (see `PgPoolBuilder::statistics`).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Most statements kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Statements kept now.
    pub fn len(&self) -> usize {
        self.table.lock().len()
    }

    /// Whether no statement has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Names the query classes entries are labelled with (by index).
    pub(crate) fn with_class_names(mut self, names: Vec<Arc<str>>) -> Self {
        self.class_names = names;
        self
    }

    /// A snapshot of `e`, with its class's name.
    fn stat(&self, e: &Entry, quantiles: bool) -> StatementStat {
        let mut s = e.snapshot(quantiles);
        let class = e.class.load(Ordering::Relaxed);
        s.class = self.class_names.get(class).cloned();
        s.learned_deadline = e.learned();
        s
    }

    /// Reads, writes, errors and time per table the statements name (at
    /// most 100 tables by name, the rest as `other`), most time first.
    pub fn tables(&self) -> Vec<TableStat> {
        self.tables.snapshot()
    }

    /// Statements evicted to make room for new ones.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// The `n` statements largest by `by`, largest first.
    pub fn top(&self, n: usize, by: StatementOrder) -> Vec<StatementStat> {
        let entries: Vec<Arc<Entry>> = self.table.lock().values().cloned().collect();
        let quantiles = by == StatementOrder::P99;
        let mut all: Vec<(Arc<Entry>, StatementStat)> = entries
            .into_iter()
            .map(|e| {
                let s = self.stat(&e, quantiles);
                (e, s)
            })
            .collect();
        all.sort_by(|(_, a), (_, b)| by.key(b).cmp(&by.key(a)).then(a.query.cmp(&b.query)));
        all.truncate(n);
        all.into_iter()
            .map(|(e, s)| if quantiles { s } else { self.stat(&e, true) })
            .collect()
    }

    /// Every statement, most calls first.
    pub fn all(&self) -> Vec<StatementStat> {
        self.top(usize::MAX, StatementOrder::Calls)
    }

    /// The statistics of `sql` (as written, or normalized).
    pub fn get(&self, sql: &str) -> Option<StatementStat> {
        let key = normalize_sql(sql);
        let entry = self.table.lock().get(key.as_str()).cloned();
        entry.map(|e| self.stat(&e, true))
    }

    /// Forgets every statement.
    pub fn reset(&self) {
        let mut table = self.table.lock();
        for e in table.values() {
            e.evicted.store(true, Ordering::Relaxed);
        }
        table.clear();
        drop(table);
        for shard in self.raw.iter() {
            shard.write().clear();
        }
    }

    fn shard(&self, sql: &str) -> &RwLock<RawMap> {
        &self.raw[(self.hasher.hash_one(sql) as usize) % SHARDS]
    }

    /// The entry of `sql` as written, if it is being kept (statistics on,
    /// seen before, not evicted): one read-locked shard lookup.
    pub(crate) fn lookup(&self, sql: &str) -> Option<Arc<Entry>> {
        if !self.enabled {
            return None;
        }
        let e = self.shard(sql).read().get(sql).cloned()?;
        (!e.evicted.load(Ordering::Relaxed)).then_some(e)
    }

    /// Records one call of `sql`; `known` is its [`lookup`](Self::lookup)
    /// made before the call (still counted here if evicted since).
    pub(crate) fn record(
        &self,
        sql: &str,
        known: Option<&Entry>,
        took: Duration,
        failed: bool,
        (rows, class): (u64, Option<usize>),
    ) {
        if !self.enabled {
            return;
        }
        if let Some(e) = known.filter(|e| !e.evicted.load(Ordering::Relaxed)) {
            e.record(took, failed, rows, class);
            return;
        }
        if let Some(e) = self.lookup(sql) {
            e.record(took, failed, rows, class);
            return;
        }
        self.entry_for(sql).record(took, failed, rows, class);
    }

    /// The entry of `sql`, created (and remembered under the text as
    /// written) if new.
    fn entry_for(&self, sql: &str) -> Arc<Entry> {
        if let Some(e) = self.lookup(sql) {
            return e;
        }
        let entry = self.resolve(sql);
        let mut map = self.shard(sql).write();
        if map.len() >= self.raw_limit() {
            map.clear();
        }
        map.insert(sql.into(), Arc::clone(&entry));
        entry
    }

    /// A connection prepared `sql` (`again`: after the server rejected its
    /// cached plan).
    pub(crate) fn note_prepare(&self, sql: &str, again: bool) {
        if !self.enabled {
            return;
        }
        let e = self.entry_for(sql);
        let n = if again { &e.reprepares } else { &e.prepares };
        n.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection's statement cache evicted `sql` to make room.
    pub(crate) fn note_cache_eviction(&self, sql: &str) {
        if !self.enabled {
            return;
        }
        let e = self.entry_for(sql);
        e.cache_evictions.fetch_add(1, Ordering::Relaxed);
    }

    /// Statement texts remembered per shard before the shard starts over.
    fn raw_limit(&self) -> usize {
        (self.capacity * 4 / SHARDS).max(64)
    }

    /// The table entry for `sql`, created (evicting the least called) if needed.
    fn resolve(&self, sql: &str) -> Arc<Entry> {
        let text: Arc<str> = normalize_sql(sql).into();
        let mut table = self.table.lock();
        if let Some(e) = table.get(&text) {
            return Arc::clone(e);
        }
        if table.len() >= self.capacity {
            let victim = table
                .iter()
                .min_by_key(|(_, e)| e.time.count())
                .map(|(k, _)| Arc::clone(k));
            if let Some(e) = victim.and_then(|k| table.remove(&k)) {
                e.evicted.store(true, Ordering::Relaxed);
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        let shape = Shape::of_normalized(Arc::clone(&text));
        let operation = shape.summary.operation.as_deref();
        let tables = self.tables.resolve(&text, operation);
        let entry = Arc::new(Entry {
            tables,
            shape,
            time: Histogram::default(),
            errors: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            class: AtomicUsize::new(usize::MAX),
            learned_us: AtomicU64::new(0),
            prepares: AtomicU64::new(0),
            reprepares: AtomicU64::new(0),
            cache_evictions: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            near_timeouts: AtomicU64::new(0),
        });
        table.insert(text, Arc::clone(&entry));
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn literals_share_an_entry_and_counts_add_up() {
        let s = StatementStats::new(true, 10);
        s.record("SELECT * FROM t WHERE id = 1", None, MS, false, (1, None));
        s.record(
            "SELECT * FROM t WHERE id = 2",
            None,
            MS * 3,
            false,
            (0, None),
        );
        s.record("SELECT * FROM t WHERE id = 2", None, MS, true, (0, None));
        assert_eq!(s.len(), 1);
        let st = s.get("SELECT * FROM t WHERE id = 7").unwrap();
        assert_eq!((st.calls, st.errors, st.rows), (3, 1, 1));
        assert_eq!(st.total, MS * 5);
        assert_eq!(st.query.as_ref(), "SELECT * FROM t WHERE id = $1");
        assert_eq!(st.max, MS * 3);
    }

    #[test]
    fn evicts_the_least_called_and_orders_top() {
        let s = StatementStats::new(true, 2);
        for _ in 0..3 {
            s.record("SELECT a", None, MS, false, (0, None));
        }
        s.record("SELECT b", None, MS * 10, false, (0, None));
        s.record("SELECT c", None, MS, false, (0, None));
        assert_eq!(s.len(), 2);
        assert_eq!(s.evictions(), 1);
        assert!(s.get("SELECT b").is_none(), "b had the fewest calls");
        s.record("SELECT b", None, MS, false, (0, None));
        let top = s.top(5, StatementOrder::Calls);
        assert_eq!(top[0].query.as_ref(), "SELECT a");
        assert_eq!(top.len(), 2);
        assert!(top[0].p99 > Duration::ZERO);
        s.reset();
        assert!(s.is_empty());
    }

    #[test]
    fn a_lookup_made_before_the_call_is_what_gets_counted() {
        let s = StatementStats::new(true, 1);
        assert!(
            s.lookup("SELECT a FROM t WHERE x = 1").is_none(),
            "not seen yet"
        );
        s.record("SELECT a FROM t WHERE x = 1", None, MS, false, (0, None));
        let known = s.lookup("SELECT a FROM t WHERE x = 1").unwrap();
        assert_eq!(&*known.shape.text, "SELECT a FROM t WHERE x = $1");
        assert_eq!(known.shape.summary.name, "SELECT t");
        s.record(
            "SELECT a FROM t WHERE x = 1",
            Some(&known),
            MS,
            false,
            (2, None),
        );
        assert_eq!(s.get("SELECT a FROM t WHERE x = 9").unwrap().calls, 2);
        // Evicted between the lookup and the end of the call: counted anew.
        s.record("SELECT b", None, MS, false, (0, None));
        assert!(s.lookup("SELECT a FROM t WHERE x = 1").is_none(), "evicted");
        s.record(
            "SELECT a FROM t WHERE x = 1",
            Some(&known),
            MS,
            true,
            (0, None),
        );
        let st = s.get("SELECT a FROM t WHERE x = 1").unwrap();
        assert_eq!((st.calls, st.errors), (1, 1));
        assert_eq!(known.time.count(), 2, "the evicted entry is left as it was");
    }

    #[test]
    fn disabled_records_nothing() {
        let s = StatementStats::new(false, 10);
        s.record("SELECT 1", None, MS, false, (1, None));
        assert!(s.is_empty());
        assert!(s.lookup("SELECT 1").is_none());
    }
}

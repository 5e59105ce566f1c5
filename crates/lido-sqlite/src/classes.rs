//! Query classes on SQLite: [`SqlitePool::class`] runs reads in the class's
//! priority lane and every call within the class's deadline (waiting
//! included; a statement still running at the deadline is interrupted and
//! the call fails with [`Error::Deadline`]), retries busy transactions as
//! the class says, logs calls above its slow threshold and counts calls,
//! errors, timeouts and near timeouts per class
//! ([`SqlitePool::class_stats`]). SQLite calls are closures, so classes are
//! chosen by name (there is no statement text to classify) and deadlines
//! are not learned per statement.

use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lido_core::{CallOutcome, ClassStat, QueryClass, UnknownClass};
use rusqlite::{Connection, Transaction};

use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::exec::{self, Mode};
use crate::pool::SqlitePool;

/// A pool's calls in one query class; from [`SqlitePool::class`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use lido_sqlite::lido_core::{Classes, QueryClass};
/// use lido_sqlite::SqlitePool;
///
/// let fast = QueryClass::new("fast").deadline(Some(Duration::from_millis(200)));
/// let db = SqlitePool::memory("classes_doc")
///     .classes(Classes::default().with(fast))
///     .build()
///     .await?;
/// let n: i64 = db.class("fast")?.read(|c| c.query_row("SELECT 1", [], |r| r.get(0))).await?;
/// assert_eq!(n, 1);
/// assert_eq!(db.class_stats().iter().find(|s| s.class == "fast").map(|s| s.calls), Some(1));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteClassPool<'p> {
    pool: &'p SqlitePool,
    class: Arc<QueryClass>,
    index: usize,
}

impl SqlitePool {
    /// Calls in the class `name` (see the [module docs](crate::classes)).
    pub fn class(&self, name: &str) -> std::result::Result<SqliteClassPool<'_>, UnknownClass> {
        let classes = &self.inner.opts.classes;
        let class = classes.get(name)?;
        let index = classes.index(name).unwrap_or(usize::MAX);
        Ok(SqliteClassPool {
            pool: self,
            class,
            index,
        })
    }

    /// Calls, errors, timeouts and near timeouts per query class.
    pub fn class_stats(&self) -> Vec<ClassStat> {
        self.inner.tally.snapshot(&self.inner.opts.classes)
    }
}

impl SqliteClassPool<'_> {
    /// The class.
    pub fn class(&self) -> &QueryClass {
        &self.class
    }

    /// [`SqlitePool::read_with_priority`] in the class's lane, within its deadline.
    #[track_caller]
    pub fn read<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send + '_
    where
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let site = Location::caller();
        self.timed(site, move |deadline, wait| async move {
            let priority = self.class.priority;
            let run = move |c: &Connection| {
                let _armed = deadline.arm(c)?;
                f(c)
            };
            self.pool.read_within(priority, site, wait, run).await
        })
    }

    /// [`SqlitePool::write`] within the class's deadline.
    #[track_caller]
    pub fn write<T, F>(&self, f: F) -> impl Future<Output = Result<T>> + Send + '_
    where
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let site = Location::caller();
        self.timed(site, move |deadline, wait| async move {
            let run = move |c: &mut Connection| {
                exec::run_write(c, move |c| {
                    let _armed = deadline.arm(c)?;
                    f(c)
                })
            };
            self.pool.submit_within(wait, run).await
        })
    }

    /// [`SqlitePool::transaction`] within the class's deadline; a
    /// transaction failing with `SQLITE_BUSY` runs again while the class
    /// has retries and time left (so `f` may run more than once).
    #[track_caller]
    pub fn transaction<T, F>(&self, mode: Mode, f: F) -> impl Future<Output = Result<T>> + Send + '_
    where
        F: FnMut(&mut Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let site = Location::caller();
        let retries = self.class.retries;
        self.timed(site, move |deadline, wait| async move {
            let mut f = f;
            let body = move |tx: &mut Transaction<'_>| {
                let _armed = deadline.arm(tx)?;
                f(tx)
            };
            let run = move |c: &mut Connection| {
                if retries == 0 {
                    exec::run_tx(c, mode, body)
                } else {
                    exec::run_tx_retry(c, mode, body, wait)
                }
            };
            self.pool.submit_within(wait, run).await
        })
    }

    /// Runs `call` with its [`Deadline`] (the class's, if it has one) and
    /// how long it may wait (the deadline, else the pool's acquire timeout);
    /// then counts it, names a deadline overrun, and logs it when slow.
    async fn timed<T, C, Fut>(&self, site: &'static Location<'static>, call: C) -> Result<T>
    where
        C: FnOnce(Deadline, Duration) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let started = Instant::now();
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Build(lido_core::BuildError::NoRuntime))?;
        let limit = self.pool.acquire_timeout();
        let (at, wait) = match self.class.deadline {
            Some(d) => (Some(started + d), d.min(limit)),
            None => (None, limit),
        };
        let deadlines = self.pool.inner.deadlines.clone();
        let result = call(Deadline { at, deadlines, rt }, wait).await;
        let took = started.elapsed();
        let result = result.map_err(|e| self.deadline_error(e, at));
        self.record(site, took, &result);
        result
    }

    /// An interrupt (not a preemption) or a wait that ran out at or past
    /// the deadline is the deadline's.
    fn deadline_error(&self, e: Error, at: Option<Instant>) -> Error {
        let (Some(at), Some(deadline)) = (at, self.class.deadline) else {
            return e;
        };
        let interrupted = e.sqlite_code() == Some(rusqlite::ErrorCode::OperationInterrupted);
        if (interrupted || e.is_timeout()) && Instant::now() >= at {
            return Error::Deadline {
                class: self.class.name().to_owned(),
                deadline,
            };
        }
        e
    }

    fn record<T>(&self, site: &'static Location<'static>, took: Duration, r: &Result<T>) {
        let outcome = match r {
            Ok(_) => CallOutcome::Ok,
            Err(e) if e.is_timeout() => CallOutcome::TimedOut,
            Err(_) => CallOutcome::Failed,
        };
        let inner = &self.pool.inner;
        inner
            .tally
            .record(&inner.opts.classes, self.index, took, outcome);
        if self.class.slow_threshold.is_some_and(|t| took >= t) {
            tracing::warn!(
                target: "lido::slow_query",
                class = self.class.name(),
                took_ms = took.as_secs_f64() * 1e3,
                site = %site,
                failed = r.is_err(),
                "lido-sqlite: slow call"
            );
        }
    }
}

//! [`Pool`]: the handle applications clone and call `get()` on.

use std::future::Future;
use std::panic::Location;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::breaker::BreakerState;
use crate::commit::{apply, finish, run_connect};
use crate::config::Config;
use crate::error::{BuildError, Error};
use crate::guard::Pooled;
use crate::live::Live;
use crate::manager::Manager;
use crate::shared::Shared;
use crate::state::Step;
use crate::stats::{Stats, Status};
use crate::waiters::Priority;

/// An async connection pool. Cheap to clone: every clone shares the same connections.
///
/// ```
/// # use lido_core::{Manager, Pool};
/// # struct Nop;
/// # impl Manager for Nop {
/// #     type Connection = ();
/// #     type Error = std::io::Error;
/// #     async fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
/// #     async fn check(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Pool::builder(Nop).max_size(4).build().await?;
/// let conn = pool.get().await?;
/// assert_eq!(pool.status().in_use, 1);
/// drop(conn);
/// assert_eq!(pool.status().idle, 1);
/// # Ok(()) }
/// ```
pub struct Pool<M: Manager> {
    pub(crate) shared: Arc<Shared<M>>,
}

impl<M: Manager> Pool<M> {
    /// A new handle on `shared`, counted in `handles`.
    pub(crate) fn from_shared(shared: Arc<Shared<M>>) -> Self {
        shared.handles.fetch_add(1, Ordering::AcqRel);
        Self { shared }
    }
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Self::from_shared(Arc::clone(&self.shared))
    }
}

impl<M: Manager> Drop for Pool<M> {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            tracing::debug!("lido: last pool handle dropped; background tasks stop");
            self.shared.done.send_replace(true);
        }
    }
}

impl<M: Manager> std::fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("status", &self.status())
            .field("breaker", &self.breaker_state())
            .finish()
    }
}

/// Why `ping()` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PingError<E: std::error::Error + 'static> {
    /// No connection could be leased.
    #[error("ping could not get a connection: {0}")]
    Acquire(#[source] Error<E>),
    /// The connection failed its check.
    #[error("ping failed: {0}")]
    Check(#[source] E),
    /// The check ran past `check_timeout`.
    #[error("ping timed out after {0:?} (check_timeout)")]
    Timeout(Duration),
}

/// What `close()` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReport {
    /// Connections still leased when the deadline passed (closed when they come back).
    pub outstanding: usize,
    /// Whether every lease came back in time.
    pub drained: bool,
}

/// What `retain` shows the predicate about a connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The pool's id for the connection.
    pub id: u64,
    /// Time since it was opened.
    pub age: Duration,
    /// Time since it was last returned.
    pub idle_for: Duration,
}

impl<M: Manager> Pool<M> {
    /// Leases a connection, waiting up to `acquire_timeout`. Callers are served
    /// strictly in arrival order. Cancellation-safe at every point.
    #[track_caller]
    pub fn get(&self) -> impl Future<Output = Result<Pooled<M>, Error<M::Error>>> + Send + '_ {
        let location = Location::caller();
        crate::acquire::acquire(&self.shared, Priority::Normal, location)
    }

    /// Like [`get`](Self::get) in the given priority lane: waiting `Critical`
    /// callers are served before `Normal` ones, and those before `Background`.
    #[track_caller]
    pub fn get_with_priority(
        &self,
        priority: Priority,
    ) -> impl Future<Output = Result<Pooled<M>, Error<M::Error>>> + Send + '_ {
        let location = Location::caller();
        crate::acquire::acquire(&self.shared, priority, location)
    }

    /// Like [`get_with_priority`](Self::get_with_priority), with the call
    /// site given rather than taken from the caller: for wrappers (a backend's
    /// own `#[track_caller]` `get`, a closure-running helper) so that leak
    /// reports name the application's line, not the wrapper's.
    ///
    /// ```
    /// # use lido_core::{Manager, Pool, Priority};
    /// # struct Nop;
    /// # impl Manager for Nop {
    /// #     type Connection = ();
    /// #     type Error = std::io::Error;
    /// #     async fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
    /// #     async fn check(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
    /// # }
    /// #[track_caller]
    /// fn lease(pool: &Pool<Nop>) -> impl std::future::Future<Output = ()> + '_ {
    ///     let at = std::panic::Location::caller();
    ///     async move {
    ///         let conn = pool.get_tracked(Priority::Normal, at).await.expect("lease");
    ///         assert_eq!(conn.location().line(), at.line());
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = Pool::builder(Nop).build().await?;
    /// lease(&pool).await;
    /// # Ok(()) }
    /// ```
    pub fn get_tracked(
        &self,
        priority: Priority,
        location: &'static Location<'static>,
    ) -> impl Future<Output = Result<Pooled<M>, Error<M::Error>>> + Send + '_ {
        crate::acquire::acquire(&self.shared, priority, location)
    }

    /// A point-in-time view: size, idle, in use, waiters, connecting, max.
    pub fn status(&self) -> Status {
        self.shared.lock().status()
    }

    /// Cumulative counters and time distributions.
    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    /// The circuit breaker's state.
    pub fn breaker_state(&self) -> BreakerState {
        self.shared.breaker.state()
    }

    /// The settings the pool runs with (`max_size` as built; see `status()` after `resize`).
    pub fn config(&self) -> &Config {
        &self.shared.cfg
    }

    /// The connection manager.
    pub fn manager(&self) -> &M {
        &self.shared.manager
    }

    /// Leases currently held past `leak_threshold` (empty when leak detection is off).
    pub fn leaks(&self) -> Vec<crate::LeakReport> {
        match self.shared.cfg.leak_threshold {
            Some(t) => self.shared.lock().overdue_leases(Instant::now(), t, false),
            None => Vec::new(),
        }
    }

    /// Time since the maintenance task last ran: the pool's own liveness
    /// signal. Grows past a few `maintenance_interval`s only if the task is
    /// wedged or stopped, never because the database is down.
    pub fn maintenance_age(&self) -> Duration {
        let beat = Duration::from_millis(self.shared.heartbeat_ms.load(Ordering::Relaxed));
        self.shared.started.elapsed().saturating_sub(beat)
    }

    /// Leases a connection in the `Critical` lane (so a saturated pool can
    /// still be probed) and runs the manager's `check` on it, bounded by
    /// `check_timeout`; returns the check's round-trip time. A ping cancelled
    /// or failed mid-check closes that connection rather than reusing it.
    pub async fn ping(&self) -> Result<Duration, PingError<M::Error>> {
        let mut conn = self
            .get_with_priority(Priority::Critical)
            .await
            .map_err(PingError::Acquire)?;
        conn.discard_on_drop();
        let started = Instant::now();
        let limit = self.shared.cfg.check_timeout;
        match tokio::time::timeout(limit, self.shared.manager.check(&mut conn)).await {
            Ok(Ok(())) => {
                conn.keep_on_drop();
                Ok(started.elapsed())
            }
            Ok(Err(e)) => Err(PingError::Check(e)),
            Err(_) => Err(PingError::Timeout(limit)),
        }
    }

    /// Time until the open circuit breaker lets a trial connect through (zero unless open).
    pub fn breaker_retry_in(&self) -> Duration {
        self.shared.breaker.retry_in(Instant::now())
    }

    /// The most recent connect failure of the current failure streak, if any
    /// (cleared by a successful connect). Its `Display` never holds a password.
    pub fn last_connect_error(&self) -> Option<crate::ConnectFailure<M::Error>> {
        self.shared.breaker.last_error()
    }

    /// Time since the pool was built.
    pub fn uptime(&self) -> Duration {
        self.shared.started.elapsed()
    }

    /// Whether `close()` was called.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().is_closed()
    }

    /// Connections the pool may have open now: with adaptive sizing on, its
    /// current target (never above `max_size`); else `max_size`.
    pub fn target_size(&self) -> usize {
        self.shared.lock().status().target_size
    }

    /// Changes `max_size` at runtime. Shrinking closes idle connections above the
    /// new size at once and leased ones as they come back; growing serves waiters.
    /// With adaptive sizing on, `max_size` is the hard cap its target stays under.
    pub fn resize(&self, max_size: usize) -> Result<(), BuildError> {
        if max_size == 0 {
            return Err(BuildError::ZeroMaxSize);
        }
        if max_size < self.shared.cfg.min_idle {
            return Err(BuildError::MinIdleAboveMax {
                min_idle: self.shared.cfg.min_idle,
                max_size,
            });
        }
        self.shared.cfg.lanes.validate(max_size)?;
        apply(&self.shared, |st, step| st.resize(max_size, step));
        tracing::info!(max_size, "lido: pool resized");
        Ok(())
    }

    /// Closes every idle connection for which `keep` returns `false`.
    ///
    /// `keep` runs without the pool's lock held (it may call `status()` or
    /// take its time); meanwhile those connections count as in use. If `keep`
    /// panics, every connection not yet rejected goes back.
    pub fn retain(&self, mut keep: impl FnMut(&M::Connection, ConnInfo) -> bool) {
        let now = Instant::now();
        let mut sorting = Sorting {
            shared: &self.shared,
            rest: self.shared.lock().lend_idle(),
            kept: Vec::new(),
            rejected: Vec::new(),
        };
        while let Some(live) = sorting.rest.pop_front() {
            let info = ConnInfo {
                id: live.id,
                age: now.saturating_duration_since(live.created),
                idle_for: now.saturating_duration_since(live.last_used),
            };
            if keep(&live.conn, info) {
                sorting.kept.push(live);
            } else {
                sorting.rejected.push(live);
            }
        }
    }

    /// Opens connections until `min_idle` are idle (what `build()` waits for).
    /// Connects go through the circuit breaker and, on failure, serve waiters
    /// like any other connect; the last failure is returned.
    pub async fn warm_up(&self) -> Result<(), Error<M::Error>> {
        let trials = apply(&self.shared, |st, step| st.reserve_for_min_idle(step));
        // Detached tasks (not a JoinSet, which would abort them if this future
        // is dropped): a cancelled warm-up still finishes its connects.
        let tasks: Vec<_> = trials
            .into_iter()
            .map(|trial| {
                let shared = Arc::clone(&self.shared);
                self.shared
                    .runtime
                    .spawn(async move { run_connect(&shared, trial).await })
            })
            .collect();
        let mut result = Ok(());
        for task in tasks {
            if let Ok(Err(e)) = task.await {
                result = Err(e);
            }
        }
        result
    }

    /// Stops new acquires, fails waiters with [`Error::Closed`], closes idle
    /// connections, and waits up to `deadline` for leased ones to come back
    /// (they are closed as they return).
    pub async fn close(&self, deadline: Duration) -> CloseReport {
        let until = crate::time::add(Instant::now(), deadline);
        apply(&self.shared, |st, step| st.close(step));
        self.shared.done.send_replace(true);
        tracing::info!("lido: pool closing");
        loop {
            let notified = self.shared.returned.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let outstanding = self.shared.lock().outstanding();
            if outstanding == 0 {
                return CloseReport {
                    outstanding: 0,
                    drained: true,
                };
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                tracing::warn!(
                    outstanding,
                    "lido: close deadline passed with connections still leased"
                );
                return CloseReport {
                    outstanding,
                    drained: false,
                };
            }
        }
    }
}

/// Idle connections taken out by `retain`; dropping it (normally, or while
/// unwinding from a panicking predicate) puts them back or closes them.
struct Sorting<'a, M: Manager> {
    shared: &'a Arc<Shared<M>>,
    rest: std::collections::VecDeque<Live<M::Connection>>,
    kept: Vec<Live<M::Connection>>,
    rejected: Vec<Live<M::Connection>>,
}

impl<M: Manager> Drop for Sorting<'_, M> {
    fn drop(&mut self) {
        let mut step = Step::new(&self.shared.breaker);
        {
            let kept = self.kept.drain(..).chain(self.rest.drain(..));
            let mut st = self.shared.lock();
            st.retained(self.rejected.drain(..), kept, &mut step);
        }
        finish(self.shared, step.after);
    }
}

//! The read lane: reader threads taking reads from one queue per priority.
//!
//! A read is queued in its priority's FIFO; the first free reader thread
//! takes the oldest read of the highest priority that the readers' lane
//! limits ([`lido_core::LaneLimits`]: reserved readers, a share cap) let
//! run now, leases a reader from the lido-core pool on that thread (at once
//! when one is idle: the lane runs at most the pool's `max_size` threads,
//! each holding at most one lease), runs the closure and returns the lease
//! before it takes the next read. While reads are queued, the thread that
//! frees a reader takes the next one itself, so a reader never sits idle
//! waiting for a thread (or a task) to wake up, and every read costs one
//! hop from the executor and one back, as on a blocking thread. A thread
//! that finds the queue empty looks for the next read for up to
//! `reply::SPIN` (`Lane::spin`) before it waits, and a read submitted
//! meanwhile is handed to it without a wake-up. When that read is the only
//! one in the lane, its caller in turn polls for the reply for as long
//! (`reply::poll_briefly`), yielding to the runtime's other tasks, so a
//! caller reading in a loop is not parked and woken for every read.
//!
//! A read still queued when its caller stops waiting (dropped future,
//! `acquire_timeout`) is withdrawn and never runs; one already running
//! finishes and returns its lease. Only a read queued behind busy threads
//! arms a timer for `acquire_timeout`; one an idle (or new) thread takes at
//! once is bounded by the lease's own deadline on that thread.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use lido_core::{LaneLimits, Pool, Pooled, Priority};
use parking_lot::{Condvar, Mutex, MutexGuard};
use rusqlite::Connection;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::error::{ConnectError, Error, Result};
use crate::exec::{self, Outcome};
use crate::manager::SqliteManager;
use crate::reply::{poll_briefly, spin};
use crate::ticket::{self, Claim};
use crate::writer::Gate;

/// How long an idle reader thread waits for work before it exits.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// How often a saturated lane re-reads the pool's `max_size`: a resize
/// reaches the lane with the first read queued behind busy threads at least
/// this long after the lane last looked.
const RESIZE_EVERY: Duration = Duration::from_millis(100);

type Work = Box<dyn FnOnce() + Send>;

struct Job {
    claim: Claim,
    work: Work,
    lane: Priority,
}

struct Queue {
    /// Reads waiting, per priority (`Priority as usize`).
    jobs: [VecDeque<Job>; 3],
    /// Reads running now, per priority.
    running: [usize; 3],
    /// The readers' lane limits.
    limits: LaneLimits,
    threads: usize,
    /// Threads waiting for work.
    idle: usize,
    /// Threads spinning briefly for the next read before they wait, not yet
    /// claimed by one (a claim also adds one to `Lane::claims`).
    spin_free: usize,
    /// The most threads to run: the readers' `max_size` when last read.
    limit: usize,
    /// When `limit` was last read from the pool (never: at start-up).
    limit_read: Option<Instant>,
    closed: bool,
}

/// The queue and its reader threads.
pub(crate) struct Lane {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Reads handed to spinning threads and not yet picked up (changed
    /// only under `queue`'s lock, read by the spinners without it).
    claims: AtomicUsize,
}

/// One read: where it was called, its deadline and what the thread needs.
struct Read {
    pool: Pool<SqliteManager>,
    handle: Handle,
    at: &'static Location<'static>,
    lane: Priority,
    gate: Gate,
    wait: Duration,
    started: Instant,
    deadline: Option<Instant>,
}

impl Lane {
    /// A lane that runs up to `limit` threads (started as reads arrive),
    /// admitting reads of each priority within `limits`.
    pub fn new(limit: usize, limits: LaneLimits) -> Self {
        Self {
            queue: Mutex::new(Queue {
                jobs: Default::default(),
                running: [0; 3],
                limits,
                threads: 0,
                idle: 0,
                spin_free: 0,
                limit: limit.max(1),
                limit_read: None,
                closed: false,
            }),
            ready: Condvar::new(),
            claims: AtomicUsize::new(0),
        }
    }

    /// Reads waiting for a reader thread.
    pub fn queued(&self) -> usize {
        self.queue.lock().queued()
    }

    /// Lets the threads exit once the queue is empty.
    pub fn close(&self) {
        self.queue.lock().closed = true;
        self.ready.notify_all();
    }

    /// Runs `f` on a reader leased from `pool` on a reader thread, after the
    /// reads of its priority queued before it (and those of higher
    /// priorities); gives up with an acquire timeout when no thread took it
    /// within `timeout`.
    pub async fn read<T, F>(
        self: &Arc<Self>,
        pool: &Pool<SqliteManager>,
        (gate, timeout, at, lane): (Gate, Duration, &'static Location<'static>, Priority),
        f: F,
    ) -> Result<T>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let started = Instant::now();
        let read = Read {
            pool: pool.clone(),
            handle: Handle::try_current()
                .map_err(|_| Error::Build(lido_core::BuildError::NoRuntime))?,
            at,
            lane,
            gate,
            wait: timeout,
            started,
            deadline: started.checked_add(timeout),
        };
        let (reply, mut rx) = oneshot::channel();
        let (ticket, claim) = ticket::pair();
        let work: Work = Box::new(move || {
            let _ = reply.send(read.run(f));
        });
        let placed = self.submit(Job { claim, work, lane }, pool)?;
        if let Placed::Alone = placed {
            if let Some(r) = poll_briefly(&mut rx).await {
                return r.unwrap_or(Err(Error::Closed));
            }
        }
        if let Placed::Alone | Placed::Now = placed {
            // A thread takes it now: no wait to bound but the lease's own.
            return rx.await.unwrap_or(Err(Error::Closed));
        }
        if let Ok(r) = tokio::time::timeout(timeout, &mut rx).await {
            return r.unwrap_or(Err(Error::Closed));
        }
        if ticket.cancel() {
            return Err(self.timed_out(pool, started.elapsed()));
        }
        // A thread took it: it leases within the same deadline.
        rx.await.unwrap_or(Err(Error::Closed))
    }

    fn timed_out(&self, pool: &Pool<SqliteManager>, waited: Duration) -> Error {
        let status = pool.status();
        let err = lido_core::Error::AcquireTimeout {
            waited,
            in_use: status.in_use,
            max_size: status.max_size,
            waiters: self.queued() + status.waiters,
            last_connect_error: pool.last_connect_error(),
        };
        tracing::warn!(error = %err, "lido-sqlite: read timed out waiting for a reader");
        Error::Pool(err)
    }

    /// Queues `job`, waking an idle thread or starting one. `Queued` when it
    /// waits for a busy thread instead (and so may wait past its deadline).
    fn submit(self: &Arc<Self>, job: Job, pool: &Pool<SqliteManager>) -> Result<Placed> {
        let mut q = self.queue.lock();
        let (job_lane, at) = (job.lane, job.lane as usize);
        q.jobs[at].push_back(job);
        let mut admitted = q.may_run(job_lane);
        if q.spin_free > 0 && admitted {
            // A thread that just finished a read is still looking for the
            // next one: it takes this one without a wake-up.
            q.spin_free -= 1;
            self.claims.fetch_add(1, Ordering::Relaxed);
            let alone = q.queued() == 1 && q.running.iter().sum::<usize>() == 0;
            return Ok(if alone { Placed::Alone } else { Placed::Now });
        }
        if q.idle > 0 && admitted {
            let now = q.idle >= q.queued();
            drop(q);
            self.ready.notify_one();
            return Ok(if now { Placed::Now } else { Placed::Queued });
        }
        // At the limit, or not admitted under it: the pool may have grown.
        let stale = q.limit_read.is_none_or(|t| t.elapsed() >= RESIZE_EVERY);
        if (q.threads >= q.thread_limit() || !admitted) && stale {
            q.limit = pool.status().max_size.max(1);
            q.limit_read = Some(Instant::now());
            admitted = q.may_run(job_lane);
            if q.idle > 0 && admitted {
                drop(q);
                self.ready.notify_one();
                return Ok(Placed::Queued);
            }
        }
        if q.threads >= q.thread_limit() || !admitted {
            return Ok(Placed::Queued); // a busy thread takes it in turn
        }
        let lane = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("lido-sqlite-reader".into())
            .spawn(move || lane.run());
        match spawned {
            Ok(_) => {
                q.threads += 1;
                // The new thread takes the first read in line: this one
                // only if nothing else is queued.
                Ok(if q.queued() > 1 {
                    Placed::Queued
                } else {
                    Placed::Now
                })
            }
            Err(e) if q.threads == 0 => {
                q.jobs[at].pop_back();
                Err(Error::Spawn(e))
            }
            Err(e) => {
                tracing::warn!(error = %e, "lido-sqlite: could not start a reader thread");
                Ok(Placed::Queued)
            }
        }
    }

    /// A reader thread: takes reads in order until idle for `KEEP_ALIVE` or closed.
    fn run(self: Arc<Self>) {
        let mut q = self.queue.lock();
        // Whether it spun since its last read (it spins once before it waits).
        let mut spun = false;
        loop {
            if let Some(job) = q.take() {
                spun = false;
                drop(q);
                let lane = job.lane as usize;
                if job.claim.start() {
                    // `Read::run` catches the closure's panics; this keeps the
                    // thread alive through anything else.
                    let _ = catch_unwind(AssertUnwindSafe(job.work));
                }
                q = self.queue.lock();
                q.running[lane] -= 1;
                continue;
            }
            if q.closed {
                break;
            }
            if !spun {
                spun = true;
                q = self.spin(q);
                continue;
            }
            spun = false;
            q.idle += 1;
            let waited = self.ready.wait_for(&mut q, KEEP_ALIVE);
            q.idle -= 1;
            if waited.timed_out() && q.queued() == 0 {
                break;
            }
        }
        q.threads -= 1;
    }

    /// Looks for the next read for up to [`SPIN`](crate::reply::SPIN)
    /// ([`spin`]) before the thread waits on the condition variable: at a
    /// steady rate of reads the next one usually comes within that, and
    /// taking it here saves the wake-up (a futex call and a trip through
    /// the scheduler) that a waiting thread costs. Returns the queue's lock
    /// again.
    fn spin<'q>(&'q self, mut q: MutexGuard<'q, Queue>) -> MutexGuard<'q, Queue> {
        q.spin_free += 1;
        drop(q);
        spin(|| (self.claims.load(Ordering::Relaxed) > 0).then_some(()));
        let mut q = self.queue.lock();
        // Claims are made under this lock: either one is ours to take, or
        // this thread is still unclaimed and stops being offered.
        let claimed = self
            .claims
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_sub(1))
            .is_ok();
        if !claimed {
            q.spin_free -= 1;
        }
        q
    }
}

/// Where [`Lane::submit`] put a read.
enum Placed {
    /// A spinning thread took it, and it is the only read in the lane.
    Alone,
    /// A thread takes it now.
    Now,
    /// It waits for a busy thread.
    Queued,
}

impl Queue {
    fn queued(&self) -> usize {
        self.jobs.iter().map(VecDeque::len).sum()
    }

    /// Whether a read of `lane` may go to a thread now: the lane limits
    /// admit it, or (lending on) a lower lane runs reads that the pool can
    /// preempt for it, so it waits for its reader in the pool, whose
    /// sweeper times its budget.
    fn may_run(&self, lane: Priority) -> bool {
        if self.limits.admits(&self.running, lane, self.limit) {
            return true;
        }
        let below: usize = self.running[lane as usize + 1..].iter().sum();
        let total: usize = self.running.iter().sum();
        self.limits.preempt_after.is_some() && below > 0 && total < self.thread_limit()
    }

    /// Reader threads allowed: the readers' `max_size`, plus (lending on)
    /// one per reserved reader, for reads waiting in the pool for a
    /// preemption.
    fn thread_limit(&self) -> usize {
        match self.limits.preempt_after {
            Some(_) => self.limit + self.limits.reserved.iter().sum::<usize>(),
            None => self.limit,
        }
    }

    /// The oldest read of the highest priority that may run now (counted
    /// as running).
    fn take(&mut self) -> Option<Job> {
        let lane = Priority::ALL
            .into_iter()
            .find(|&p| !self.jobs[p as usize].is_empty() && self.may_run(p))?;
        let job = self.jobs[lane as usize].pop_front()?;
        self.running[lane as usize] += 1;
        Some(job)
    }
}

impl Read {
    /// Leases a reader, runs `f` on it and gives the reader back.
    fn run<T>(self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        // The pool's own work (validation, returning the lease) expects a runtime.
        let _rt = self.handle.enter();
        let mut guard = self.lease()?;
        read_on(&mut guard, &self.gate, self.wait, f)
    }

    /// Takes an idle reader without blocking when there is one, else waits
    /// for one until the read's deadline.
    fn lease(&self) -> Result<Pooled<SqliteManager>> {
        let mut get = pin!(self.pool.get_tracked(self.lane, self.at));
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(r) = get.as_mut().poll(&mut cx) {
            return Ok(r?);
        }
        let Some(deadline) = self.deadline else {
            return Ok(self.handle.block_on(get)?);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        match self.handle.block_on(tokio::time::timeout(left, get)) {
            Ok(r) => Ok(r?),
            Err(_) => {
                let status = self.pool.status();
                Err(Error::Pool(lido_core::Error::AcquireTimeout {
                    waited: self.started.elapsed(),
                    in_use: status.in_use,
                    max_size: status.max_size,
                    waiters: status.waiters,
                    last_connect_error: self.pool.last_connect_error(),
                }))
            }
        }
    }
}

/// Runs a read closure on a leased reader (reader thread or caller thread).
pub(crate) fn read_on<T>(
    guard: &mut Pooled<SqliteManager>,
    gate: &Gate,
    wait: Duration,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T> {
    let _shared = match gate {
        Some(g) => Some(g.try_read_for(wait).ok_or(Error::WriterTimeout {
            waited: wait,
            queued: 0,
        })?),
        None => None,
    };
    let Some(conn) = guard.conn.as_ref() else {
        guard.discard_on_drop();
        return Err(Error::Connect(ConnectError::Lost));
    };
    let Outcome { result, healthy } = exec::run_read(conn, f);
    if !healthy {
        guard.broken = true;
    }
    match result {
        Err(Error::Sqlite(e))
            if guard.preempted.load(std::sync::atomic::Ordering::SeqCst)
                && e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) =>
        {
            Err(Error::Preempted)
        }
        r => r,
    }
}

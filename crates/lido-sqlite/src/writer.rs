//! The writer lane: one connection on its own thread, running writes strictly
//! in arrival order, so writers in this process never race for the write lock.
//!
//! A queued write that waits past `acquire_timeout` is withdrawn (it never
//! runs); one already running is always waited for, so a caller never gets a
//! timeout for a write that went on to commit.
//!
//! The thread looks for the next write for a moment before it sleeps, and a
//! caller whose write it takes while nothing else is queued polls for the
//! reply for as long (see [`crate::reply`]): one task writing in a loop is
//! then never put to sleep and woken for each write, on either side.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::cap::Permit;
use crate::connect;
use crate::error::{Error, Result};
use crate::exec::Outcome;
use crate::options::{Builder, Role};
use crate::reply::{poll_briefly, spin};
use crate::ticket::{self, Claim};

/// In-process lock making in-memory databases behave like a rollback journal:
/// a write excludes readers (shared-cache table locks would otherwise fail
/// them with `SQLITE_LOCKED` instead of waiting).
pub(crate) type Gate = Option<Arc<parking_lot::RwLock<()>>>;

type Work = Box<dyn FnOnce(Result<&mut Connection>) -> bool + Send>;

struct Job {
    claim: Claim,
    work: Work,
}

enum Msg {
    Job(Job),
    Shutdown(oneshot::Sender<()>),
}

/// The handle the pool sends writes through.
pub(crate) struct Writer {
    tx: mpsc::Sender<Msg>,
    queued: Arc<AtomicUsize>,
    /// The thread is looking for the next write (it takes one sent now
    /// without being woken).
    spinning: Arc<AtomicBool>,
    /// Writes run so far, bumped before each answers its caller (what the
    /// result cache checks its entries against).
    writes: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the writer thread around an open, set-up connection.
    pub fn start(
        conn: Connection,
        opts: Arc<Builder>,
        gate: Gate,
        permit: Option<Permit>,
    ) -> Result<Self> {
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let spinning = Arc::new(AtomicBool::new(false));
        let lane = Lane {
            conn: Some(conn),
            opened: Instant::now(),
            last_used: Instant::now(),
            opts,
            gate,
            queued: Arc::clone(&queued),
            spinning: Arc::clone(&spinning),
            _permit: permit,
        };
        std::thread::Builder::new()
            .name("lido-sqlite-writer".into())
            .spawn(move || lane.run(rx))
            .map_err(Error::Spawn)?;
        Ok(Self {
            tx,
            queued,
            spinning,
            writes: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Writes run so far (any closure on the writer connection counts).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }

    /// Writes waiting for their turn.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Runs `f` on the writer connection after every write queued before it,
    /// withdrawing it if it is still queued after `timeout`.
    pub async fn submit<T: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&mut Connection) -> Outcome<T> + Send + 'static,
    ) -> Result<T> {
        let start = Instant::now();
        let (reply, mut rx) = oneshot::channel();
        let (ticket, claim) = ticket::pair();
        let writes = Arc::clone(&self.writes);
        let work: Work = Box::new(move |conn| {
            let (result, healthy) = match conn {
                Ok(c) => {
                    let o = f(c);
                    // Before the caller hears back: a cached read after its
                    // write never sees the result from before it.
                    writes.fetch_add(1, Ordering::AcqRel);
                    (o.result, o.healthy)
                }
                Err(e) => (Err(e), true),
            };
            let _ = reply.send(result);
            healthy
        });
        let lone = self.queued.fetch_add(1, Ordering::Relaxed) == 0
            && self.spinning.load(Ordering::Relaxed);
        if self.tx.send(Msg::Job(Job { claim, work })).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::Closed);
        }
        if lone {
            // The thread takes it at once: its reply usually comes within the spin.
            if let Some(r) = poll_briefly(&mut rx).await {
                return r.unwrap_or(Err(Error::Closed));
            }
        }
        if let Ok(r) = tokio::time::timeout(timeout, &mut rx).await {
            return r.unwrap_or(Err(Error::Closed));
        }
        if ticket.cancel() {
            return Err(Error::WriterTimeout {
                waited: start.elapsed(),
                queued: self.queued(),
            });
        }
        // Already running: its outcome is the caller's to know.
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Lets queued writes finish, then closes the connection and waits for the thread.
    pub async fn shutdown(&self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Msg::Shutdown(done)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// The writer thread's state.
struct Lane {
    conn: Option<Connection>,
    opened: Instant,
    last_used: Instant,
    opts: Arc<Builder>,
    gate: Gate,
    queued: Arc<AtomicUsize>,
    spinning: Arc<AtomicBool>,
    _permit: Option<Permit>,
}

impl Lane {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        tracing::debug!(source = %self.opts.source.describe(), "lido-sqlite: writer lane started");
        while let Some(msg) = self.next(&rx) {
            match msg {
                Msg::Job(job) => {
                    self.queued.fetch_sub(1, Ordering::Relaxed);
                    if job.claim.start() {
                        self.run_job(job.work);
                    }
                }
                Msg::Shutdown(done) => {
                    drop(self.conn.take());
                    let _ = done.send(());
                    break;
                }
            }
        }
        tracing::debug!(source = %self.opts.source.describe(), "lido-sqlite: writer lane stopped");
    }

    /// The next message: taken at once when one is waiting (under load,
    /// without touching `spinning`, which callers read), else looked for
    /// during [`SPIN`](crate::reply::SPIN), then waited for. `None` once
    /// every sender is gone.
    fn next(&self, rx: &mpsc::Receiver<Msg>) -> Option<Msg> {
        let look = || match rx.try_recv() {
            Ok(msg) => Some(Some(msg)),
            Err(mpsc::TryRecvError::Disconnected) => Some(None),
            Err(mpsc::TryRecvError::Empty) => None,
        };
        if let Some(got) = look() {
            return got;
        }
        self.spinning.store(true, Ordering::Relaxed);
        let got = spin(look);
        self.spinning.store(false, Ordering::Relaxed);
        got.unwrap_or_else(|| rx.recv().ok())
    }

    fn run_job(&mut self, work: Work) {
        let gate = self.gate.clone();
        let _exclusive = match &gate {
            Some(g) => match g.try_write_for(self.opts.readers.acquire_timeout) {
                Some(guard) => Some(guard),
                None => {
                    let waited = self.opts.readers.acquire_timeout;
                    work(Err(Error::WriterTimeout { waited, queued: 0 }));
                    return;
                }
            },
            None => None,
        };
        let healthy = match self.ready() {
            Ok(conn) => work(Ok(conn)),
            Err(e) => work(Err(e)),
        };
        if !healthy {
            tracing::warn!("lido-sqlite: writer connection left in a transaction; reopening it");
            self.conn = None;
        }
        self.last_used = Instant::now();
    }

    /// The connection, recycled when too old, checked after idling, reopened when gone.
    fn ready(&mut self) -> Result<&mut Connection> {
        let now = Instant::now();
        let expired = self
            .opts
            .readers
            .max_lifetime
            .is_some_and(|life| now.duration_since(self.opened) >= life);
        if expired && self.conn.take().is_some() {
            tracing::debug!("lido-sqlite: writer connection reached max_lifetime; recycling");
        }
        let idle = now.duration_since(self.last_used) > self.opts.readers.validation_bypass;
        if let (true, Some(c)) = (idle, &self.conn) {
            if let Err(e) = c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)) {
                tracing::warn!(error = %e, "lido-sqlite: writer connection failed its check; reopening");
                self.conn = None;
            }
        }
        if self.conn.is_none() {
            self.conn = Some(connect::open(&self.opts, Role::Writer)?);
            self.opened = Instant::now();
        }
        self.conn.as_mut().ok_or(Error::Closed)
    }
}

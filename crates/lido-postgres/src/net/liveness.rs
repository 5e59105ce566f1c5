//! [`Liveness`]: whether a pool's server answers, as its watchdog sees it.
//!
//! Every connection of a pool is registered here when it opens (its
//! [`WireState`] and the handle of its I/O task). The watchdog (see
//! `watchdog.rs`) samples them on a timer: a connection owing an answer
//! whose count of `ReadyForQuery` messages has not moved for a while is
//! *stalled*. Nothing here runs per query: the I/O already counts the
//! messages, and the watchdog reads the counters a few times a second.
//!
//! While the server is held not answering, [`Liveness::silent_for`] is
//! `Some`: `get()` fails fast, readiness fails, and stalled connections are
//! closed (their calls end at once, and the pool discards them).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::task::AbortHandle;

use crate::error::PgError;
use crate::net::target::Target;
use crate::net::wire::{IdleBell, WireState};

/// One registered connection and what the watchdog last saw of it.
#[derive(Debug)]
struct Watched {
    wire: Weak<WireState>,
    io: AbortHandle,
    /// The server it is on (what the probe asks).
    target: Target,
    /// `ReadyForQuery` count at the last sample.
    received: u64,
    /// Since when it owes an answer with no progress.
    stalled_since: Option<Instant>,
    /// A probe found the server answering while this one stalled: a slow
    /// statement, not a silent server (until it makes progress again).
    vouched: bool,
}

/// A connection owing an answer for too long.
#[derive(Debug, Clone)]
pub(crate) struct Stall {
    /// Since when it made no progress.
    pub(crate) since: Instant,
    /// The server it waits for.
    pub(crate) target: Target,
}

/// What one sample found.
#[derive(Debug)]
pub(crate) struct Sampled {
    /// The oldest stall past the limit no probe vouched for.
    pub(crate) stall: Option<Stall>,
    /// Some connection received an answer since the last sample.
    pub(crate) progressed: bool,
    /// No connection owes an answer.
    pub(crate) idle: bool,
}

/// Fails the callers waiting in a pool's `get()` with the given error.
pub(crate) type FailWaiting = Box<dyn Fn(PgError) + Send + Sync>;

/// What the watchdog shares with the pool's connections and `get()`.
pub(crate) struct Liveness {
    /// `host:port` (or the socket path) named in errors.
    server: String,
    epoch: Instant,
    /// Milliseconds after `epoch`, plus one, of the server's last answer
    /// while it is held not answering; 0 while it answers.
    silent_since: AtomicU64,
    conns: Mutex<Vec<Watched>>,
    /// Whether the watchdog task was started.
    started: AtomicBool,
    /// Fails the callers waiting in the pool's `get()` (set by the pool).
    fail_waiting: OnceLock<FailWaiting>,
    /// Wakes the parked watchdog when a connection starts to owe an answer.
    pub(crate) bell: Arc<IdleBell>,
}

impl std::fmt::Debug for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Liveness")
            .field("server", &self.server)
            .field("silent_for", &self.silent_for())
            .finish_non_exhaustive()
    }
}

impl Liveness {
    /// Liveness of `server`, answering.
    pub(crate) fn new(server: String) -> Self {
        Self {
            server,
            epoch: Instant::now(),
            silent_since: AtomicU64::new(0),
            conns: Mutex::new(Vec::new()),
            started: AtomicBool::new(false),
            fail_waiting: OnceLock::new(),
            bell: Arc::default(),
        }
    }

    /// The server's name in errors.
    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    /// `true` the first time only: the caller starts the watchdog.
    pub(crate) fn claim_start(&self) -> bool {
        !self.started.swap(true, Ordering::AcqRel)
    }

    /// Registers a new connection (once per connect, not per query).
    pub(crate) fn register(&self, wire: &Arc<WireState>, io: AbortHandle, target: &Target) {
        let (received, _) = wire.progress();
        wire.ring_on_owe(&self.bell);
        self.conns.lock().push(Watched {
            wire: Arc::downgrade(wire),
            io,
            target: target.clone(),
            received,
            stalled_since: None,
            vouched: false,
        });
    }

    /// How long the server has been silent, while it is held not answering.
    /// One relaxed load when it answers.
    pub(crate) fn silent_for(&self) -> Option<Duration> {
        match self.silent_since.load(Ordering::Relaxed) {
            0 => None,
            at => {
                let since = self.epoch + Duration::from_millis(at - 1);
                Some(since.elapsed())
            }
        }
    }

    /// The error for a server held not answering.
    pub(crate) fn error(&self) -> Option<PgError> {
        self.silent_for().map(|silent_for| PgError::NotAnswering {
            server: self.server.clone(),
            silent_for,
        })
    }

    /// Holds the server not answering since `since`, and wakes everyone
    /// waiting in `get()` (see [`fail_waiters`](Self::fail_waiters)).
    pub(crate) fn declare_silent(&self, since: Instant) {
        let ms = since.saturating_duration_since(self.epoch).as_millis();
        let ms = u64::try_from(ms).unwrap_or(u64::MAX - 1) + 1;
        self.silent_since.store(ms, Ordering::Relaxed);
        self.fail_waiters();
    }

    /// Sets what fails the callers waiting in the pool's `get()` while the
    /// server is held not answering (the first setting stays).
    pub(crate) fn on_silent(&self, fail: FailWaiting) {
        let _ = self.fail_waiting.set(fail);
    }

    /// While the server is held not answering: fails every caller waiting
    /// in `get()` with the not-answering error. Called when it is declared
    /// so, and again on each watchdog tick while it stays so (a `get()`
    /// that checked just before the declaration, then queued, is failed
    /// by the next tick).
    pub(crate) fn fail_waiters(&self) {
        if let (Some(fail), Some(err)) = (self.fail_waiting.get(), self.error()) {
            fail(err);
        }
    }

    /// [`error`](Self::error), or one for a silence that just ended.
    pub(crate) fn error_now(&self) -> PgError {
        self.error().unwrap_or_else(|| PgError::NotAnswering {
            server: self.server.clone(),
            silent_for: Duration::ZERO,
        })
    }

    /// The server answers again.
    pub(crate) fn declare_answering(&self) {
        self.silent_since.store(0, Ordering::Relaxed);
    }

    /// Samples every connection at `now`: forgets closed ones and returns
    /// the oldest stall at least `after` old that no probe vouched for,
    /// whether any connection received an answer since the last sample,
    /// and whether none owes one.
    pub(crate) fn sample(&self, now: Instant, after: Duration) -> Sampled {
        let mut oldest: Option<Stall> = None;
        let mut progressed = false;
        let mut idle = true;
        self.conns.lock().retain_mut(|w| {
            let Some(wire) = w.wire.upgrade() else {
                return false;
            };
            let (received, owed) = wire.progress();
            idle &= !owed;
            if received != w.received || !owed {
                progressed |= received != w.received;
                w.received = received;
                w.stalled_since = None;
                w.vouched = false;
                return true;
            }
            let since = *w.stalled_since.get_or_insert(now);
            let older = oldest.as_ref().is_none_or(|o| since < o.since);
            if !w.vouched && now.saturating_duration_since(since) >= after && older {
                oldest = Some(Stall {
                    since,
                    target: w.target.clone(),
                });
            }
            true
        });
        Sampled {
            stall: oldest,
            progressed,
            idle,
        }
    }

    /// Whether no connection owes an answer (the watchdog may park).
    pub(crate) fn idle(&self) -> bool {
        self.conns
            .lock()
            .iter()
            .all(|w| w.wire.upgrade().is_none_or(|wire| !wire.progress().1))
    }

    /// A probe found the server answering: the current stalls are slow
    /// statements, not silence.
    pub(crate) fn vouch_for_stalled(&self) {
        for w in self.conns.lock().iter_mut() {
            if w.stalled_since.is_some() {
                w.vouched = true;
            }
        }
    }

    /// Closes every connection stalled at least `after` (the server does not
    /// answer): their calls end at once and the pool discards them. Returns
    /// how many were closed.
    pub(crate) fn close_stalled(&self, now: Instant, after: Duration) -> usize {
        let mut closed = 0;
        self.conns.lock().retain(|w| {
            let stalled = w
                .stalled_since
                .is_some_and(|s| now.saturating_duration_since(s) >= after);
            if !stalled {
                return true;
            }
            if let Some(wire) = w.wire.upgrade() {
                wire.silence();
            }
            w.io.abort();
            closed += 1;
            false
        });
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_reported_with_its_age() {
        let l = Liveness::new("db:5432".into());
        assert!(l.silent_for().is_none());
        assert!(l.error().is_none());
        l.declare_silent(Instant::now());
        std::thread::sleep(Duration::from_millis(20));
        let d = l.silent_for().unwrap();
        assert!(d >= Duration::from_millis(20), "{d:?}");
        let e = l.error().unwrap();
        assert!(e.is_not_answering());
        assert!(
            e.to_string()
                .starts_with("db:5432 is not answering: no reply for 0.0 s"),
            "{e}"
        );
        l.declare_answering();
        assert!(l.silent_for().is_none());
    }
}

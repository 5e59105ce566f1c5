//! `get()`: take a connection ([`Take`]), validate it, hand out the guard.
//!
//! Cancellation safety: the only awaits are [`Take`] and the validation
//! `check`. A dropped `Take` leaves the queue and passes on anything already
//! delivered to it; a dropped validation closes the connection through its
//! guard and frees its slot. Connects run on their own tasks. The wait has no
//! timer of its own: the pool's sweeper delivers `TimedOut` when
//! `acquire_timeout` passes.
//!
//! The clock is read once on the direct path (an idle connection, nobody
//! waiting): that reading is the start, the validation time and the lease
//! time, and the wait is zero. A caller that waits reads it again when served.

use std::backtrace::Backtrace;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Error;
use crate::guard::Pooled;
use crate::manager::Manager;
use crate::observer::Event;
use crate::shared::Shared;
use crate::stats::{bump, CloseReason};
use crate::take::{Caller, Got, Missed, Take};
use crate::waiters::Priority;

/// The body of `Pool::get`.
pub(crate) async fn acquire<M: Manager>(
    shared: &Arc<Shared<M>>,
    priority: Priority,
    location: &'static Location<'static>,
) -> Result<Pooled<M>, Error<M::Error>> {
    let start = Instant::now();
    let cfg = &shared.cfg;
    let caller = Caller {
        location,
        priority,
        start,
        timeout: cfg.acquire_timeout,
        backtrace: (cfg.leak_threshold.is_some() && cfg.leak_backtrace)
            .then(|| Arc::new(Backtrace::force_capture())),
    };
    let mut again = false;
    loop {
        let got = match Take::new(shared, &caller, again).await {
            Ok(got) => got,
            Err(Missed::Failed(e)) => return Err(fail(shared, e)),
            Err(Missed::TimedOut) => return Err(timeout_error(shared, start)),
        };
        let Got { live, now, waited } = got;
        let mut guard = Pooled::new(Arc::clone(shared), live, location, now);
        // The common case decides without an await: no check future is built.
        let checked = match quick_check(shared, &mut guard, now) {
            Some(checked) => checked,
            None => validate(shared, &mut guard, now, caller.deadline()).await,
        };
        match checked {
            Checked::Ok { revalidated } => {
                let now = if revalidated { Instant::now() } else { now };
                guard.activate(now);
                served(shared, waited.then(|| now - start));
                return Ok(guard);
            }
            Checked::Closed(reason) => guard.close(reason),
            Checked::TimedOut => {
                guard.close(CloseReason::FailedCheck);
                return Err(timeout_error(shared, start));
            }
        }
        // The connection failed validation: this caller keeps its turn.
        again = true;
    }
}

/// Counts a served `get()`; `wait` is `None` when it did not wait.
fn served<M: Manager>(shared: &Shared<M>, wait: Option<Duration>) {
    let stats = &shared.stats;
    match wait {
        Some(wait) => {
            stats.gets_waited.bump();
            if shared.cfg.statistics {
                stats.acquire_wait.record(wait);
            }
            shared.emit(Event::Acquired { wait });
        }
        None => {
            // Also the gets_direct counter: kept with statistics off too.
            stats.acquire_wait.record_zero();
            shared.emit(Event::Acquired {
                wait: Duration::ZERO,
            });
        }
    }
}

fn timeout_error<M: Manager>(shared: &Shared<M>, start: Instant) -> Error<M::Error> {
    let waited = start.elapsed();
    bump(&shared.stats.acquire_timeouts);
    if shared.cfg.statistics {
        shared.stats.acquire_wait.record(waited);
    }
    shared.emit(Event::AcquireTimeout { waited });
    let status = shared.lock().status();
    let err = Error::AcquireTimeout {
        waited,
        in_use: status.in_use,
        max_size: status.max_size,
        waiters: status.waiters,
        last_connect_error: shared.breaker.last_error(),
    };
    tracing::warn!(error = %err, "lido: acquire timed out");
    err
}

enum Checked {
    /// Usable; `revalidated` when a `check` ran (the clock moved on).
    Ok {
        revalidated: bool,
    },
    Closed(CloseReason),
    TimedOut,
}

/// Broken, expired, or fresh enough to skip its `check`: decided without an
/// await. `None` when the connection must pass `check` ([`validate`]).
fn quick_check<M: Manager>(
    shared: &Shared<M>,
    guard: &mut Pooled<M>,
    now: Instant,
) -> Option<Checked> {
    let live = guard.live_mut();
    if shared.manager.has_broken(&mut live.conn) {
        return Some(Checked::Closed(CloseReason::Broken));
    }
    if live.expired(now) {
        return Some(Checked::Closed(CloseReason::Lifetime));
    }
    if live.unchecked_for(now) <= shared.cfg.validation_bypass {
        return Some(Checked::Ok { revalidated: false });
    }
    None
}

/// Runs the connection's `check` (idle past the bypass window).
async fn validate<M: Manager>(
    shared: &Shared<M>,
    guard: &mut Pooled<M>,
    now: Instant,
    deadline: Instant,
) -> Checked {
    let live = guard.live_mut();
    let limit = shared
        .cfg
        .check_timeout
        .min(deadline.saturating_duration_since(now));
    match tokio::time::timeout(limit, shared.manager.check(&mut live.conn)).await {
        Ok(Ok(())) => Checked::Ok { revalidated: true },
        Ok(Err(e)) => {
            tracing::info!(error = %e, "lido: idle connection failed validation; replacing it");
            Checked::Closed(CloseReason::FailedCheck)
        }
        Err(_) if Instant::now() >= deadline => Checked::TimedOut,
        Err(_) => {
            tracing::info!(
                ?limit,
                "lido: validation timed out; replacing the connection"
            );
            Checked::Closed(CloseReason::FailedCheck)
        }
    }
}

fn fail<M: Manager>(shared: &Shared<M>, e: Error<M::Error>) -> Error<M::Error> {
    bump(&shared.stats.get_errors);
    tracing::debug!(error = %e, "lido: get() failed");
    e
}

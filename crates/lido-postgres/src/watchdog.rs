//! The watchdog: one task per pool that notices a server which stopped
//! answering without closing its sockets (its processes stopped, a network
//! black hole), where every call would otherwise wait out its timeout.
//!
//! Every [`TICK`] it samples the counters the connections' I/O keeps anyway
//! (see `net/liveness.rs`); nothing runs per query but one load. While no
//! connection owes an answer it parks (up to [`PARK`]) and the first
//! connection to send a request wakes it, so an idle pool costs no timer
//! wake-ups. When a connection has
//! owed an answer with no progress for 30 % of `not_answering_after`, the
//! watchdog knocks on its server (the probe: a fresh socket and an
//! SSLRequest, answered with one byte by a process the postmaster starts;
//! no authentication, no session) with the remaining 70 % as its limit:
//!
//! - answered (the byte, or a refusal from the server or the network): the
//!   server is alive and the statement only slow; that stall is not probed
//!   again;
//! - no answer: the server is held *not answering* since the stall began.
//!   Stalled connections are closed (their calls end at once with
//!   [`PgError::NotAnswering`](crate::PgError::NotAnswering), and the pool
//!   discards them), `get()` fails fast, readiness fails. One probe stays
//!   open meanwhile; the moment the server answers it, service resumes.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::{Instant, MissedTickBehavior};

use crate::conn::pgconn::ConnContext;
use crate::error::PgError;
use crate::net::liveness::{Liveness, Stall};
use crate::net::plan::ConnectPlan;
use crate::net::target::Target;

/// How often the watchdog samples the connections.
const TICK: Duration = Duration::from_millis(50);
/// Longest park while no connection owes an answer (a safety net: the
/// first request rings the bell).
const PARK: Duration = Duration::from_secs(1);
/// How long one probe waits while the server is held not answering.
const RECHECK: Duration = Duration::from_secs(10);

/// What a probe found.
#[derive(Debug)]
enum Probe {
    /// The server answered, or it (or the network) said no.
    Answered,
    /// Nothing came back in time.
    Silent,
}

/// Knocks on `target`'s server, waiting up to `limit`.
async fn probe(plan: Arc<ConnectPlan>, target: Target, limit: Duration) -> Probe {
    match tokio::time::timeout(limit, plan.knock(&target)).await {
        Err(_) => Probe::Silent,
        Ok(Ok(())) => Probe::Answered,
        Ok(Err(e)) if timed_out(&e) => Probe::Silent,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "lido-postgres: the watchdog's probe was refused");
            Probe::Answered
        }
    }
}

fn timed_out(e: &PgError) -> bool {
    matches!(e, PgError::Connect { source, .. } if source.kind() == std::io::ErrorKind::TimedOut)
}

/// Starts the watchdog of the pool `ctx` belongs to (once; not when
/// `not_answering_after` is off). It ends when the pool and its
/// connections are gone.
pub(crate) fn start(ctx: &Arc<ConnContext>, plan: &Arc<ConnectPlan>) {
    let Some(limit) = ctx.not_answering_after else {
        return;
    };
    if !ctx.liveness.claim_start() {
        return;
    }
    let dog = Watchdog {
        ctx: Arc::downgrade(ctx),
        liveness: Arc::clone(&ctx.liveness),
        plan: Arc::clone(plan),
        stall_after: limit.mul_f64(0.3),
        probe_for: limit.mul_f64(0.7),
    };
    tokio::spawn(dog.run());
}

struct Watchdog {
    ctx: Weak<ConnContext>,
    liveness: Arc<Liveness>,
    plan: Arc<ConnectPlan>,
    stall_after: Duration,
    probe_for: Duration,
}

impl Watchdog {
    async fn run(self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // While the server is held not answering: the probe waiting for it,
        // and the server it asks (the one a connection stalled on).
        let mut recheck: Option<BoxFuture<'static, Probe>> = None;
        let mut silent_at: Option<Target> = None;
        // What the last sample found: nothing owed, so the watchdog may park.
        let mut idle = false;
        loop {
            match recheck.as_mut() {
                Some(p) => {
                    tokio::select! {
                        _ = tick.tick() => {}
                        found = p => {
                            recheck = None;
                            if matches!(found, Probe::Answered) {
                                self.answering_again();
                            }
                        }
                    }
                }
                None if idle && self.liveness.silent_for().is_none() => {
                    self.park().await;
                    tick.reset();
                }
                None => {
                    tick.tick().await;
                }
            }
            if self.ctx.strong_count() == 0 {
                return;
            }
            let now = Instant::now().into_std();
            let sampled = self.liveness.sample(now, self.stall_after);
            idle = sampled.idle;
            if self.liveness.silent_for().is_some() {
                self.liveness.close_stalled(now, self.stall_after);
                self.liveness.fail_waiters();
                if let (None, Some(at)) = (&recheck, &silent_at) {
                    let p = probe(Arc::clone(&self.plan), at.clone(), RECHECK);
                    recheck = Some(Box::pin(p));
                }
                continue;
            }
            let Some(stall) = sampled.stall else {
                continue;
            };
            let p = probe(Arc::clone(&self.plan), stall.target.clone(), self.probe_for);
            let found = p.await;
            // Any answer on any connection meanwhile: slow, not silent.
            let after = self
                .liveness
                .sample(Instant::now().into_std(), self.stall_after);
            idle = after.idle;
            match found {
                Probe::Answered => self.liveness.vouch_for_stalled(),
                Probe::Silent if after.progressed => self.liveness.vouch_for_stalled(),
                Probe::Silent => {
                    self.silent(&stall);
                    silent_at = Some(stall.target);
                }
            }
        }
    }

    /// Waits while no connection owes an answer: until one does, or
    /// [`PARK`] passes (or the pool is gone).
    async fn park(&self) {
        let bell = &self.liveness.bell;
        let rung = bell.rung();
        tokio::pin!(rung);
        bell.park();
        // Checked after parking: a request racing the park rings the bell.
        if self.liveness.idle() && self.ctx.strong_count() > 0 {
            let _ = tokio::time::timeout(PARK, rung).await;
        }
        bell.unpark();
    }

    fn silent(&self, stall: &Stall) {
        let since = stall.since;
        self.liveness.declare_silent(since);
        let now = Instant::now().into_std();
        let closed = self.liveness.close_stalled(now, self.stall_after);
        tracing::warn!(
            server = %stall.target,
            silent_ms = now.saturating_duration_since(since).as_millis() as u64,
            closed,
            "lido-postgres: the server is not answering; get() fails fast until it does"
        );
    }

    fn answering_again(&self) {
        let silent = self.liveness.silent_for().unwrap_or_default();
        self.liveness.declare_answering();
        tracing::info!(
            server = self.liveness.server(),
            silent_ms = silent.as_millis() as u64,
            "lido-postgres: the server answers again"
        );
    }
}

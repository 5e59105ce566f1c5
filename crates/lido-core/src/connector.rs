//! Opening a connection: connect timeout, retry with jittered backoff for
//! transient errors, and circuit-breaker bookkeeping. The connect task that
//! runs this and hands the result to the pool's state is in `commit.rs`.

use std::sync::Arc;

use tokio::time::Instant;

use crate::backoff;
use crate::breaker::{Admission, BreakerState};
use crate::error::ConnectFailure;
use crate::live::Live;
use crate::manager::{ErrorClass, Manager};
use crate::observer::Event;
use crate::shared::Shared;
use crate::stats::bump;

/// Whether a retry still serves someone (a waiter, or `min_idle`).
fn still_needed<M: Manager>(shared: &Shared<M>) -> bool {
    shared.lock().connect_still_needed()
}

/// Connects, retrying transient failures within `retry.max_attempts`.
pub(crate) async fn connect_with_retry<M: Manager>(
    shared: &Arc<Shared<M>>,
    mut trial: bool,
) -> Result<Live<M::Connection>, (ConnectFailure<M::Error>, u32)> {
    let cfg = &shared.cfg;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = Instant::now();
        let (class, failure) =
            match tokio::time::timeout(cfg.connect_timeout, shared.manager.connect()).await {
                Ok(Ok(conn)) => {
                    let now = Instant::now();
                    let took = now - started;
                    if cfg.statistics {
                        shared.stats.connect_time.record(took);
                    }
                    bump(&shared.stats.created);
                    if let Some(t) = shared.breaker.on_success(now, trial) {
                        shared.record_transition(t);
                    }
                    shared.emit(Event::Created { took });
                    tracing::debug!(?took, attempt, "lido: connection opened");
                    return Ok(shared.wrap(conn, now));
                }
                Ok(Err(e)) => {
                    let class = shared.manager.classify(&e);
                    (class, ConnectFailure::Backend(Arc::new(e)))
                }
                Err(_) => (
                    ErrorClass::Transient,
                    ConnectFailure::Timeout(cfg.connect_timeout),
                ),
            };
        bump(&shared.stats.connect_failures);
        if let Some(t) = shared
            .breaker
            .on_failure(Instant::now(), failure.clone(), trial)
        {
            shared.record_transition(t);
        }
        let will_retry = class == ErrorClass::Transient
            && attempt < cfg.retry.max_attempts
            && shared.breaker.state() != BreakerState::Open
            && still_needed(shared);
        tracing::warn!(
            error = %failure,
            attempt,
            will_retry,
            permanent = class == ErrorClass::Permanent,
            "lido: connect failed"
        );
        shared.emit(Event::ConnectFailed {
            error: &failure,
            attempt,
            will_retry,
        });
        if !will_retry {
            return Err((failure, attempt));
        }
        tokio::time::sleep(backoff::delay(&cfg.retry, attempt)).await;
        let (admission, t) = shared.breaker.admit(Instant::now());
        if let Some(t) = t {
            shared.record_transition(t);
        }
        match admission {
            Admission::Allowed { trial: t } => trial = t,
            Admission::Rejected => return Err((failure, attempt)),
        }
    }
}

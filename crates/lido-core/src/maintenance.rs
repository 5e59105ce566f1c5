//! The background maintenance task: reaps expired and long-idle connections,
//! pings idle ones (keepalive) and tops the pool up to `min_idle`. It holds
//! only a weak reference and stops when the last `Pool` handle is gone.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use tokio::time::Instant;

use crate::commit::apply;
use crate::live::Live;
use crate::manager::Manager;
use crate::out::{Out, Work};
use crate::shared::Shared;
use crate::state::upkeep::Reaping;
use crate::stats::CloseReason;

pub(crate) fn spawn<M: Manager>(shared: &Arc<Shared<M>>) {
    let weak = Arc::downgrade(shared);
    let period = shared.cfg.maintenance_interval;
    let done = shared.done.subscribe();
    shared.runtime.spawn(async move {
        crate::periodic::every(period, done, || run_once(&weak)).await;
        tracing::debug!("lido: maintenance task stopped");
    });
}

/// One round; `false` once the pool is gone or closed.
fn run_once<M: Manager>(weak: &Weak<Shared<M>>) -> bool {
    let Some(shared) = weak.upgrade() else {
        return false;
    };
    // The last `Pool` handle is gone (guards may still be out): nobody can
    // call `get()` again, so there is nothing left to maintain.
    if shared.lock().is_closed() || shared.handles.load(Ordering::Acquire) == 0 {
        return false;
    }
    let beat = shared.started.elapsed().as_millis();
    shared
        .heartbeat_ms
        .store(u64::try_from(beat).unwrap_or(u64::MAX), Ordering::Relaxed);
    report_leaks(&shared);
    let pings = reap(&shared);
    keepalive(&shared, pings);
    apply(&shared, |st, step| st.spawn_for_min_idle(step));
    true
}

/// Closes expired and idle-timed-out connections; takes out those due a
/// keepalive ping (counted in `pinging` until they come back).
fn reap<M: Manager>(shared: &Arc<Shared<M>>) -> Vec<Live<M::Connection>> {
    let reaping = Reaping {
        now: Instant::now(),
        idle_timeout: shared.cfg.idle_timeout,
        keepalive: shared.cfg.keepalive,
    };
    apply(shared, |st, step| st.reap(reaping, step))
}

/// Pings each due connection on its own task, so a hung database cannot hold
/// up the maintenance round (and with it the liveness heartbeat).
fn keepalive<M: Manager>(shared: &Arc<Shared<M>>, pings: Vec<Live<M::Connection>>) {
    for live in pings {
        let out = Out::new(Arc::clone(shared), live, Work::Ping);
        shared.runtime.spawn(ping(out));
    }
}

async fn ping<M: Manager>(mut out: Out<M>) {
    let shared = Arc::clone(out.shared());
    let limit = shared.cfg.check_timeout;
    let Some(conn) = out.conn() else { return };
    let failed = match tokio::time::timeout(limit, shared.manager.check(conn)).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::info!(error = %e, "lido: keepalive ping failed; closing the connection");
            Some(CloseReason::FailedCheck)
        }
        Err(_) => {
            tracing::info!(
                ?limit,
                "lido: keepalive ping timed out; closing the connection"
            );
            Some(CloseReason::FailedCheck)
        }
    };
    out.finish(failed);
}

fn report_leaks<M: Manager>(shared: &Shared<M>) {
    let Some(threshold) = shared.cfg.leak_threshold else {
        return;
    };
    let leaks = shared
        .lock()
        .overdue_leases(Instant::now(), threshold, true);
    for leak in leaks {
        crate::stats::bump(&shared.stats.leaks);
        match &leak.backtrace {
            Some(bt) => tracing::warn!(
                held = ?leak.held,
                location = %leak.location,
                conn_id = leak.conn_id,
                backtrace = %bt,
                "lido: connection held past leak_threshold; possible leak"
            ),
            None => tracing::warn!(
                held = ?leak.held,
                location = %leak.location,
                conn_id = leak.conn_id,
                "lido: connection held past leak_threshold; possible leak"
            ),
        }
        shared.emit(crate::observer::Event::Leak(&leak));
    }
}

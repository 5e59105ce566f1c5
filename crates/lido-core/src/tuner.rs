//! The adaptive sizing task (only with `Config::adaptive`): every
//! `interval` it reads the pool's hold and wait time counters, feeds their
//! differences to the [`Controller`] and applies a new target through the
//! same transition as `resize`, under `max_size`. Waiters are never failed
//! by a change: they wait for the next connection as before. It holds only
//! a weak reference and stops when the pool is gone or closed.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::adaptive::{Controller, Sample};
use crate::commit::apply;
use crate::manager::Manager;
use crate::shared::Shared;
use crate::stats::bump;

/// The counters a sample is the difference of.
#[derive(Clone, Copy)]
struct Reading {
    at: Instant,
    completed: u64,
    held: Duration,
    waited: Duration,
}

impl Reading {
    fn of<M: Manager>(shared: &Shared<M>) -> Self {
        let stats = &shared.stats;
        Self {
            at: Instant::now(),
            completed: stats.hold_time.count(),
            held: stats.hold_time.sum(),
            waited: stats.acquire_wait.sum(),
        }
    }

    fn since(&self, before: &Reading) -> Sample {
        Sample {
            elapsed: self.at.saturating_duration_since(before.at),
            completed: self.completed.saturating_sub(before.completed),
            held: self.held.saturating_sub(before.held),
            waited: self.waited.saturating_sub(before.waited),
        }
    }
}

pub(crate) fn spawn<M: Manager>(shared: &Arc<Shared<M>>) {
    let Some(cfg) = shared.cfg.adaptive.clone() else {
        return;
    };
    let weak = Arc::downgrade(shared);
    let period = cfg.interval;
    let mut last = Reading::of(shared);
    let mut controller = Controller::new(cfg);
    let done = shared.done.subscribe();
    shared.runtime.spawn(async move {
        crate::periodic::every(period, done, || run_once(&weak, &mut controller, &mut last)).await;
        tracing::debug!("lido: adaptive sizing stopped");
    });
}

/// One round; `false` once the pool is gone or closed.
fn run_once<M: Manager>(
    weak: &Weak<Shared<M>>,
    controller: &mut Controller,
    last: &mut Reading,
) -> bool {
    let Some(shared) = weak.upgrade() else {
        return false;
    };
    let max_size = {
        let st = shared.lock();
        if st.is_closed() || shared.handles.load(Ordering::Acquire) == 0 {
            return false;
        }
        st.status().max_size
    };
    let now = Reading::of(&shared);
    let sample = now.since(last);
    *last = now;
    if let Some(change) = controller.on_sample(sample, max_size) {
        apply(&shared, |st, step| st.set_target(change.to, step));
        bump(&shared.stats.target_changes);
        tracing::info!(
            from = change.from,
            to = change.to,
            reason = %change.reason,
            "lido: adaptive sizing changed the target size"
        );
    }
    true
}

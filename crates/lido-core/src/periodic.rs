//! The loop of the pool's periodic background tasks (maintenance, adaptive
//! sizing): one round every `period`, and none after the pool is done.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

/// Runs `round` every `period` (the first one `period` from now) until it
/// returns `false`, or until `done` turns `true` or its pool is dropped:
/// then at once, so a dropped pool's tasks leave no timer in the runtime.
pub(crate) async fn every(
    period: Duration,
    mut done: watch::Receiver<bool>,
    mut round: impl FnMut() -> bool,
) {
    let mut tick = tokio::time::interval_at(crate::time::add(Instant::now(), period), period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = done.changed() => {
                if changed.is_err() || *done.borrow() {
                    return;
                }
            }
        }
        if !round() {
            return;
        }
    }
}

//! [`CallTimer`]: one connection's timer for its calls' time limits, kept
//! between calls and moved lazily.
//!
//! Calls on a connection run back to back, each with a deadline a little
//! later than the last. Re-arming tokio's timer for each of them costs a
//! conversion and a timer-wheel update per call. Instead the timer stays
//! armed at the deadline it has while that is no later than the call's:
//! if it fires first, the call checks its own deadline and only then moves
//! the timer on. So a steady stream of calls re-arms about once per limit's
//! length, not once per call; a call with an earlier deadline than the
//! timer's re-arms at once.

use std::future::Future;
use std::pin::Pin;

use parking_lot::Mutex;
use tokio::time::{Instant, Sleep};

/// A timer armed at `at`.
struct Armed {
    sleep: Pin<Box<Sleep>>,
    at: Instant,
}

impl Armed {
    fn new(at: Instant) -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(at)),
            at,
        }
    }

    fn arm(&mut self, at: Instant) {
        self.sleep.as_mut().reset(at);
        self.at = at;
    }
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct CallTimer {
    /// The timer between calls (taken out while a call runs; a call that
    /// finds it out, pipelined beside another, makes its own).
    slot: Mutex<Option<Armed>>,
}

impl std::fmt::Debug for CallTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallTimer").finish_non_exhaustive()
    }
}

/// Puts the timer back when the call ends, however it ends.
struct Lent<'a> {
    home: &'a CallTimer,
    armed: Option<Armed>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(armed) = self.armed.take() {
            let mut slot = self.home.slot.lock();
            if slot.is_none() {
                *slot = Some(armed);
            }
        }
    }
}

impl CallTimer {
    /// Runs `fut` until `deadline`: `Err(())` if the deadline came first.
    pub(crate) async fn within<T>(
        &self,
        deadline: Instant,
        mut fut: Pin<&mut impl Future<Output = T>>,
    ) -> Result<T, ()> {
        let taken = self.slot.lock().take();
        let mut lent = Lent {
            home: self,
            armed: None,
        };
        let armed = lent.armed.insert(match taken {
            Some(mut armed) => {
                if armed.at > deadline || armed.sleep.is_elapsed() {
                    armed.arm(deadline);
                }
                armed
            }
            None => Armed::new(deadline),
        });
        loop {
            tokio::select! {
                biased;
                r = fut.as_mut() => return Ok(r),
                () = armed.sleep.as_mut() => {
                    if armed.at >= deadline {
                        return Err(());
                    }
                    // Armed for an earlier call's deadline: move it to ours.
                    armed.arm(deadline);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_later_deadline_keeps_the_timer_and_still_fires_on_time() {
        let timer = CallTimer::default();
        let t0 = Instant::now();
        let quick = std::pin::pin!(async { 1 });
        assert_eq!(
            timer.within(t0 + Duration::from_secs(1), quick).await,
            Ok(1)
        );
        // Armed at t0 + 1 s still; this call's deadline is t0 + 3 s.
        let slow = std::pin::pin!(tokio::time::sleep(Duration::from_secs(10)));
        let r = timer.within(t0 + Duration::from_secs(3), slow).await;
        assert_eq!(r, Err(()));
        assert_eq!(
            Instant::now(),
            t0 + Duration::from_secs(3),
            "not at the stale 1 s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_re_arms_at_once() {
        let timer = CallTimer::default();
        let t0 = Instant::now();
        let quick = std::pin::pin!(async {});
        assert!(timer
            .within(t0 + Duration::from_secs(5), quick)
            .await
            .is_ok());
        let slow = std::pin::pin!(tokio::time::sleep(Duration::from_secs(10)));
        assert_eq!(
            timer.within(t0 + Duration::from_secs(2), slow).await,
            Err(())
        );
        assert_eq!(Instant::now(), t0 + Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fired_timer_is_re_armed_for_the_next_call() {
        let timer = CallTimer::default();
        let t0 = Instant::now();
        let slow = std::pin::pin!(tokio::time::sleep(Duration::from_secs(10)));
        assert_eq!(
            timer.within(t0 + Duration::from_secs(1), slow).await,
            Err(())
        );
        let t1 = Instant::now();
        let medium = std::pin::pin!(tokio::time::sleep(Duration::from_secs(2)));
        assert_eq!(
            timer.within(t1 + Duration::from_secs(5), medium).await,
            Ok(())
        );
        assert_eq!(Instant::now(), t1 + Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_side_by_side_each_get_a_timer() {
        let timer = CallTimer::default();
        let t0 = Instant::now();
        let a = std::pin::pin!(tokio::time::sleep(Duration::from_secs(10)));
        let b = std::pin::pin!(tokio::time::sleep(Duration::from_secs(10)));
        let (ra, rb) = tokio::join!(
            timer.within(t0 + Duration::from_secs(1), a),
            timer.within(t0 + Duration::from_secs(2), b)
        );
        assert_eq!((ra, rb), (Err(()), Err(())));
        assert_eq!(Instant::now(), t0 + Duration::from_secs(2));
    }
}

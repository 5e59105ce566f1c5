//! Short waits without a wake-up, on both sides of a lane.
//!
//! A lane thread (reader or writer) that finished its work looks for the
//! next for up to [`SPIN`] before it sleeps, and a caller whose work such a
//! thread took while its lane had nothing else to do polls for the reply
//! for as long ([`poll_briefly`]) before its task waits to be woken. At a
//! steady rate of one caller's calls, the next call and the reply both
//! usually come within that, and neither side pays for being put to sleep
//! and woken from another CPU: a futex call, a trip through the scheduler
//! and, on an idle core, the time it takes to wake up. Past `SPIN` both
//! sides wait as before, so a slow call costs at most `SPIN` of polling.

use std::time::{Duration, Instant};

use tokio::sync::oneshot::{self, error::TryRecvError};

/// How long a lane thread looks for the next call, and a lone caller polls
/// for its reply, before either waits.
pub(crate) const SPIN: Duration = Duration::from_micros(50);

/// For a lane thread looking for its next call: calls `look` until it
/// gives something or [`SPIN`] has passed (`None`), yielding the thread's
/// core between calls so that it never holds one another thread wants.
pub(crate) fn spin<T>(mut look: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + SPIN;
    loop {
        if let Some(found) = look() {
            return Some(found);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::yield_now();
    }
}

/// Polls `rx` for up to [`SPIN`] (and at least twice), yielding to the
/// runtime's other tasks between polls: `Some` with what came (`None`
/// inside: the sender is gone), or `None` when nothing came in time.
pub(crate) async fn poll_briefly<T>(rx: &mut oneshot::Receiver<T>) -> Option<Option<T>> {
    let until = Instant::now() + SPIN;
    // It yields at least once, however late it first runs.
    let mut yielded = false;
    loop {
        match rx.try_recv() {
            Ok(v) => return Some(Some(v)),
            Err(TryRecvError::Closed) => return Some(None),
            Err(TryRecvError::Empty) if yielded && Instant::now() >= until => return None,
            Err(TryRecvError::Empty) => {}
        }
        tokio::task::yield_now().await;
        yielded = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_reply_a_closed_sender_and_silence() {
        let (tx, mut rx) = oneshot::channel();
        tx.send(7).expect("send");
        assert_eq!(poll_briefly(&mut rx).await, Some(Some(7)));
        let (tx, mut rx) = oneshot::channel::<i32>();
        drop(tx);
        assert_eq!(poll_briefly(&mut rx).await, Some(None));
        let (_tx, mut rx) = oneshot::channel::<i32>();
        let t0 = Instant::now();
        assert_eq!(poll_briefly(&mut rx).await, None);
        assert!(t0.elapsed() >= SPIN, "it polled for the whole spin");
    }

    // Only what holds however the thread is scheduled: a find on a later
    // look depends on the looks before it taking less than `SPIN`.
    #[test]
    fn spin_returns_what_it_finds_or_gives_up_after_the_spin() {
        let mut looks = 0;
        let found = spin(|| {
            looks += 1;
            Some("first")
        });
        assert_eq!((found, looks), (Some("first"), 1), "no yield before a find");
        let mut looks = 0;
        let t0 = Instant::now();
        let found = spin(|| {
            looks += 1;
            None::<()>
        });
        assert_eq!(found, None);
        assert!(t0.elapsed() >= SPIN, "it looked for the whole spin");
        assert!(looks >= 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn other_tasks_run_while_it_polls() {
        let (tx, mut rx) = oneshot::channel();
        // On this one thread, the sender runs only if the poll yields.
        tokio::spawn(async move {
            let _ = tx.send(1);
        });
        assert_eq!(poll_briefly(&mut rx).await, Some(Some(1)));
    }
}

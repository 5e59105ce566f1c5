//! How far the result cache's view of outside writes has read: the feed
//! (`PgPool::watch_outside_writes`) records the server's flushed WAL
//! position it has applied, so a read that must see every commit up to a
//! position (a write token, or the server's position now) can tell whether
//! the cache may answer, ask the feed to read at once, and wait for it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// The feed's position, shared by the feed and the cache.
#[derive(Debug, Default)]
pub(crate) struct FeedPosition {
    /// Every commit whose record ends at or before this position has been
    /// applied to the write log (0: nothing yet).
    applied: AtomicU64,
    /// Whether a feed is reading now.
    active: AtomicBool,
    /// A reader wants the feed to read now.
    wanted: Notify,
    /// The position moved (or the feed stopped).
    moved: Notify,
}

impl FeedPosition {
    /// The position applied so far.
    pub(crate) fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Whether a feed is reading.
    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// The feed started or stopped reading.
    pub(crate) fn set_active(&self, on: bool) {
        self.active.store(on, Ordering::Release);
        self.moved.notify_waiters();
    }

    /// The feed applied every commit up to `lsn` (after the write log was
    /// told of them).
    pub(crate) fn advance(&self, lsn: u64) {
        self.applied.fetch_max(lsn, Ordering::AcqRel);
        self.moved.notify_waiters();
    }

    /// For the feed: wait until `poll` passes or a reader wants a read.
    pub(crate) async fn next_round(&self, poll: Duration) {
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            () = self.wanted.notified() => {}
        }
    }

    /// Whether the feed reaches `lsn` within `wait` (asking it to read at
    /// once); `false` at once when no feed is reading.
    pub(crate) async fn reach(&self, lsn: u64, wait: Duration) -> bool {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let moved = self.moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            if self.applied() >= lsn {
                return true;
            }
            if !self.is_active() {
                return false;
            }
            self.wanted.notify_one();
            if tokio::time::timeout_at(until, moved).await.is_err() {
                return self.applied() >= lsn;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_reader_waits_for_the_feed_and_wakes_it() {
        let p = Arc::new(FeedPosition::default());
        assert!(!p.reach(1, Duration::from_millis(5)).await, "no feed");
        p.set_active(true);
        let feed = Arc::clone(&p);
        let task = tokio::spawn(async move {
            // A long poll: only the reader's wish ends it early.
            feed.next_round(Duration::from_secs(30)).await;
            feed.advance(10);
        });
        assert!(p.reach(10, Duration::from_secs(10)).await);
        task.await.expect("feed");
        assert!(p.reach(5, Duration::ZERO).await, "already there");
        assert!(
            !p.reach(11, Duration::from_millis(20)).await,
            "never gets there"
        );
    }
}

//! [`ClusterSession`]: what one caller wrote through a cluster, so that its
//! later reads see it (read-your-writes by WAL position).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use crate::cluster::lsn::Lsn;

/// A caller's read-your-writes position: the WAL position of its latest
/// write through a [`PgCluster`](crate::cluster::PgCluster). A read with it
/// goes to a replica only once that replica has replayed this far.
///
/// Cheap to clone; clones share the position. Keep one per user or per
/// request chain; to carry it between requests (a cookie, a header), save
/// [`token`](Self::token) and restore it with [`after`](Self::after).
///
/// ```
/// use lido_postgres::cluster::{ClusterSession, Lsn};
/// let session = ClusterSession::after("16/B374D848".parse()?);
/// let header = session.token().map(|lsn| lsn.to_string());
/// assert_eq!(header.as_deref(), Some("16/B374D848"));
/// let restored = ClusterSession::after(header.unwrap().parse()?);
/// assert_eq!(restored.token(), Some(Lsn(0x16_B374_D848)));
/// # Ok::<(), lido_postgres::cluster::LsnParseError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ClusterSession {
    state: Arc<SessionState>,
}

#[derive(Debug, Default)]
struct SessionState {
    /// The highest WAL position this session must see.
    lsn: AtomicU64,
    /// Set when a write ended without its position being read (a write
    /// lease dropped without [`finish`](crate::cluster::ClusterConn::finish)):
    /// from then on reads need a primary position sampled after this time.
    pending_since: Mutex<Option<Instant>>,
}

impl ClusterSession {
    /// A session that has written nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A session whose reads must see everything up to `lsn` (a saved
    /// [`token`](Self::token)).
    pub fn after(lsn: Lsn) -> Self {
        let s = Self::new();
        s.state.lsn.store(lsn.0, Ordering::Relaxed);
        s
    }

    /// The position to save and restore with [`after`](Self::after); `None`
    /// while a write's position is not known yet (then
    /// [`PgCluster::token`](crate::cluster::PgCluster::token) resolves it).
    pub fn token(&self) -> Option<Lsn> {
        match *self.state.pending_since.lock() {
            Some(_) => None,
            None => Some(self.seen()),
        }
    }

    /// The highest WAL position recorded so far (0/0 when none).
    pub fn seen(&self) -> Lsn {
        Lsn(self.state.lsn.load(Ordering::Acquire))
    }

    /// Since when a write's position is unknown, if one is.
    pub(crate) fn pending_since(&self) -> Option<Instant> {
        *self.state.pending_since.lock()
    }

    /// Records that a write through the cluster ended at `lsn`.
    pub(crate) fn record(&self, lsn: Lsn) {
        self.state.lsn.fetch_max(lsn.0, Ordering::AcqRel);
    }

    /// Records a primary position read at `taken_at`: it covers every
    /// write that ended before then, so a pending write older than that is
    /// resolved.
    pub(crate) fn resolve(&self, lsn: Lsn, taken_at: Instant) {
        let mut pending = self.state.pending_since.lock();
        self.record(lsn);
        if pending.is_some_and(|since| since <= taken_at) {
            *pending = None;
        }
    }

    /// A write ended at `now` whose position was not read.
    pub(crate) fn mark_pending(&self, now: Instant) {
        let mut pending = self.state.pending_since.lock();
        if pending.is_none() {
            *pending = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn positions_only_move_forward() {
        let s = ClusterSession::new();
        assert_eq!(s.token(), Some(Lsn::ZERO));
        s.record(Lsn(10));
        s.record(Lsn(5));
        assert_eq!(s.seen(), Lsn(10));
        let clone = s.clone();
        clone.record(Lsn(20));
        assert_eq!(s.token(), Some(Lsn(20)));
    }

    #[test]
    fn a_pending_write_resolves_only_with_a_later_sample() {
        let s = ClusterSession::new();
        let t0 = Instant::now();
        s.mark_pending(t0 + Duration::from_millis(5));
        assert_eq!(s.token(), None);
        s.resolve(Lsn(7), t0);
        assert_eq!(
            s.token(),
            None,
            "a sample older than the write covers nothing"
        );
        s.resolve(Lsn(9), t0 + Duration::from_millis(6));
        assert_eq!(s.token(), Some(Lsn(9)));
    }
}

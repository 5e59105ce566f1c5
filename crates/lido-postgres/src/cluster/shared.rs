//! What every clone of a [`PgCluster`](crate::cluster::PgCluster) shares:
//! the nodes, the current write target, the monitor's history and wake-up,
//! the fallback cap and the counters.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinHandle;

use crate::cluster::history::PrimaryHistory;
use crate::cluster::lsn::Lsn;
use crate::cluster::node::Node;
use crate::cluster::session::ClusterSession;
use crate::cluster::settings::{Fallback, Settings};
use crate::cluster::stats::ClusterStats;
use crate::pool::PgPool;

const NO_PRIMARY: usize = usize::MAX;

/// The state behind a cluster handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) nodes: Vec<Node>,
    pub(crate) settings: Settings,
    primary: AtomicUsize,
    /// The last write target known (not cleared while none is): a change
    /// from one to another is a failover.
    last_target: AtomicUsize,
    /// The primary's flush positions of recent rounds (for lag in time).
    pub(crate) history: Mutex<PrimaryHistory>,
    /// The primary's latest insert position and when it was read (what
    /// resolves a session's write of unknown position).
    pub(crate) last_insert: Mutex<Option<(Instant, Lsn)>>,
    /// Bumped whenever the write target or the read rotation changes.
    pub(crate) topology: watch::Sender<u64>,
    /// Wakes the monitor for an early round (a write met a read-only node).
    pub(crate) wake: Arc<Notify>,
    /// Every write through the cluster: what `read()` must see.
    pub(crate) default_session: ClusterSession,
    /// Permits for fallback reads on the primary.
    pub(crate) fallback_permits: Arc<Semaphore>,
    /// How many permits there are.
    pub(crate) fallback_cap: usize,
    pub(crate) stats: ClusterStats,
    pub(crate) monitor: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(task) = self.monitor.get_mut().take() {
            task.abort();
        }
    }
}

impl Shared {
    pub(crate) fn new(pools: Vec<(String, PgPool)>, settings: Settings) -> Shared {
        let cap = match settings.fallback {
            Fallback::Primary {
                max_in_flight: Some(n),
            } => n,
            // Half the largest node pool: the primary is one of them.
            _ => pools
                .iter()
                .map(|(_, p)| p.core().config().max_size)
                .max()
                .map_or(1, |m| (m / 2).max(1)),
        };
        Shared {
            nodes: pools.into_iter().map(|(a, p)| Node::new(a, p)).collect(),
            settings,
            primary: AtomicUsize::new(NO_PRIMARY),
            last_target: AtomicUsize::new(NO_PRIMARY),
            history: Mutex::new(PrimaryHistory::default()),
            last_insert: Mutex::new(None),
            topology: watch::channel(0).0,
            wake: Arc::new(Notify::new()),
            default_session: ClusterSession::new(),
            fallback_permits: Arc::new(Semaphore::new(cap)),
            fallback_cap: cap,
            stats: ClusterStats::default(),
            monitor: Mutex::new(None),
        }
    }

    /// The write target's index, if one is known.
    pub(crate) fn primary_index(&self) -> Option<usize> {
        match self.primary.load(Ordering::Acquire) {
            NO_PRIMARY => None,
            i => Some(i),
        }
    }

    pub(crate) fn set_primary(&self, index: Option<usize>) -> bool {
        let new = index.unwrap_or(NO_PRIMARY);
        self.primary.swap(new, Ordering::AcqRel) != new
    }

    /// Records `i` as the write target; whether it replaced another one
    /// (not the first found, nor the same one again after a gap).
    pub(crate) fn note_target(&self, i: usize) -> bool {
        let old = self.last_target.swap(i, Ordering::AcqRel);
        old != NO_PRIMARY && old != i
    }

    /// Stops writing to node `i` if it is still the write target.
    pub(crate) fn forget_primary(&self, i: usize) {
        let _ = self
            .primary
            .compare_exchange(i, NO_PRIMARY, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Tells waiters the topology changed.
    pub(crate) fn bump(&self) {
        self.topology.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// The primary's latest sampled insert position and when it was read.
    pub(crate) fn latest_primary_sample(&self) -> Option<(Instant, Lsn)> {
        *self.last_insert.lock()
    }

    /// The position a read with `session` must see, resolving a pending
    /// write from the monitor's samples; `None` when it is still unknown
    /// (only the primary is safe then).
    pub(crate) fn required(&self, session: &ClusterSession) -> Option<Lsn> {
        let Some(since) = session.pending_since() else {
            return Some(session.seen());
        };
        let (at, lsn) = self.latest_primary_sample()?;
        session.resolve(lsn, at);
        (at >= since).then(|| session.seen())
    }
}

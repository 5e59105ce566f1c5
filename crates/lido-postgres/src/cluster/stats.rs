//! [`ClusterStats`]: how reads and writes were routed.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Routing counters of a [`PgCluster`](crate::cluster::PgCluster), since it was built.
        #[derive(Debug, Default)]
        pub struct ClusterStats {
            $($name: AtomicU64,)*
        }

        impl ClusterStats {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> u64 {
                    self.$name.load(Ordering::Relaxed)
                }
            )*

            /// Every counter with its name, for metrics.
            pub fn all(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name()),)*]
            }
        }
    };
}

counters! {
    /// Reads served by a replica.
    replica_reads,
    /// Reads that went to the primary because no replica qualified.
    fallback_reads,
    /// Of those, reads whose session's last write no replica had replayed.
    read_your_writes_fallbacks,
    /// Reads that waited for a replica to replay their session's last write, and got it.
    read_your_writes_waits,
    /// Reads served by a lagging replica under [`Fallback::Stale`](crate::cluster::Fallback::Stale).
    stale_reads,
    /// Reads refused because no replica qualified (the policy said fail).
    refused_reads,
    /// Leases of the primary for writes.
    writes,
    /// Writes retried on a new primary after meeting a read-only node (SQLSTATE 25006).
    read_only_retries,
    /// Reads retried on another node after a recovery conflict on a replica.
    recovery_conflict_retries,
    /// Times the write target changed (failovers, switchovers).
    primary_changes,
    /// Times a replica left the read rotation.
    replicas_removed,
    /// Times a replica came back into the read rotation.
    replicas_restored,
}

impl ClusterStats {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn counter(&self, which: Counter) -> &AtomicU64 {
        match which {
            Counter::ReplicaRead => &self.replica_reads,
            Counter::FallbackRead => &self.fallback_reads,
            Counter::RywFallback => &self.read_your_writes_fallbacks,
            Counter::RywWait => &self.read_your_writes_waits,
            Counter::StaleRead => &self.stale_reads,
            Counter::RefusedRead => &self.refused_reads,
            Counter::Write => &self.writes,
            Counter::ReadOnlyRetry => &self.read_only_retries,
            Counter::ConflictRetry => &self.recovery_conflict_retries,
            Counter::PrimaryChange => &self.primary_changes,
            Counter::ReplicaRemoved => &self.replicas_removed,
            Counter::ReplicaRestored => &self.replicas_restored,
        }
    }

    /// Adds one to `which`.
    pub(crate) fn add(&self, which: Counter) {
        Self::bump(self.counter(which));
    }
}

/// Names of the counters, for [`ClusterStats::add`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    ReplicaRead,
    FallbackRead,
    RywFallback,
    RywWait,
    StaleRead,
    RefusedRead,
    Write,
    ReadOnlyRetry,
    ConflictRetry,
    PrimaryChange,
    ReplicaRemoved,
    ReplicaRestored,
}

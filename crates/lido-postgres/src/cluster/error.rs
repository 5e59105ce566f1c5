//! [`ClusterError`]: why a cluster could not route or run a call.

use std::fmt;
use std::time::Duration;

use crate::error::PgError;
use crate::pool::PoolError;

/// A node that could not take a read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unqualified {
    /// `host:port`.
    pub address: String,
    /// Why not: down, lagging (by how much, against which limit), behind
    /// the session's last write, or not a replica.
    pub reason: String,
}

/// The nodes of a refusal, one `address: reason` each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unqualifieds(pub Vec<Unqualified>);

impl fmt::Display for Unqualifieds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("the cluster has no replica");
        }
        for (i, u) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; " };
            write!(f, "{sep}{}: {}", u.address, u.reason)?;
        }
        Ok(())
    }
}

/// Why a [`PgCluster`](crate::cluster::PgCluster) call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// No node accepts writes, and none did within the primary wait.
    #[error("no node of the cluster accepts writes (waited {} ms): {nodes}; check the failover, or raise primary_wait", waited.as_millis())]
    NoPrimary {
        /// How long the call waited for one.
        waited: Duration,
        /// Each node and its state.
        nodes: Unqualifieds,
    },
    /// No replica qualifies and the [`Fallback`](crate::cluster::Fallback)
    /// policy says fail (or no replica is within [`Fallback::Stale`](crate::cluster::Fallback::Stale)'s bound).
    #[error("no replica can serve this read: {replicas}")]
    NoReplica {
        /// Each replica and why it does not qualify.
        replicas: Unqualifieds,
    },
    /// The primary already serves its cap of fallback reads, and none
    /// finished in time.
    #[error("no replica qualifies and the primary already serves its cap of {cap} fallback reads (waited {} ms): {replicas}", waited.as_millis())]
    FallbackFull {
        /// The cap ([`Fallback::Primary`](crate::cluster::Fallback::Primary)).
        cap: usize,
        /// How long the read waited for a slot.
        waited: Duration,
        /// Why no replica qualified.
        replicas: Unqualifieds,
    },
    /// A node's pool could not lease a connection.
    #[error("{node}: {source}")]
    Pool {
        /// `host:port` of the node.
        node: String,
        /// The pool's error.
        #[source]
        source: PoolError,
    },
    /// A statement failed on a node.
    #[error("{node}: {source}")]
    Query {
        /// `host:port` of the node.
        node: String,
        /// The statement's error.
        #[source]
        source: PgError,
    },
}

impl ClusterError {
    /// The statement's error, when a statement failed.
    pub fn pg_error(&self) -> Option<&PgError> {
        match self {
            ClusterError::Query { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The node the call ran on or tried, when there was one.
    pub fn node(&self) -> Option<&str> {
        match self {
            ClusterError::Pool { node, .. } | ClusterError::Query { node, .. } => Some(node),
            _ => None,
        }
    }
}

/// SQLSTATE 25006: the node is in recovery (or read-only).
pub(crate) fn is_read_only(e: &PgError) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION)
}

/// A query a hot standby cancelled to replay WAL (40001 with the
/// recovery-conflict message, or 40P01 on a buffer-pin deadlock).
pub(crate) fn is_recovery_conflict(e: &PgError) -> bool {
    let Some(db) = e.as_db_error() else {
        return false;
    };
    let code = db.code();
    (code == &tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
        || code == &tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED)
        && db.message().contains("conflict with recovery")
}

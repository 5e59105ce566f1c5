//! [`ClusterConn`]: a connection leased through a cluster. It derefs to
//! [`PgConn`]; dropping it returns the connection to its node's pool.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

use crate::cluster::error::ClusterError;
use crate::cluster::lsn::Lsn;
use crate::cluster::session::ClusterSession;
use crate::cluster::shared::Shared;
use crate::conn::pgconn::PgConn;
use crate::pool::PgPooled;

/// Where a lease was served, and why there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Served {
    /// A replica in rotation that has replayed the session's writes.
    Replica,
    /// The primary, for a write (or [`PgCluster::primary`](crate::cluster::PgCluster::primary)).
    Write,
    /// The primary, for a read no replica qualified for.
    Fallback,
    /// A replica out of rotation, within [`Fallback::Stale`](crate::cluster::Fallback::Stale)'s bound.
    Stale,
}

/// Counts a node's lease while it is held (acquiring included), for balancing.
#[derive(Debug)]
pub(crate) struct InFlight {
    shared: Arc<Shared>,
    pub(crate) node: usize,
}

impl InFlight {
    pub(crate) fn new(shared: &Arc<Shared>, node: usize) -> InFlight {
        shared.nodes[node].in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            shared: Arc::clone(shared),
            node,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn address(&self) -> &str {
        &self.shared.nodes[self.node].address
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.nodes[self.node]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection leased through a [`PgCluster`](crate::cluster::PgCluster):
/// derefs to [`PgConn`] (and so to the tokio-postgres client).
///
/// A write lease should end with [`finish`](Self::finish), which reads the
/// primary's WAL position once so later reads can go to any replica that
/// has replayed it. Dropped without it, the cluster plays safe: reads of
/// the session go to the primary until the monitor's next sample of the
/// primary (one round, 150 ms by default).
#[derive(Debug)]
pub struct ClusterConn {
    // Declared first: dropped (returned to its pool) before the counters move.
    conn: PgPooled,
    flight: InFlight,
    served: Served,
    /// Write leases: the sessions its writes are recorded in.
    sessions: Vec<ClusterSession>,
    finished: bool,
    _permit: Option<OwnedSemaphorePermit>,
}

impl ClusterConn {
    pub(crate) fn new(
        conn: PgPooled,
        flight: InFlight,
        served: Served,
        sessions: Vec<ClusterSession>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> ClusterConn {
        ClusterConn {
            conn,
            flight,
            served,
            sessions,
            finished: false,
            _permit: permit,
        }
    }

    /// `host:port` of the node it is on.
    pub fn address(&self) -> &str {
        self.flight.address()
    }

    /// The node's index in the cluster.
    pub(crate) fn node_index(&self) -> usize {
        self.flight.node
    }

    /// Where it was served, and why there.
    pub fn served(&self) -> Served {
        self.served
    }

    /// Ends a write lease: reads the primary's WAL position (one round
    /// trip) and records it in the session(s), so their next reads may go
    /// to replicas that have replayed it. Returns that position. On a read
    /// lease it returns the node's last known position and records nothing.
    ///
    /// Inside an open transaction nothing is committed yet: the session
    /// then waits for the monitor's next sample instead.
    pub async fn finish(mut self) -> Result<Lsn, ClusterError> {
        let node = &self.flight.shared().nodes[self.flight.node];
        if self.sessions.is_empty() {
            return Ok(node.lsn());
        }
        if self.conn.in_transaction() {
            return Ok(node.lsn());
        }
        let lsn = self.insert_lsn().await?;
        for s in &self.sessions {
            s.record(lsn);
        }
        self.finished = true;
        Ok(lsn)
    }

    async fn insert_lsn(&self) -> Result<Lsn, ClusterError> {
        let fail = |source| ClusterError::Query {
            node: self.address().to_owned(),
            source,
        };
        let row = self
            .conn
            .client()
            .query_one("SELECT pg_current_wal_insert_lsn()", &[])
            .await
            .map_err(|e| fail(e.into()))?;
        let insert: Lsn = row.try_get(0).map_err(|e| fail(e.into()))?;
        Ok(insert.replayed_mark())
    }
}

impl Deref for ClusterConn {
    type Target = PgConn;

    fn deref(&self) -> &PgConn {
        &self.conn
    }
}

impl DerefMut for ClusterConn {
    fn deref_mut(&mut self) -> &mut PgConn {
        &mut self.conn
    }
}

impl Drop for ClusterConn {
    fn drop(&mut self) {
        if !self.finished && !self.sessions.is_empty() {
            let now = Instant::now();
            for s in &self.sessions {
                s.mark_pending(now);
            }
        }
    }
}

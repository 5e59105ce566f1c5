//! [`PgCluster`]: the handle (leases, sessions, reports); its builder is in
//! `builder.rs`, whole calls with retries in `ops.rs`.

use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::error::ClusterError;
use crate::cluster::lease::{ClusterConn, Served};
use crate::cluster::lsn::Lsn;
use crate::cluster::node::{Node, NodeReport};
use crate::cluster::route::Need;
use crate::cluster::session::ClusterSession;
use crate::cluster::shared::Shared;
use crate::cluster::stats::{ClusterStats, Counter};
use crate::pool::PgPool;

/// A primary and its streaming replicas. Cheap to clone; the monitor stops
/// when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct PgCluster {
    pub(crate) shared: Arc<Shared>,
}

impl PgCluster {
    /// Starts the monitor and waits for its first round.
    pub(crate) async fn start(shared: Shared) -> PgCluster {
        let shared = Arc::new(shared);
        let (first, done) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(crate::cluster::monitor::run(
            Arc::downgrade(&shared),
            Arc::clone(&shared.wake),
            first,
        ));
        *shared.monitor.lock() = Some(task);
        let _ = done.await;
        PgCluster { shared }
    }

    /// A new caller's session, for [`read_for`](Self::read_for) and the
    /// other `_for` methods.
    pub fn session(&self) -> ClusterSession {
        ClusterSession::new()
    }

    /// The session's position to save (a cookie, a header), waiting up to
    /// two monitor rounds when its last write's position is not known yet;
    /// `None` if the monitor found no primary in that time.
    pub async fn token(&self, session: &ClusterSession) -> Option<Lsn> {
        let wait =
            self.shared.settings.interval.saturating_mul(2) + self.shared.settings.probe_timeout;
        let until = tokio::time::Instant::now() + wait;
        loop {
            if self.shared.required(session).is_some() {
                return session.token();
            }
            if tokio::time::Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A connection for reads that sees every write made through this
    /// cluster handle before the call (read-your-writes across the process).
    #[track_caller]
    pub fn read(
        &self,
    ) -> impl std::future::Future<Output = Result<ClusterConn, ClusterError>> + Send + '_ {
        let location = Location::caller();
        async move {
            let need = Need::of(&self.shared, Some(&self.shared.default_session));
            self.shared.read(need, None, location).await
        }
    }

    /// A connection for reads that sees `session`'s writes.
    #[track_caller]
    pub fn read_for<'a>(
        &'a self,
        session: &'a ClusterSession,
    ) -> impl std::future::Future<Output = Result<ClusterConn, ClusterError>> + Send + 'a {
        let location = Location::caller();
        async move {
            let need = Need::of(&self.shared, Some(session));
            self.shared.read(need, None, location).await
        }
    }

    /// A connection for reads with no read-your-writes requirement: any
    /// replica in rotation (lag within the thresholds), else the [`Fallback`].
    #[track_caller]
    pub fn read_any(
        &self,
    ) -> impl std::future::Future<Output = Result<ClusterConn, ClusterError>> + Send + '_ {
        let location = Location::caller();
        async move { self.shared.read(Need::Any, None, location).await }
    }

    /// A connection on the primary for writes, recorded for [`read`](Self::read).
    /// End it with [`ClusterConn::finish`].
    #[track_caller]
    pub fn write(
        &self,
    ) -> impl std::future::Future<Output = Result<ClusterConn, ClusterError>> + Send + '_ {
        let location = Location::caller();
        async move { self.write_lease(None, location).await }
    }

    /// [`write`](Self::write), also recorded in `session`.
    #[track_caller]
    pub fn write_for<'a>(
        &'a self,
        session: &'a ClusterSession,
    ) -> impl std::future::Future<Output = Result<ClusterConn, ClusterError>> + Send + 'a {
        let location = Location::caller();
        async move { self.write_lease(Some(session), location).await }
    }

    /// The same as [`write`](Self::write): a connection on the primary.
    #[track_caller]
    pub fn primary(
        &self,
    ) -> impl std::future::Future<Output = Result<ClusterConn, ClusterError>> + Send + '_ {
        let location = Location::caller();
        async move { self.write_lease(None, location).await }
    }

    pub(crate) async fn write_lease(
        &self,
        session: Option<&ClusterSession>,
        location: &'static Location<'static>,
    ) -> Result<ClusterConn, ClusterError> {
        let i = self.shared.primary_node().await?;
        let mut sessions = vec![self.shared.default_session.clone()];
        sessions.extend(session.cloned());
        self.shared.stats.add(Counter::Write);
        self.shared
            .lease(i, Served::Write, sessions, None, location)
            .await
    }

    /// Every node as the monitor last found it.
    pub fn nodes(&self) -> Vec<NodeReport> {
        self.shared.nodes.iter().map(Node::report).collect()
    }

    /// `host:port` of the write target, if one is known.
    pub fn primary_address(&self) -> Option<&str> {
        self.shared
            .primary_index()
            .map(|i| self.shared.nodes[i].address.as_str())
    }

    /// Each node's address and pool (for metrics, health checks, `close`).
    pub fn pools(&self) -> impl Iterator<Item = (&str, &PgPool)> + '_ {
        self.shared
            .nodes
            .iter()
            .map(|n| (n.address.as_str(), &n.pool))
    }

    /// Routing counters.
    pub fn stats(&self) -> &ClusterStats {
        &self.shared.stats
    }

    /// Closes every node's pool, waiting up to `deadline` for leases.
    pub async fn close(&self, deadline: Duration) {
        if let Some(task) = self.shared.monitor.lock().take() {
            task.abort();
        }
        let closes = self.shared.nodes.iter().map(|n| n.pool.close(deadline));
        futures::future::join_all(closes).await;
    }
}

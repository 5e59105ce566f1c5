//! Choosing the node for a read: a replica in rotation that has replayed
//! the session's writes (power of two choices over load), else one that
//! catches up within the read-your-writes wait, else the [`Fallback`].

use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::error::{ClusterError, Unqualified, Unqualifieds};
use crate::cluster::lease::{ClusterConn, InFlight, Served};
use crate::cluster::lsn::Lsn;
use crate::cluster::node::Role;
use crate::cluster::session::ClusterSession;
use crate::cluster::settings::Fallback;
use crate::cluster::shared::Shared;
use crate::cluster::stats::Counter;

/// What a read must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Nothing in particular (no session).
    Any,
    /// Everything up to this position.
    After(Lsn),
    /// A write whose position is not known yet: only the primary is safe.
    Primary,
}

impl Need {
    pub(crate) fn of(shared: &Shared, session: Option<&ClusterSession>) -> Need {
        match session.map(|s| shared.required(s)) {
            None => Need::Any,
            Some(Some(lsn)) => Need::After(lsn),
            Some(None) => Need::Primary,
        }
    }

    fn min(self) -> Lsn {
        match self {
            Need::After(l) => l,
            _ => Lsn::ZERO,
        }
    }
}

/// Of `candidates`, the less loaded of two picked at random.
pub(crate) fn pick(shared: &Shared, candidates: &[usize]) -> Option<usize> {
    match candidates {
        [] => None,
        [one] => Some(*one),
        _ => {
            let a = fastrand::usize(..candidates.len());
            let mut b = fastrand::usize(..candidates.len() - 1);
            if b >= a {
                b += 1;
            }
            let (a, b) = (candidates[a], candidates[b]);
            Some(if shared.nodes[b].load() < shared.nodes[a].load() {
                b
            } else {
                a
            })
        }
    }
}

impl Shared {
    /// Replicas taking reads now, except `exclude`.
    fn rotation(&self, exclude: Option<usize>) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| Some(i) != exclude)
            .filter(|&i| self.nodes[i].role() == Role::Replica && self.nodes[i].in_rotation())
            .collect()
    }

    /// Why each replica (every node but the write target) cannot take a read needing `min`.
    pub(crate) fn unqualified(&self, min: Lsn) -> Unqualifieds {
        let primary = self.primary_index();
        let list = self
            .nodes
            .iter()
            .enumerate()
            .filter(|&(i, _)| Some(i) != primary)
            .map(|(_, n)| {
                let reason = n.detail.lock().reason.clone().unwrap_or_else(|| {
                    format!(
                        "has replayed up to {}, this session's last write is at {min}",
                        n.lsn()
                    )
                });
                Unqualified {
                    address: n.address.clone(),
                    reason,
                }
            })
            .collect();
        Unqualifieds(list)
    }

    /// Leases a read for `need`, never on `exclude`.
    pub(crate) async fn read(
        self: &Arc<Self>,
        need: Need,
        exclude: Option<usize>,
        location: &'static Location<'static>,
    ) -> Result<ClusterConn, ClusterError> {
        if need == Need::Primary {
            return self.fall_back(need, location).await;
        }
        let min = need.min();
        let rotation = self.rotation(exclude);
        let ready: Vec<usize> = rotation
            .iter()
            .copied()
            .filter(|&i| self.nodes[i].lsn() >= min)
            .collect();
        if let Some(i) = pick(self, &ready) {
            self.stats.add(Counter::ReplicaRead);
            return self
                .lease(i, Served::Replica, Vec::new(), None, location)
                .await;
        }
        // Worth waiting on only if it is not known to lag longer than the wait.
        let wait = self.settings.ryw_wait;
        let close: Vec<usize> = rotation
            .into_iter()
            .filter(|&i| self.nodes[i].lag() <= wait)
            .collect();
        if let Some(i) = pick(self, &close).filter(|_| !wait.is_zero()) {
            let conn = self
                .lease(i, Served::Replica, Vec::new(), None, location)
                .await?;
            if self.wait_replayed(&conn, i, min).await {
                self.stats.add(Counter::RywWait);
                self.stats.add(Counter::ReplicaRead);
                return Ok(conn);
            }
        }
        self.fall_back(need, location).await
    }

    /// Polls `conn`'s replay position until it reaches `min` or the
    /// read-your-writes wait is over.
    async fn wait_replayed(&self, conn: &ClusterConn, node: usize, min: Lsn) -> bool {
        let until = Instant::now() + self.settings.ryw_wait;
        loop {
            let Ok(row) = conn
                .client()
                .query_one("SELECT pg_last_wal_replay_lsn()", &[])
                .await
            else {
                return false;
            };
            let lsn = row.try_get::<_, Option<Lsn>>(0).ok().flatten();
            let Some(lsn) = lsn else { return false };
            self.nodes[node].saw_lsn(lsn);
            if lsn >= min {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// No replica qualified: what the policy says.
    async fn fall_back(
        self: &Arc<Self>,
        need: Need,
        location: &'static Location<'static>,
    ) -> Result<ClusterConn, ClusterError> {
        let replicas = || self.unqualified(need.min());
        match self.settings.fallback {
            Fallback::Fail => {
                self.stats.add(Counter::RefusedRead);
                Err(ClusterError::NoReplica {
                    replicas: replicas(),
                })
            }
            Fallback::Stale { max_lag } if need == Need::Any => {
                let within: Vec<usize> = (0..self.nodes.len())
                    .filter(|&i| self.nodes[i].role() == Role::Replica)
                    .filter(|&i| {
                        let d = self.nodes[i].detail.lock();
                        d.up && d.lag.is_some_and(|l| l <= max_lag)
                    })
                    .collect();
                let Some(i) = pick(self, &within) else {
                    self.stats.add(Counter::RefusedRead);
                    return Err(ClusterError::NoReplica {
                        replicas: replicas(),
                    });
                };
                self.stats.add(Counter::StaleRead);
                self.lease(i, Served::Stale, Vec::new(), None, location)
                    .await
            }
            _ => self.primary_read(need, location).await,
        }
    }

    /// A read on the primary, under the fallback cap.
    async fn primary_read(
        self: &Arc<Self>,
        need: Need,
        location: &'static Location<'static>,
    ) -> Result<ClusterConn, ClusterError> {
        let i = self.primary_node().await?;
        let waited = self.nodes[i].pool.core().config().acquire_timeout;
        let permits = Arc::clone(&self.fallback_permits);
        let permit = match tokio::time::timeout(waited, permits.acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => {
                return Err(ClusterError::FallbackFull {
                    cap: self.fallback_cap,
                    waited,
                    replicas: self.unqualified(need.min()),
                })
            }
        };
        self.stats.add(Counter::FallbackRead);
        if need != Need::Any {
            self.stats.add(Counter::RywFallback);
        }
        self.lease(i, Served::Fallback, Vec::new(), Some(permit), location)
            .await
    }

    /// Leases a connection of node `i`.
    pub(crate) async fn lease(
        self: &Arc<Self>,
        i: usize,
        served: Served,
        sessions: Vec<ClusterSession>,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        location: &'static Location<'static>,
    ) -> Result<ClusterConn, ClusterError> {
        let flight = InFlight::new(self, i);
        let node = &self.nodes[i];
        match node
            .pool
            .get_at(location, lido_core::Priority::Normal)
            .await
        {
            Ok(conn) => Ok(ClusterConn::new(conn, flight, served, sessions, permit)),
            Err(source) => Err(ClusterError::Pool {
                node: node.address.clone(),
                source,
            }),
        }
    }
}

//! lido-http integration (feature `http`): a [`PgCluster`] registers with
//! health checks and the exporter like a pool. Its core pool is the current
//! write target's, so readiness follows the primary (`cluster ready =
//! primary ready`); the `cluster:replicas` check warns while replicas are
//! out of rotation, naming each and why; [`ClusterMetrics`] exports roles,
//! lag and routing. Register each node's pool too ([`PgCluster::pools`])
//! for per-node pool and statement metrics.
//!
//! ```no_run
//! # async fn f(cluster: lido_postgres::cluster::PgCluster) -> Result<(), Box<dyn std::error::Error>> {
//! use lido_http::{HealthMonitor, Metrics};
//! let mut builder = HealthMonitor::builder().pool("shop", cluster.clone());
//! for (address, pool) in cluster.pools() {
//!     builder = builder.pool(format!("shop@{address}"), pool.clone());
//! }
//! let monitor = builder.spawn()?;
//! let text = Metrics::for_monitor(&monitor).encode()?;
//! assert!(text.contains("lido_cluster_replica_lag_bytes"));
//! # Ok(()) }
//! ```

use std::sync::Arc;

use lido_http::{
    error_rate, BackendCheck, BoxFuture, CheckContext, MetricSink, MetricsExtension, Observation,
    PoolBackend,
};

use crate::cluster::handle::PgCluster;
use crate::cluster::node::Role;
use crate::manager::PgManager;

/// Metric family names [`ClusterMetrics`] writes (counters get `_total`).
pub mod names {
    /// Gauge, `node`, `role`: 1 while the node answers its probe.
    pub const NODE_UP: &str = "lido_cluster_node_up";
    /// Gauge, `node`: 1 for the write target.
    pub const WRITE_TARGET: &str = "lido_cluster_write_target";
    /// Gauge, `node`: 1 while a replica takes reads.
    pub const IN_ROTATION: &str = "lido_cluster_replica_in_rotation";
    /// Gauge, `node`: bytes of WAL a replica has not replayed.
    pub const LAG_BYTES: &str = "lido_cluster_replica_lag_bytes";
    /// Gauge, `node`: how far behind in time a replica is.
    pub const LAG_SECONDS: &str = "lido_cluster_replica_lag_seconds";
    /// Gauge, `node`: leases held through the cluster.
    pub const IN_FLIGHT: &str = "lido_cluster_node_in_flight";
    /// Counter, `event`: every routing counter of `ClusterStats`.
    pub const ROUTING: &str = "lido_cluster_routing";
}

/// Roles, lag and routing counters of a cluster, read at scrape time.
#[derive(Debug, Clone)]
pub struct ClusterMetrics {
    cluster: PgCluster,
}

impl ClusterMetrics {
    /// The metrics of `cluster`.
    pub fn new(cluster: &PgCluster) -> Self {
        ClusterMetrics {
            cluster: cluster.clone(),
        }
    }
}

impl MetricsExtension for ClusterMetrics {
    fn collect(&self, sink: &mut MetricSink<'_>) {
        let primary = self.cluster.primary_address();
        for n in self.cluster.nodes() {
            let node = [("node", n.address.as_str())];
            let up = [("node", n.address.as_str()), ("role", n.role.as_str())];
            let flag = |b: bool| if b { 1.0 } else { 0.0 };
            sink.gauge(
                names::NODE_UP,
                "Whether the node answered its last probe.",
                &up,
                flag(n.up),
            );
            let target = primary == Some(n.address.as_str());
            sink.gauge(
                names::WRITE_TARGET,
                "Whether the node takes the writes.",
                &node,
                flag(target),
            );
            sink.gauge(
                names::IN_FLIGHT,
                "Leases held through the cluster.",
                &node,
                n.in_flight as f64,
            );
            if n.role != Role::Replica {
                continue;
            }
            sink.gauge(
                names::IN_ROTATION,
                "Whether the replica takes reads.",
                &node,
                flag(n.in_rotation),
            );
            if let Some(b) = n.lag_bytes {
                sink.gauge(
                    names::LAG_BYTES,
                    "Bytes of WAL the replica has not replayed.",
                    &node,
                    b as f64,
                );
            }
            if let Some(l) = n.lag {
                sink.gauge(
                    names::LAG_SECONDS,
                    "How far behind the primary the replica is.",
                    &node,
                    l.as_secs_f64(),
                );
            }
        }
        let help = "Reads and writes routed, by event (replica_reads, fallback_reads, ...).";
        for (event, n) in self.cluster.stats().all() {
            sink.counter(names::ROUTING, help, &[("event", event)], n);
        }
    }
}

/// The `cluster:replicas` check: passes while every replica takes reads,
/// warns (the cluster still serves: reads fall back) while any is out,
/// naming each and why.
#[derive(Debug, Clone)]
pub struct ReplicasCheck {
    cluster: PgCluster,
}

impl BackendCheck for ReplicasCheck {
    fn key(&self) -> &str {
        "cluster:replicas"
    }

    fn check<'a>(&'a self, _ctx: CheckContext<'a>) -> BoxFuture<'a, Observation> {
        let primary = self.cluster.primary_address();
        let replicas: Vec<_> = self
            .cluster
            .nodes()
            .into_iter()
            .filter(|n| Some(n.address.as_str()) != primary)
            .collect();
        let out: Vec<String> = replicas
            .iter()
            .filter(|n| !n.in_rotation)
            .map(|n| {
                format!(
                    "{}: {}",
                    n.address,
                    n.reason.as_deref().unwrap_or("out of rotation")
                )
            })
            .collect();
        let taking = replicas.len() - out.len();
        let summary = format!("{taking} of {} replicas take reads", replicas.len());
        let o = if out.is_empty() {
            Observation::pass().output(summary)
        } else {
            Observation::warn(format!("{summary}; {}", out.join("; ")))
        };
        Box::pin(std::future::ready(o.value(taking as f64, "replicas")))
    }
}

/// `database:queryErrorRate` over every node's statements.
#[derive(Debug, Clone)]
pub struct ClusterErrorRate {
    cluster: PgCluster,
}

impl BackendCheck for ClusterErrorRate {
    fn key(&self) -> &str {
        lido_http::health::keys::QUERY_ERRORS
    }

    fn counters(&self) -> Vec<u64> {
        let (mut run, mut failed) = (0, 0);
        for (_, p) in self.cluster.pools() {
            run += p.pg_stats().queries();
            failed += p.pg_stats().query_errors();
        }
        vec![run, failed]
    }

    fn check<'a>(&'a self, ctx: CheckContext<'a>) -> BoxFuture<'a, Observation> {
        let cfg = ctx.config;
        let (run, failed) = (ctx.counter(0), ctx.counter(1));
        let o = error_rate(
            cfg.query_error_percent,
            cfg.min_samples,
            failed,
            run,
            "statements",
            &ctx,
        );
        Box::pin(std::future::ready(o))
    }
}

impl PoolBackend for PgCluster {
    type Manager = PgManager;

    /// The write target's pool (the first node's while none is known).
    fn core_pool(&self) -> &lido_core::Pool<PgManager> {
        let i = self.shared.primary_index().unwrap_or(0);
        self.shared.nodes[i].pool.core()
    }

    fn backend_checks(&self) -> Vec<Arc<dyn BackendCheck>> {
        vec![
            Arc::new(ReplicasCheck {
                cluster: self.clone(),
            }),
            Arc::new(ClusterErrorRate {
                cluster: self.clone(),
            }),
        ]
    }

    fn backend_metrics(&self) -> Vec<Arc<dyn MetricsExtension>> {
        vec![Arc::new(ClusterMetrics::new(self))]
    }

    /// Not ready while no node accepts writes, or while the write target's
    /// watchdog holds it not answering.
    fn unavailable(&self) -> Option<String> {
        let Some(i) = self.shared.primary_index() else {
            let nodes = self.shared.unqualified(crate::cluster::lsn::Lsn::ZERO);
            return Some(format!("no node of the cluster accepts writes: {nodes}"));
        };
        let e = self.shared.nodes[i].pool.not_answering()?;
        e.backend().map(ToString::to_string)
    }
}

//! [`PgClusterBuilder`]: the nodes of a cluster and how it routes.

use std::sync::Arc;
use std::time::Duration;

use crate::builder::PgPoolBuilder;
use crate::cluster::handle::PgCluster;
use crate::cluster::settings::{Fallback, Settings};
use crate::cluster::shared::Shared;
use crate::config::pgconfig::{PgConfig, TargetSessionAttrs};
use crate::error::{invalid, ConfigError, PgBuildError};
use crate::pool::PgPool;

type PoolFn = Arc<dyn Fn(PgPoolBuilder) -> PgPoolBuilder + Send + Sync>;

/// Configures a [`PgCluster`]; made by [`PgCluster::builder`] (one node per
/// host of a multi-host configuration) or [`PgCluster::from_nodes`].
pub struct PgClusterBuilder {
    nodes: Vec<PgConfig>,
    pool: PoolFn,
    settings: Settings,
}

impl std::fmt::Debug for PgClusterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgClusterBuilder")
            .field("nodes", &self.nodes)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// One configuration per host of `config`: the host (and `hostaddr`), its
/// port, every other setting shared; `target_session_attrs` and
/// `load_balance_hosts` dropped (the cluster picks nodes itself).
pub(crate) fn split_hosts(config: &PgConfig) -> Vec<PgConfig> {
    crate::net::target::list(config)
        .into_iter()
        .map(|t| {
            let mut c = config.clone();
            c.hosts = vec![t.host().to_owned()];
            c.hostaddrs = t.hostaddr().into_iter().collect();
            c.ports = vec![t.port()];
            c.target_session_attrs = TargetSessionAttrs::Any;
            c.load_balance_hosts = false;
            c
        })
        .collect()
}

impl PgClusterBuilder {
    pub(crate) fn new(nodes: Vec<PgConfig>) -> Self {
        PgClusterBuilder {
            nodes,
            pool: Arc::new(|b| b),
            settings: Settings::default(),
        }
    }

    /// Settings for every node's pool (size, timeouts, session settings):
    /// `f` gets each node's [`PgPoolBuilder`] and returns it changed.
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use lido_postgres::{cluster::PgCluster, PgConfig};
    /// let config = PgConfig::parse("postgres://app@db1,db2,db3/shop")?;
    /// let cluster = PgCluster::builder(config)
    ///     .node_pool(|b| b.max_size(8).application_name("shop"))
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn node_pool<F>(mut self, f: F) -> Self
    where
        F: Fn(PgPoolBuilder) -> PgPoolBuilder + Send + Sync + 'static,
    {
        self.pool = Arc::new(f);
        self
    }

    /// How often the monitor probes every node (`pg_is_in_recovery()` and
    /// WAL positions); each wait is jittered by ±20 %. Default 150 ms.
    pub fn monitor_interval(mut self, d: Duration) -> Self {
        self.settings.interval = d;
        self
    }

    /// How long one probe (connect included) may take before the node
    /// counts as down for that round. Default 500 ms.
    pub fn probe_timeout(mut self, d: Duration) -> Self {
        self.settings.probe_timeout = d;
        self
    }

    /// A replica further behind than this many bytes of WAL leaves the
    /// read rotation. Default 16 MiB.
    pub fn max_lag_bytes(mut self, bytes: u64) -> Self {
        self.settings.max_lag_bytes = bytes;
        self
    }

    /// A replica further behind than this in time leaves the read rotation.
    /// Default 1 s.
    pub fn max_lag(mut self, d: Duration) -> Self {
        self.settings.max_lag = d;
        self
    }

    /// How long a replica that left the rotation must stay healthy before
    /// it takes reads again. Default 1 s.
    pub fn hold_down(mut self, d: Duration) -> Self {
        self.settings.hold_down = d;
        self
    }

    /// What a read does when no replica qualifies. Default
    /// [`Fallback::Primary`] with at most half the primary pool's
    /// `max_size` fallback reads at once.
    pub fn fallback(mut self, f: Fallback) -> Self {
        self.settings.fallback = f;
        self
    }

    /// How long a read may wait for a replica to replay its session's last
    /// write before it goes to the primary instead. Default 20 ms.
    pub fn read_your_writes_wait(mut self, d: Duration) -> Self {
        self.settings.ryw_wait = d;
        self
    }

    /// How long a write may wait for a primary to be found (during a
    /// failover) before it fails. Default 2 s.
    pub fn primary_wait(mut self, d: Duration) -> Self {
        self.settings.primary_wait = d;
        self
    }

    fn validate(&self) -> Result<(), PgBuildError> {
        if self.nodes.is_empty() {
            return Err(invalid("host", "a cluster needs at least one node").into());
        }
        for (key, d) in [
            ("monitor_interval", self.settings.interval),
            ("probe_timeout", self.settings.probe_timeout),
        ] {
            if d.is_zero() {
                return Err(invalid(key, "must be greater than zero").into());
            }
        }
        if let Fallback::Primary {
            max_in_flight: Some(0),
        } = self.settings.fallback
        {
            let why = "0 would refuse every fallback read; use Fallback::Fail for that";
            return Err(invalid("fallback", why).into());
        }
        Ok(())
    }

    fn pools(&self) -> Result<Vec<(String, PgPool)>, PgBuildError> {
        self.nodes
            .iter()
            .map(|c| {
                c.validate()?;
                let address = crate::net::target::list(c)
                    .first()
                    .map_or_else(String::new, ToString::to_string);
                let pool = (self.pool)(PgPool::builder(c.clone())).build_lazy()?;
                Ok((address, pool))
            })
            .collect()
    }

    /// Builds the node pools (connections open on demand), probes every
    /// node once so the cluster knows its primary, and starts the monitor.
    /// A node that is down is not an error here: the monitor keeps probing it.
    pub async fn build(self) -> Result<PgCluster, PgBuildError> {
        self.validate()?;
        let shared = Shared::new(self.pools()?, self.settings);
        Ok(PgCluster::start(shared).await)
    }
}

impl PgCluster {
    /// One node per host of `config` (`host=a,b,c`, or
    /// `postgres://u@a,b:5433,c/db`), in any role: the monitor finds which
    /// is the primary. `target_session_attrs` is ignored.
    pub fn builder(config: PgConfig) -> PgClusterBuilder {
        PgClusterBuilder::new(split_hosts(&config))
    }

    /// One node per configuration (each may name several hosts: one node per host).
    pub fn from_nodes(configs: impl IntoIterator<Item = PgConfig>) -> PgClusterBuilder {
        PgClusterBuilder::new(configs.into_iter().flat_map(|c| split_hosts(&c)).collect())
    }

    /// [`builder`](Self::builder) of [`PgConfig::from_env`] (`DATABASE_URL`,
    /// `PGHOST=a,b,c`, …).
    pub fn from_env() -> Result<PgClusterBuilder, ConfigError> {
        Ok(Self::builder(PgConfig::from_env()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_node_per_host_with_libpq_port_pairing() {
        let cfg = PgConfig::parse(
            "host=a,b,c port=5432,5433,5434 user=u dbname=d target_session_attrs=read-write",
        )
        .unwrap();
        let nodes = split_hosts(&cfg);
        let hosts: Vec<(String, u16)> = nodes
            .iter()
            .map(|c| (c.hosts[0].clone(), c.ports[0]))
            .collect();
        assert_eq!(
            hosts,
            [("a".into(), 5432), ("b".into(), 5433), ("c".into(), 5434)]
        );
        assert!(nodes
            .iter()
            .all(|c| c.target_session_attrs == TargetSessionAttrs::Any));
        assert!(nodes.iter().all(|c| c.dbname.as_deref() == Some("d")));
    }

    #[test]
    fn bad_settings_say_what_to_change() {
        let e = PgClusterBuilder::new(Vec::new()).validate().unwrap_err();
        assert!(e.to_string().contains("at least one node"), "{e}");
        let cfg = PgConfig::parse("host=a user=u").unwrap();
        let b = PgCluster::builder(cfg.clone()).monitor_interval(Duration::ZERO);
        assert!(b
            .validate()
            .unwrap_err()
            .to_string()
            .contains("monitor_interval"));
        let b = PgCluster::builder(cfg).fallback(Fallback::Primary {
            max_in_flight: Some(0),
        });
        assert!(b
            .validate()
            .unwrap_err()
            .to_string()
            .contains("Fallback::Fail"));
    }
}

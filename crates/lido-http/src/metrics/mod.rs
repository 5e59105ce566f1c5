//! The Prometheus/OpenMetrics exporter: a prometheus-client [`Collector`]
//! that reads every pool's `status()` and `stats()` at scrape time, so the
//! pool's hot path pays nothing for it.

mod health;
pub(crate) mod pool;
pub(crate) mod sink;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

pub use self::health::{health_names, HealthMetrics};
pub use self::pool::names;
use self::sink::Families;
pub use self::sink::{HistogramSample, MetricSink, MetricsExtension};
use crate::health::HealthMonitor;
use crate::source::{duplicate_name, NamedPool, PoolSource};

/// The content type of `/metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Default histogram bounds: 0.5 ms to 60 s.
pub const DEFAULT_BUCKETS: [Duration; 16] = [
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_micros(2500),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_millis(2500),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(60),
];

/// Collects every registered pool's families (and the extensions') per scrape.
struct LidoCollector {
    pools: Vec<NamedPool>,
    extensions: Vec<Arc<dyn MetricsExtension>>,
    bounds: Arc<[Duration]>,
}

impl LidoCollector {
    fn gather(&self) -> Families {
        let mut fams = Families::default();
        for p in &self.pools {
            let base = [("pool", p.name())];
            let mut sink = MetricSink::new(&mut fams, &base, &self.bounds);
            pool::write(p.source(), &mut sink);
            for ext in p.extensions() {
                ext.collect(&mut sink);
            }
        }
        for ext in &self.extensions {
            ext.collect(&mut MetricSink::new(&mut fams, &[], &self.bounds));
        }
        fams
    }
}

impl fmt::Debug for LidoCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LidoCollector")
            .field("pools", &self.pools)
            .field("extensions", &self.extensions.len())
            .finish()
    }
}

impl Collector for LidoCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        self.gather().encode(&mut encoder)
    }
}

/// A prometheus-client [`Registry`] with lido's collector registered, and
/// its OpenMetrics text encoding.
///
/// ```
/// use lido_core::{Manager, Pool};
/// use lido_http::Metrics;
/// # struct Nop;
/// # impl Manager for Nop {
/// #     type Connection = ();
/// #     type Error = std::io::Error;
/// #     async fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
/// #     async fn check(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Pool::builder(Nop).max_size(8).build().await?;
/// let metrics = Metrics::builder().pool("primary", pool).build()?;
/// let text = metrics.encode()?;
/// assert!(text.contains(r#"lido_pool_connections_max{pool="primary"} 8"#));
/// assert!(text.ends_with("# EOF\n"));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// Starts configuring an exporter.
    pub fn builder() -> MetricsBuilder {
        MetricsBuilder::default()
    }

    /// The monitor's pools plus its health gauges (a monitor's pool names
    /// are unique, so this cannot fail).
    pub fn for_monitor(monitor: &HealthMonitor) -> Self {
        Self::builder().monitor(monitor).register()
    }

    /// The registry, to encode it yourself.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The registry, to add your own metrics.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The OpenMetrics text exposition, `# EOF` included.
    pub fn encode(&self) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Why [`MetricsBuilder::build`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// Two pools were registered under one name: their series would be
    /// written twice with the same labels, which Prometheus rejects.
    #[error("two pools are registered under the name {name:?}: give each pool its own name")]
    DuplicatePool {
        /// The shared name.
        name: String,
    },
}

/// Configures [`Metrics`].
#[derive(Default)]
pub struct MetricsBuilder {
    pools: Vec<NamedPool>,
    extensions: Vec<Arc<dyn MetricsExtension>>,
    bounds: Option<Vec<Duration>>,
    registry: Option<Registry>,
}

impl MetricsBuilder {
    /// Exports `pool` with the label `pool="name"`.
    pub fn pool(self, name: impl Into<Arc<str>>, pool: impl PoolSource) -> Self {
        self.named(NamedPool::new(name, pool))
    }

    /// Exports an already named pool with its per-pool extensions.
    pub fn named(mut self, pool: NamedPool) -> Self {
        self.pools.push(pool);
        self
    }

    /// Exports the monitor's pools and its health gauges.
    pub fn monitor(mut self, monitor: &HealthMonitor) -> Self {
        self.pools.extend(monitor.pools().iter().cloned());
        self.extension(HealthMetrics::new(monitor.clone()))
    }

    /// Adds families not tied to one pool.
    pub fn extension(mut self, extension: impl MetricsExtension) -> Self {
        self.extensions.push(Arc::new(extension));
        self
    }

    /// Histogram bucket bounds (default [`DEFAULT_BUCKETS`]).
    pub fn buckets(mut self, bounds: impl IntoIterator<Item = Duration>) -> Self {
        let mut b: Vec<Duration> = bounds.into_iter().collect();
        b.sort();
        b.dedup();
        self.bounds = Some(b);
        self
    }

    /// Registers into an existing registry (with its prefix and labels).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Registers the collector; fails when two pools share a name.
    pub fn build(self) -> Result<Metrics, MetricsError> {
        if let Some(name) = duplicate_name(&self.pools) {
            return Err(MetricsError::DuplicatePool {
                name: name.to_owned(),
            });
        }
        Ok(self.register())
    }

    fn register(self) -> Metrics {
        let mut registry = self.registry.unwrap_or_default();
        let bounds = self.bounds.unwrap_or_else(|| DEFAULT_BUCKETS.to_vec());
        registry.register_collector(Box::new(LidoCollector {
            pools: self.pools,
            extensions: self.extensions,
            bounds: bounds.into(),
        }));
        Metrics { registry }
    }
}

impl fmt::Debug for MetricsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsBuilder")
            .field("pools", &self.pools)
            .field("extensions", &self.extensions.len())
            .field("bounds", &self.bounds)
            .finish()
    }
}

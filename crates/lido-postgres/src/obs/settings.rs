//! The builder's observability settings, turned into a pool's [`Obs`].

use std::sync::Arc;
use std::time::Duration;

use crate::config::defaults::{default_host, default_user};
use crate::config::pgconfig::PgConfig;
use crate::obs::call::{DbInfo, Obs};
use crate::obs::classes::ClassBook;
use crate::obs::result_cache::{ResultCache, ResultCacheConfig};
use crate::obs::statements::StatementStats;

/// What `PgPoolBuilder` collects for observability.
#[derive(Debug, Clone)]
pub(crate) struct ObsSettings {
    pub(crate) statistics: bool,
    pub(crate) capacity: usize,
    pub(crate) slow_threshold: Option<Duration>,
    pub(crate) log_parameters: bool,
    pub(crate) query_text: bool,
    pub(crate) classes: lido_core::Classes,
    pub(crate) cache: Option<ResultCacheConfig>,
}

impl Default for ObsSettings {
    fn default() -> Self {
        Self {
            statistics: true,
            capacity: 1000,
            slow_threshold: Some(Duration::from_secs(1)),
            log_parameters: false,
            query_text: false,
            classes: lido_core::Classes::default(),
            cache: None,
        }
    }
}

impl ObsSettings {
    pub(crate) fn build(&self, config: &PgConfig) -> Obs {
        Obs {
            statistics: self.statistics,
            slow_threshold: self.slow_threshold,
            log_parameters: self.log_parameters,
            query_text: self.query_text,
            statements: Arc::new(
                StatementStats::new(self.statistics, self.capacity).with_class_names(
                    self.classes
                        .all()
                        .iter()
                        .map(|c| Arc::from(c.name()))
                        .collect(),
                ),
            ),
            db: db_info(config),
            classes: Arc::new(ClassBook::new(self.classes.clone())),
            cache: self.cache.map(|c| Arc::new(ResultCache::new(c))),
            open_tx: Arc::default(),
            slow_table: None,
        }
    }
}

/// The database name and first host, as libpq would pick them (and the
/// pool's connections do).
fn db_info(config: &PgConfig) -> DbInfo {
    let namespace = config
        .dbname
        .clone()
        .or_else(|| config.user.clone())
        .unwrap_or_else(default_user);
    let address = match (config.hosts.first(), config.hostaddrs.first()) {
        (Some(h), _) => h.clone(),
        (None, Some(a)) => a.to_string(),
        // libpq's default, as the connections use (`manager::targets`).
        (None, None) => default_host(),
    };
    DbInfo {
        namespace: namespace.into(),
        address: address.into(),
        port: config.ports.first().copied().unwrap_or(5432),
    }
}

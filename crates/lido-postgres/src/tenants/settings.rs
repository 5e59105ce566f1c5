//! What a tenant set is made of: the key's bounds, a tenant's limits, and
//! the settings a built set keeps.

use std::fmt::{Debug, Display};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use crate::builder::PgPoolBuilder;
use crate::config::pgconfig::PgConfig;

/// What a tenant key must be: hashable, cloneable, shareable, and shown
/// in errors and metrics by `Display`.
pub trait TenantKey: Hash + Eq + Clone + Send + Sync + Debug + Display + 'static {}

impl<T: Hash + Eq + Clone + Send + Sync + Debug + Display + 'static> TenantKey for T {}

/// One tenant's share of the global cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantLimits {
    /// Connections guaranteed while the cap is reached: a tenant under its
    /// minimum is served first and may take a connection back from a
    /// tenant above its own minimum. Keep the sum of minimums at or below
    /// the cap for the guarantee to hold for every tenant.
    pub min: usize,
    /// Most connections the tenant's pool opens (its `max_size`).
    pub max: usize,
    /// Share when the cap is reached: a tenant of weight 2 is served twice
    /// per round and may hold twice as many connections as one of weight 1
    /// before giving one back.
    pub weight: u32,
}

impl Default for TenantLimits {
    fn default() -> Self {
        TenantLimits {
            min: 0,
            max: 10,
            weight: 1,
        }
    }
}

impl TenantLimits {
    /// At least one connection, a minimum no larger than the maximum, a
    /// weight of at least 1.
    pub(crate) fn sane(self) -> Self {
        let max = self.max.max(1);
        TenantLimits {
            min: self.min.min(max),
            max,
            weight: self.weight.max(1),
        }
    }
}

pub(crate) type Configure<K> = Arc<dyn Fn(&K, PgConfig) -> PgPoolBuilder + Send + Sync>;
pub(crate) type LimitsFor<K> = Arc<dyn Fn(&K) -> TenantLimits + Send + Sync>;

/// What a built tenant set keeps.
pub(crate) struct Settings<K> {
    pub(crate) template: PgConfig,
    pub(crate) cap: usize,
    pub(crate) configure: Configure<K>,
    pub(crate) limits: LimitsFor<K>,
    pub(crate) idle_after: Duration,
    pub(crate) min_hold: Duration,
    pub(crate) top_n: usize,
}

//! [`PoolBuilder`]: fluent configuration, validated into a [`Pool`].

use std::sync::Arc;
use std::time::Duration;

use crate::adaptive::AdaptiveConfig;
use crate::config::{BreakerConfig, Config, RetryConfig, ReuseOrder};
use crate::error::BuildError;
use crate::manager::Manager;
use crate::observer::Observer;
use crate::pool::Pool;
use crate::shared::Shared;

/// Builds a [`Pool`]. Every setting defaults to [`Config::default`].
pub struct PoolBuilder<M: Manager> {
    manager: M,
    config: Config,
    observer: Option<Arc<dyn Observer>>,
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$name = value;
            self
        }
    };
}

impl<M: Manager> Pool<M> {
    /// Starts configuring a pool around `manager`.
    pub fn builder(manager: M) -> PoolBuilder<M> {
        PoolBuilder {
            manager,
            config: Config::default(),
            observer: None,
        }
    }
}

impl<M: Manager> PoolBuilder<M> {
    /// Replaces every setting at once.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Adds an observer for pool events (metrics, tracing).
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    setter!(/// Most connections open at once.
        max_size: usize);
    setter!(/// Idle connections kept ready.
        min_idle: usize);
    setter!(/// Connections above this are closed on return when nobody waits.
        core_size: Option<usize>);
    setter!(/// Longest a `get()` waits.
        acquire_timeout: Duration);
    setter!(/// Longest one connect attempt may take.
        connect_timeout: Duration);
    setter!(/// Connections older than this are closed (`None`: never).
        max_lifetime: Option<Duration>);
    setter!(/// Random fraction of `max_lifetime` subtracted per connection.
        lifetime_jitter: f64);
    setter!(/// Idle connections above `min_idle` are closed after this (`None`: never).
        idle_timeout: Option<Duration>);
    setter!(/// Connections idle longer than this are validated on checkout.
        validation_bypass: Duration);
    setter!(/// Idle connections are pinged after this long unused (`None`: never).
        keepalive: Option<Duration>);
    setter!(/// Longest a `check` or `reset` may take.
        check_timeout: Duration);
    setter!(/// How often the maintenance task runs.
        maintenance_interval: Duration);
    setter!(/// Report leases held longer than this as possible leaks (`None`: off).
        leak_threshold: Option<Duration>);
    setter!(/// Capture a backtrace at checkout for leak reports.
        leak_backtrace: bool);
    setter!(/// Close instead of reuse connections held longer than this.
        max_lease: Option<Duration>);
    setter!(/// Which idle connection is handed out first.
        reuse_order: ReuseOrder);
    setter!(/// Record the wait, hold and connect time histograms (default on).
        statistics: bool);
    setter!(/// Connect retry policy.
        retry: RetryConfig);
    setter!(/// Circuit breaker policy.
        breaker: BreakerConfig);
    setter!(/// Adaptive sizing between a min and a max (`None`: off, the default).
        adaptive: Option<AdaptiveConfig>);

    fn into_pool(self) -> Result<Pool<M>, BuildError> {
        self.config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let shared = Arc::new(Shared::new(
            self.manager,
            self.config,
            self.observer,
            runtime,
        ));
        crate::maintenance::spawn(&shared);
        crate::sweeper::spawn(&shared);
        crate::tuner::spawn(&shared);
        Ok(Pool::from_shared(shared))
    }

    /// Builds the pool and waits until `min_idle` connections are open.
    pub async fn build(self) -> Result<Pool<M>, BuildError> {
        let pool = self.into_pool()?;
        if let Err(e) = pool.warm_up().await {
            return Err(BuildError::WarmUp {
                message: e.to_string(),
                source: Arc::new(e),
            });
        }
        Ok(pool)
    }

    /// Builds the pool without waiting: the maintenance task warms it up in
    /// the background and `get()` connects on demand.
    pub fn build_lazy(self) -> Result<Pool<M>, BuildError> {
        let pool = self.into_pool()?;
        let warm = pool.clone();
        pool.shared.runtime.spawn(async move {
            if let Err(e) = warm.warm_up().await {
                tracing::warn!(error = %e, "lido: background warm-up failed; will retry in maintenance");
            }
        });
        Ok(pool)
    }
}

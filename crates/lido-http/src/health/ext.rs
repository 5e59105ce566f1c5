//! [`HealthExt`]: `pool.health().await` on any pool.

use super::checker::health;
use super::config::HealthConfig;
use super::report::HealthReport;
use crate::future::BoxFuture;
use crate::source::PoolSource;

/// `pool.health().await` for every [`PoolSource`]: a [`lido_core::Pool`],
/// and with their `http` features lido-postgres's `PgPool` and lido-sqlite's
/// `SqlitePool` (their backend checks included). One round of checks, error
/// rates counted since the pool started; see [`health()`](crate::health()).
///
/// ```
/// use lido_core::{Manager, Pool};
/// use lido_http::{HealthConfig, HealthExt, Status, Threshold};
/// # struct Nop;
/// # impl Manager for Nop {
/// #     type Connection = ();
/// #     type Error = std::io::Error;
/// #     async fn connect(&self) -> Result<(), std::io::Error> { Ok(()) }
/// #     async fn check(&self, _: &mut ()) -> Result<(), std::io::Error> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Pool::builder(Nop).max_size(4).build().await?;
/// let report = pool.health().await;
/// assert_eq!(report.status, Status::Pass, "{}", report.summary());
///
/// let strict = HealthConfig { latency_ms: Threshold::new(Some(0.0), None), ..Default::default() };
/// assert_eq!(pool.health_with(&strict).await.status, Status::Warn);
/// # Ok(()) }
/// ```
pub trait HealthExt: PoolSource + Sized {
    /// One round of checks with the default [`HealthConfig`].
    fn health(&self) -> BoxFuture<'_, HealthReport> {
        Box::pin(async move { health(self, &HealthConfig::default()).await })
    }

    /// One round of checks with `cfg`.
    fn health_with<'a>(&'a self, cfg: &'a HealthConfig) -> BoxFuture<'a, HealthReport> {
        Box::pin(health(self, cfg))
    }
}

impl<P: PoolSource> HealthExt for P {}

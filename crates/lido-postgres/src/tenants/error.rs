//! [`TenantsError`]: why a tenant's `get()` failed.

use std::time::Duration;

use crate::error::{PgBuildError, PgError};
use crate::pool::PoolError;

/// Where a connect that found no share under the global cap says it failed
/// ([`PgError::Connect`]'s `address`).
pub const CAP_ADDRESS: &str = "the tenant set's global connection cap";

/// Why [`PgTenants::get`](crate::tenants::PgTenants::get) or building a
/// tenant set failed. Never carries a password; tenants are named by their
/// key's `Display`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TenantsError {
    /// The global cap was reached and no share came free in time.
    #[error("tenant {tenant}: the global cap of {cap} server connections is reached and no connection came free within {waited:?}")]
    CapReached {
        /// The tenant's key, as `Display` shows it.
        tenant: String,
        /// The global cap.
        cap: usize,
        /// How long the call waited.
        waited: Duration,
    },
    /// The tenant's pool could not be built from the template and its overrides.
    #[error("tenant {tenant}: could not build its pool: {source}")]
    Build {
        /// The tenant's key, as `Display` shows it.
        tenant: String,
        /// Why.
        #[source]
        source: PgBuildError,
    },
    /// The tenant's pool failed the call (connect error, breaker, closed).
    #[error("tenant {tenant}: {source}")]
    Pool {
        /// The tenant's key, as `Display` shows it.
        tenant: String,
        /// The pool's error.
        #[source]
        source: PoolError,
    },
    /// Unusable tenant-set settings.
    #[error("invalid tenant set settings: {0}")]
    Settings(String),
    /// `build()` ran outside a Tokio runtime.
    #[error("PgTenants::build needs a Tokio runtime (it starts the idle sweeper)")]
    NoRuntime,
}

impl TenantsError {
    /// Whether this is [`TenantsError::CapReached`].
    pub fn is_cap_reached(&self) -> bool {
        matches!(self, Self::CapReached { .. })
    }
}

/// The connect error of a connect that got no permit within `waited`.
pub(crate) fn cap_error(cap: usize, waited: Duration) -> PgError {
    PgError::Connect {
        address: CAP_ADDRESS.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("all {cap} server connections are held; none came free within {waited:?}"),
        ),
    }
}

/// Whether `e` is a connect failure from the gate.
pub(crate) fn is_cap_error(e: &PgError) -> bool {
    matches!(e, PgError::Connect { address, .. } if address == CAP_ADDRESS)
}

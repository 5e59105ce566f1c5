//! Per-tenant pools under one global cap: [`PgTenants`].
//!
//! Multi-tenant applications connect per tenant: a database, a role, or a
//! `search_path` per tenant. `PgTenants<K>` keeps one lido pool per tenant
//! key, built on first use from a template [`PgConfig`] and the tenant's
//! overrides ([`PgTenantsBuilder::configure`]), and holds every tenant to
//! one **global cap** on server connections:
//!
//! - Every tenant pool's connect takes a permit from the cap first and the
//!   connection keeps it until it is closed, so the set never holds more
//!   than the cap and the server never answers "too many clients" because
//!   of it.
//! - When the cap is reached, waiting connects are served by weighted
//!   deficit round robin over the waiting tenants; a tenant under its
//!   guaranteed [`TenantLimits::min`] goes first. Each tenant's pool is
//!   capped at [`TenantLimits::max`].
//! - Work-conserving: a tenant that waits takes a connection back from the
//!   tenant most over its share, an idle one at once (closed, and the
//!   permit handed over: the waiter waits about one connect) or else one
//!   that tenant returns once it has served
//!   [`min_hold`](PgTenantsBuilder::min_hold) (100 ms by default).
//! - A tenant unused for [`PgTenantsBuilder::idle_after`] (60 s by
//!   default) has its pool closed and its entry dropped; a tenant whose
//!   pool has no connection left keeps only a small entry (a few hundred
//!   bytes: the `tenants` benchmark measures it), so 10,000 tenants fit.
//! - [`PgTenants::snapshot`]: the set's totals (connections held against
//!   the cap, waiting, evictions, tenants alive) and the top N tenants by
//!   use with their health (last error), the rest summed as `other`; with
//!   feature `http`, `TenantsMetrics` exports them.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use lido_postgres::tenants::{PgTenants, TenantLimits};
//! use lido_postgres::{PgConfig, PgPool};
//!
//! // A schema per tenant, at most 40 server connections in all.
//! let tenants = PgTenants::<String>::builder(PgConfig::parse("postgres://app@db/saas")?)
//!     .global_cap(40)
//!     .limits(TenantLimits { min: 1, max: 8, weight: 1 })
//!     .configure(|tenant, config| PgPool::builder(config).search_path(format!("{tenant}, public")))
//!     .build()?;
//! let conn = tenants.get(&"acme".to_owned()).await?;
//! let n: i64 = conn.query_one("SELECT count(*) FROM orders", &[]).await?.get(0);
//! # Ok(()) }
//! ```

mod builder;
mod cap;
mod drr;
mod entry;
mod error;
mod evict;
#[cfg(feature = "http")]
mod http;
mod set;
mod settings;
mod slot;
mod stats;

pub use builder::{PgTenantsBuilder, DEFAULT_IDLE_AFTER, DEFAULT_MIN_HOLD, DEFAULT_TOP_N};
pub use error::{TenantsError, CAP_ADDRESS};
#[cfg(feature = "http")]
pub use http::{names, TenantsMetrics};
pub use set::PgTenants;
pub use settings::{TenantKey, TenantLimits};
pub use stats::{TenantStats, TenantsSnapshot};

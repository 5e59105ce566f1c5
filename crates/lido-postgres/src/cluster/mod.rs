//! [`PgCluster`]: one primary and its streaming replicas, each node a lido
//! pool, with reads routed by lag and by what the caller wrote.
//!
//! - **Roles are discovered**: a monitor probes every node every 150 ms
//!   (jittered, 500 ms timeout, on its own connection per node) with
//!   `pg_is_in_recovery()` and the WAL positions. A promoted replica becomes
//!   the write target on the next round; a node found in recovery is never
//!   the write target; a write that still meets SQLSTATE 25006 makes the
//!   cluster re-check and (outside a caller's transaction) retry once on
//!   the real primary.
//! - **Lag in bytes and time**: bytes are the primary's WAL position minus
//!   the replica's replay position; time is how long ago the primary first
//!   held WAL the replica has not replayed (the monitor's own samples, so
//!   an idle primary never looks like lag). A replica past
//!   [`max_lag_bytes`](PgClusterBuilder::max_lag_bytes) or
//!   [`max_lag`](PgClusterBuilder::max_lag), or failing its probe, leaves
//!   the read rotation at once and returns after
//!   [`hold_down`](PgClusterBuilder::hold_down) of health.
//! - **Read-your-writes by WAL position, on by default**: [`read`](PgCluster::read)
//!   sees every write made through this cluster handle before it;
//!   [`read_for`](PgCluster::read_for) narrows that to one caller's
//!   [`ClusterSession`] (a token that travels between requests);
//!   [`read_any`](PgCluster::read_any) drops it. A read goes to a replica
//!   that has replayed the needed position (the monitor's view, or one
//!   quick check on the replica, polled up to
//!   [`read_your_writes_wait`](PgClusterBuilder::read_your_writes_wait)),
//!   otherwise to the [`Fallback`].
//! - **Balancing**: power of two choices over in-flight leases times the
//!   probe round trip.
//! - [`query`](PgCluster::query) retries a read cancelled by a recovery
//!   conflict on another node; [`execute`](PgCluster::execute) and
//!   [`transaction_with_retry`](PgCluster::transaction_with_retry) retry a
//!   write that met a node in recovery on the new primary.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use lido_postgres::{cluster::PgCluster, PgConfig};
//!
//! let config = PgConfig::parse("postgres://app@db1,db2,db3/shop")?;
//! let cluster = PgCluster::builder(config).build().await?;
//! let user = cluster.session();
//! cluster.execute_for(&user, "UPDATE carts SET n = n + 1 WHERE id = $1", &[&7i64]).await?;
//! // A replica serves this only once it has replayed the update.
//! let rows = cluster.query_for(&user, "SELECT n FROM carts WHERE id = $1", &[&7i64]).await?;
//! let cookie = cluster.token(&user).await.map(|lsn| lsn.to_string());
//! # let _ = (rows, cookie); Ok(()) }
//! ```

mod builder;
mod error;
mod handle;
mod history;
#[cfg(feature = "http")]
pub mod http;
mod lease;
mod lsn;
mod monitor;
mod node;
mod ops;
mod probe;
mod rotation;
mod route;
mod session;
mod settings;
mod shared;
mod stats;
#[cfg(test)]
mod tests;
mod write;

pub use builder::PgClusterBuilder;
pub use error::{ClusterError, Unqualified, Unqualifieds};
pub use handle::PgCluster;
pub use lease::{ClusterConn, Served};
pub use lsn::{Lsn, LsnParseError};
pub use node::{NodeReport, Role};
pub use session::ClusterSession;
pub use settings::Fallback;
pub use stats::ClusterStats;

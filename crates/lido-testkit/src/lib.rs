//! # lido-testkit
//!
//! Test support for lido: real, throwaway PostgreSQL servers and the tools
//! to break them.
//!
//! - [`PgServer`]: a PostgreSQL cluster in a temporary directory on a free
//!   port of 127.0.0.1, with TLS (certificates signed by a test CA), a
//!   SCRAM-SHA-256 superuser and `pg_stat_statements`; stop, restart,
//!   terminate backends, create databases, run `psql`. Torn down on drop.
//!   The faults of a fault table: [`fast_restart`](PgServer::fast_restart),
//!   [`crash_restart`](PgServer::crash_restart), [`stop_for`](PgServer::stop_for),
//!   [`freeze`](PgServer::freeze)/[`thaw`](PgServer::thaw) (SIGSTOP/SIGCONT of
//!   every server process), [`terminate_all_sessions`](PgServer::terminate_all_sessions).
//! - [`PgReplicaSet`]: a primary [`PgServer`] and streaming replicas made
//!   by `pg_basebackup`, each a [`PgServer`] of its own; a multi-host URL,
//!   waiting for replay, an apply delay (replication lag) and promotion.
//! - [`FaultProxy`]: a TCP proxy whose [`Fault`] mode adds latency,
//!   blackholes, resets or refuses connections.
//! - [`PgBouncer`]: pgbouncer in front of a [`PgServer`].
//!
//! The PostgreSQL server binaries must be installed (`LIDO_PG_BIN`,
//! `pg_config --bindir` or `/usr/lib/postgresql/*/bin`). When the tests run
//! as root, the servers run as the `postgres` OS user.
//!
//! ```no_run
//! use lido_testkit::PgServer;
//!
//! # fn main() -> Result<(), lido_testkit::TestkitError> {
//! let server = PgServer::shared();
//! let db = server.create_database()?;
//! let url = server.url(&db); // postgres://lido:...@127.0.0.1:port/db?sslmode=disable
//! assert_eq!(server.psql(&db, "SELECT 1 + 1;")?.trim(), "2");
//! # let _ = url;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod binaries;
mod bouncer;
mod builder;
mod certs;
mod error;
pub mod fake;
mod faults;
mod lifecycle;
mod process;
mod proxy;
mod replicas;
mod server;
mod template;
pub mod urls;

pub use binaries::PgBinaries;
pub use bouncer::PgBouncer;
pub use builder::{PgServerBuilder, StopMode};
pub use certs::other_ca_pem;
pub use error::TestkitError;
pub use proxy::{Fault, FaultProxy};
pub use replicas::PgReplicaSet;
pub use server::{ClientCert, PgServer};

#![doc = include_str!("../../../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use lido_core::*;

/// The pool core (also re-exported at the crate root).
pub mod core {
    pub use lido_core::*;
}

/// PostgreSQL: `PgPool`, `PgConfig`, transactions, timeouts (feature `postgres`).
#[cfg(feature = "postgres")]
pub use lido_postgres as postgres;

/// SQLite: `SqlitePool`, writer lane, `SqliteFiles` (feature `sqlite`).
#[cfg(feature = "sqlite")]
pub use lido_sqlite as sqlite;

/// Health reports, Prometheus metrics and the axum router (feature `http`).
#[cfg(feature = "http")]
pub use lido_http as http;

//! # lido-core
//!
//! The generic async connection pool under lido's PostgreSQL and SQLite
//! backends: fair first-come-first-served waiters, cancellation-safe
//! `get()`, connect retry with capped full-jitter backoff, a circuit breaker,
//! lifetimes with jitter, idle reaping, keepalive, validation after idle,
//! runtime resize, opt-in adaptive sizing (`Config::adaptive`), graceful
//! close, statistics and an observer hook.
//!
//! Implement [`Manager`] for a connection type, then build a [`Pool`]:
//!
//! ```
//! use std::time::Duration;
//! use lido_core::{Manager, Pool};
//!
//! struct Echo;
//! impl Manager for Echo {
//!     type Connection = String;
//!     type Error = std::io::Error;
//!     async fn connect(&self) -> Result<String, std::io::Error> { Ok("conn".into()) }
//!     async fn check(&self, _c: &mut String) -> Result<(), std::io::Error> { Ok(()) }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = Pool::builder(Echo)
//!     .max_size(8)
//!     .min_idle(2)
//!     .acquire_timeout(Duration::from_secs(2))
//!     .build()
//!     .await?;
//! let conn = pool.get().await?;
//! assert_eq!(conn.as_str(), "conn");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// Layers, bottom up (every `use crate::` points down; `scripts/check-layers`):
// - plain parts: config, error, manager, stats (histogram, stripe), breaker,
//   backoff, time, periodic (the loop of maintenance and tuner), leaks,
//   waiters, observer;
// - the locked state: live (a connection, a delivery), after (deferred
//   work), state (+ state/upkeep: the fields and their named transitions);
// - shared (what a pool's handles and tasks share), connector (connect with
//   retry), commit (apply a transition, then its deferred work; connect tasks);
// - take, out, guard, acquire, maintenance, sweeper, tuner (adaptive sizing;
//   its controller, `adaptive`, is a plain part);
// - pool (the handle), builder (Pool::builder), blocking.

mod acquire;
mod adaptive;
mod after;
mod backoff;
pub mod blocking;
mod breaker;
mod builder;
mod class_stats;
mod class_tag;
mod classes;
mod commit;
mod config;
mod connector;
mod error;
mod guard;
mod histogram;
mod lanes;
mod leaks;
mod live;
mod maintenance;
mod manager;
mod observer;
mod out;
mod periodic;
mod pool;
pub mod result_store;
mod shared;
mod state;
#[cfg(test)]
mod state_model;
mod stats;
mod stripe;
mod sweeper;
mod take;
mod time;
mod tuner;
mod waiters;
mod waiting;

pub use adaptive::AdaptiveConfig;
pub use breaker::{BreakerState, Transition};
pub use builder::PoolBuilder;
pub use class_stats::{CallOutcome, ClassStat, ClassTally};
pub use class_tag::tag as class_tag;
pub use classes::{
    ClassRule, Classes, ClassesConfig, ClassesConfigError, Learning, QueryClass, StatementInfo,
    UnknownClass,
};
pub use config::{BreakerConfig, Config, RetryConfig, ReuseOrder};
pub use error::{BuildError, ConnectFailure, Error};
pub use guard::Pooled;
pub use histogram::{Histogram, HistogramSnapshot};
pub use lanes::LaneLimits;
pub use leaks::LeakReport;
pub use manager::{ErrorClass, Manager, PreemptHandle};
pub use observer::{Event, Observer};
pub use pool::{CloseReport, ConnInfo, PingError, Pool};
pub use stats::{CloseReason, Stats, Status};
pub use stripe::Counter as StripedCounter;
pub use waiters::Priority;
pub use waiting::Waiting;

/// Backoff arithmetic, public for backends that retry their own work (transactions).
pub mod retry {
    pub use crate::backoff::{ceiling, delay};
}

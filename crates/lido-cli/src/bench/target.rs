//! What `lido bench` drives: a database target that opens pools of a given size.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed future, as the CLI erases backend types.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One failed operation, classified for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpError {
    /// The pool's acquire timeout fired.
    AcquireTimeout,
    /// Anything else, with its message.
    Other(String),
}

/// A pool under test.
pub trait BenchPool: Send + Sync {
    /// Runs one operation of the workload (`write` picks the write statement).
    fn op(&self, write: bool) -> BoxFut<'_, Result<(), OpError>>;
    /// p99 of the time callers waited in `get()` so far.
    fn acquire_wait_p99(&self) -> Duration;
    /// Acquire timeouts so far.
    fn acquire_timeouts(&self) -> u64;
    /// Closes the pool after its run (default: dropping it is enough).
    fn close(&self) -> BoxFut<'_, ()> {
        Box::pin(async {})
    }
}

/// A database the benchmark can open pools on.
pub trait BenchTarget: Send + Sync {
    /// A short description for the report ("sqlite (embedded, temp file)").
    fn describe(&self) -> String;
    /// Creates and seeds what the workload needs, once.
    fn prepare(&self) -> BoxFut<'_, Result<(), String>>;
    /// Opens a pool of `size` connections.
    fn open(&self, size: usize) -> BoxFut<'_, Result<Arc<dyn BenchPool>, String>>;
}

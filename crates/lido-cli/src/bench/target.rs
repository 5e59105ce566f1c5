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
    /// Runs one operation of the workload (`write` picks the write statement)
    /// and returns how long it waited before its statement could start.
    fn op(&self, write: bool) -> BoxFut<'_, Result<Duration, OpError>>;
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
    /// What the wait returned by [`BenchPool::op`] (the "acq p99" column) covers.
    fn wait_means(&self) -> &'static str;
    /// What a pool size means, when it is not simply "connections".
    fn size_means(&self) -> Option<&'static str> {
        None
    }
}

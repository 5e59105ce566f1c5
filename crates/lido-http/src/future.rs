//! [`BoxFuture`], what the object-safe async methods of checks and pool
//! sources return; the bottom layer of the crate.

use std::future::Future;
use std::pin::Pin;

/// A boxed, `Send` future (what object-safe async methods return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

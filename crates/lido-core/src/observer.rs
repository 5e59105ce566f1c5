//! The observer hook: metrics and tracing crates subscribe to pool events here.

use std::time::Duration;

use crate::breaker::Transition;
use crate::stats::CloseReason;

/// Something that happened in a pool. Borrowed, so observers copy only what they keep.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A caller got a connection after waiting `wait` (zero when one was idle).
    Acquired {
        /// Time from `get()` to the connection.
        wait: Duration,
    },
    /// A connection went back to the pool after being held for `held`.
    Released {
        /// Time between checkout and return.
        held: Duration,
    },
    /// A connection was opened.
    Created {
        /// Time the successful attempt took.
        took: Duration,
    },
    /// A connection was closed.
    Closed {
        /// Why.
        reason: CloseReason,
    },
    /// A connect attempt failed.
    ConnectFailed {
        /// The failure (its Display never includes a password).
        error: &'a (dyn std::error::Error + 'static),
        /// Attempt number within this connect (from 1).
        attempt: u32,
        /// Whether it will be retried.
        will_retry: bool,
    },
    /// A caller gave up after `acquire_timeout`.
    AcquireTimeout {
        /// How long it waited.
        waited: Duration,
    },
    /// The circuit breaker changed state.
    Breaker(Transition),
    /// A lease has been held past `leak_threshold` (reported once per lease).
    Leak(&'a crate::leaks::LeakReport),
}

/// Receives pool events. Called inline on the pool's paths: keep it cheap and non-blocking.
///
/// ```
/// use lido_core::{Event, Observer};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// #[derive(Default)]
/// struct CountTimeouts(AtomicU64);
///
/// impl Observer for CountTimeouts {
///     fn on_event(&self, event: &Event<'_>) {
///         if let Event::AcquireTimeout { .. } = event {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
/// ```
pub trait Observer: Send + Sync + 'static {
    /// Called for every event.
    fn on_event(&self, event: &Event<'_>);
}

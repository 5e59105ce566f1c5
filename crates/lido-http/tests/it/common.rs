//! The pool these tests run against: `lido_testkit::fake::Fake` with quick
//! retries and a breaker that trips after 3 failures.

use std::sync::Arc;
use std::time::Duration;

use lido_core::{BreakerConfig, Pool, PoolBuilder, RetryConfig};
use lido_testkit::fake::{Fake, Script};

/// A small pool over the fake, built and warmed up (`min_idle` 1).
pub async fn pool(max_size: usize) -> (Pool<Fake>, Arc<Script>) {
    let (builder, script) = builder(max_size);
    (builder.build().await.expect("pool builds"), script)
}

/// The builder behind [`pool`], for tests that change a setting.
pub fn builder(max_size: usize) -> (PoolBuilder<Fake>, Arc<Script>) {
    let (fake, script) = Fake::new();
    let builder = Pool::builder(fake)
        .max_size(max_size)
        .min_idle(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(1))
        .maintenance_interval(Duration::from_millis(250))
        .retry(RetryConfig {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(50),
            max_attempts: 2,
        })
        .breaker(BreakerConfig {
            consecutive_failures: 3,
            open_for: Duration::from_secs(1),
            ..Default::default()
        });
    (builder, script)
}

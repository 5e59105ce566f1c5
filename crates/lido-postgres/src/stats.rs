//! [`PgStats`]: PostgreSQL-level counters shared by a pool's connections.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Cumulative counters since the pool was built (relaxed atomics).
        #[derive(Debug, Default)]
        pub struct PgStats {
            $(pub(crate) $name: AtomicU64,)*
        }

        impl PgStats {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> u64 {
                    self.$name.load(Ordering::Relaxed)
                }
            )*
        }
    };
}

counters! {
    /// Connect attempts made (successful or not).
    connect_attempts,
    /// Statements that ran past their timeout.
    query_timeouts,
    /// Cancels the server confirmed (the connection stayed usable).
    cancels_confirmed,
    /// Cancels that could not be confirmed (the connection was closed).
    cancels_unconfirmed,
    /// Transactions committed.
    tx_committed,
    /// Transactions rolled back (explicitly, after an error, or abandoned).
    tx_rolled_back,
    /// Transaction attempts retried after 40001 / 40P01.
    tx_retried,
    /// Transactions that ran past their timeout.
    tx_timed_out,
    /// Prepared-statement cache hits.
    stmt_hits,
    /// Prepared-statement cache misses (a statement was prepared).
    stmt_misses,
    /// Statements evicted from a full cache.
    stmt_evictions,
    /// Statements prepared again after "cached plan must not change result type".
    stmt_reprepared,
    /// Connections cleaned up on return (rolled back / cancelled).
    resets,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

//! `transaction_with_retry`: run a closure in a transaction, and run it again
//! when PostgreSQL says the transaction lost a race.
//!
//! Retried: 40001 serialization_failure, 40P01 deadlock_detected, and 0A000
//! "cached plan must not change result type" (the stale statement is dropped
//! from the cache first). Each retry sleeps a full-jitter backoff
//! (`lido_core::retry::delay`), up to `TxOptions::max_attempts` attempts.

use std::future::Future;
use std::panic::Location;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;

use crate::conn::pgconn::PgConn;
use crate::conn::transaction::Transaction;
use crate::conn::tx_sql::TxOptions;
use crate::error::PgError;
use crate::net::wire::{TxStatus, WireState};
use crate::obs::stats::bump;

impl PgConn {
    /// Runs `f` inside a transaction, commits, and retries the whole
    /// transaction on serialization failures and deadlocks.
    ///
    /// `f` may run more than once: keep side effects outside the database
    /// idempotent, or move them after this returns.
    ///
    /// ```no_run
    /// # async fn f(conn: &mut lido_postgres::PgConn) -> Result<(), lido_postgres::PgError> {
    /// use lido_postgres::TxOptions;
    /// let moved: u64 = conn
    ///     .transaction_with_retry(&TxOptions::new().serializable(), |tx| {
    ///         Box::pin(async move {
    ///             tx.execute("UPDATE acct SET bal = bal - 10 WHERE id = 1", &[]).await?;
    ///             tx.execute("UPDATE acct SET bal = bal + 10 WHERE id = 2", &[]).await
    ///         })
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn transaction_with_retry<'a, T, F>(
        &'a mut self,
        opts: &'a TxOptions,
        f: F,
    ) -> impl Future<Output = Result<T, PgError>> + Send + 'a
    where
        T: Send + 'a,
        F: for<'t, 'c> FnMut(&'t mut Transaction<'c>) -> BoxFuture<'t, Result<T, PgError>>
            + Send
            + 'a,
    {
        let location = Location::caller();
        self.transaction_with_retry_at(location, opts, f)
    }

    /// [`PgConn::transaction_with_retry`], its open transactions
    /// remembered as begun at `location` (the caller's line).
    pub(crate) async fn transaction_with_retry_at<T, F>(
        &mut self,
        location: &'static Location<'static>,
        opts: &TxOptions,
        mut f: F,
    ) -> Result<T, PgError>
    where
        T: Send,
        F: for<'t, 'c> FnMut(&'t mut Transaction<'c>) -> BoxFuture<'t, Result<T, PgError>> + Send,
    {
        let max = opts.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match self.attempt(location, opts, &mut f).await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !err.is_retryable_transaction_error() || self.is_broken() {
                return Err(err);
            }
            if attempt >= max {
                tracing::warn!(attempts = attempt, error = %err, "lido-postgres: transaction retries exhausted");
                return Err(PgError::RetriesExhausted {
                    attempts: attempt,
                    last: Box::new(err),
                });
            }
            bump(&self.ctx.stats.tx_retried);
            let deadlock =
                err.code() == Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED);
            bump(if deadlock {
                &self.ctx.stats.tx_retried_deadlock
            } else {
                &self.ctx.stats.tx_retried_serialization
            });
            let pause = lido_core::retry::delay(&opts.backoff, attempt);
            tracing::debug!(attempt, ?pause, error = %err, "lido-postgres: retrying transaction");
            tokio::time::sleep(pause).await;
        }
    }

    async fn attempt<T, F>(
        &mut self,
        location: &'static Location<'static>,
        opts: &TxOptions,
        f: &mut F,
    ) -> Result<T, PgError>
    where
        F: for<'t, 'c> FnMut(&'t mut Transaction<'c>) -> BoxFuture<'t, Result<T, PgError>>,
    {
        let grace = self.ctx.cancel_grace;
        let wire = Arc::clone(&self.wire);
        let mut tx = self.begin_at(opts, location).await?;
        let result = match tx.deadline() {
            None => f(&mut tx).await,
            Some((at, total)) => match within_deadline(f(&mut tx), at, grace, &wire).await {
                Some(r) => r,
                None => {
                    if wire.status() == TxStatus::Busy {
                        // Something without a lido timer still runs: cancel it first.
                        tx.conn().abandoned_call.store(true, Ordering::Relaxed);
                    }
                    Err(tx.conn().transaction_expired(total))
                }
            },
        };
        let err = match result {
            Ok(v) => return tx.commit().await.map(|()| v),
            Err(e) => e,
        };
        let rolled_back = match tx.rollback().await {
            Ok(()) => true,
            Err(rb) => {
                tracing::debug!(error = %rb, "lido-postgres: rollback after a failed attempt failed");
                false
            }
        };
        Err(match err {
            PgError::TransactionTimeout { timeout, .. } => PgError::TransactionTimeout {
                timeout,
                rolled_back,
            },
            other => other,
        })
    }
}

/// Runs a transaction closure until its deadline `at`. A lido statement
/// running then is being cancelled by its own timer (set to the same
/// deadline), so it gets up to twice the cancel grace to return its
/// `TransactionTimeout`: one cancel, sent by the statement. `None`: the
/// closure was dropped at the deadline (it was not waiting on the server).
async fn within_deadline<T>(
    fut: impl Future<Output = T>,
    at: Instant,
    grace: Duration,
    wire: &WireState,
) -> Option<T> {
    tokio::pin!(fut);
    tokio::select! {
        biased;
        r = &mut fut => return Some(r),
        () = tokio::time::sleep_until(at) => {}
    }
    if wire.status() != TxStatus::Busy {
        return None;
    }
    tokio::time::timeout(grace * 2 + Duration::from_millis(100), fut)
        .await
        .ok()
}

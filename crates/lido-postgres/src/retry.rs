//! `transaction_with_retry`: run a closure in a transaction, and run it again
//! when PostgreSQL says the transaction lost a race.
//!
//! Retried: 40001 serialization_failure, 40P01 deadlock_detected, and 0A000
//! "cached plan must not change result type" (the stale statement is dropped
//! from the cache first). Each retry sleeps a full-jitter backoff
//! (`lido_core::retry::delay`), up to `TxOptions::max_attempts` attempts.

use futures::future::BoxFuture;

use crate::conn::PgConn;
use crate::error::PgError;
use crate::stats::bump;
use crate::transaction::{Transaction, TxOptions};

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
    pub async fn transaction_with_retry<T, F>(
        &mut self,
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
            let err = match self.attempt(opts, &mut f).await {
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
            let pause = lido_core::retry::delay(&opts.backoff, attempt);
            tracing::debug!(attempt, ?pause, error = %err, "lido-postgres: retrying transaction");
            tokio::time::sleep(pause).await;
        }
    }

    async fn attempt<T, F>(&mut self, opts: &TxOptions, f: &mut F) -> Result<T, PgError>
    where
        F: for<'t, 'c> FnMut(&'t mut Transaction<'c>) -> BoxFuture<'t, Result<T, PgError>>,
    {
        let stats = std::sync::Arc::clone(&self.ctx.stats);
        let mut tx = self.begin(opts).await?;
        let result = match tx.remaining() {
            None => f(&mut tx).await,
            Some(left) => match tokio::time::timeout(left, f(&mut tx)).await {
                Ok(r) => r,
                Err(_) => {
                    bump(&stats.tx_timed_out);
                    Err(PgError::TransactionTimeout {
                        timeout: opts.timeout.unwrap_or_default(),
                    })
                }
            },
        };
        match result {
            Ok(v) => tx.commit().await.map(|()| v),
            Err(e) => {
                if let Err(rb) = tx.rollback().await {
                    tracing::debug!(error = %rb, "lido-postgres: rollback after a failed attempt failed");
                }
                Err(e)
            }
        }
    }
}

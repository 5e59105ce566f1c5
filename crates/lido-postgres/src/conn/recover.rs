//! Recovery: what a [`PgConn`] does before it is used again after a call
//! or a transaction was left unfinished — cancel the abandoned call, wait
//! for answers still owed, roll back what the server says is open. An
//! error (or a session still not idle) discards the connection.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::conn::pgconn::PgConn;
use crate::conn::tx_sql::rollback_sql;
use crate::error::{PgError, ResetFailure};
use crate::net::cancel::cancel_and_confirm;
use crate::net::wire::TxStatus;
use crate::obs::stats::bump;

impl PgConn {
    /// Cancels an abandoned call, waits for outstanding answers, and rolls
    /// back whatever transaction the server says is open. An error (or a
    /// session still not idle) discards the connection.
    pub(crate) async fn reset(&self) -> Result<(), PgError> {
        bump(&self.ctx.stats.resets);
        self.recover_abandoned_call().await?;
        let known = self.depth.swap(0, Ordering::Relaxed) > 0;
        let abandoned = self.abandoned_depth.swap(0, Ordering::Relaxed) > 0;
        if self.wire.status() == TxStatus::Busy {
            self.settle_outstanding().await?;
        }
        if matches!(
            self.wire.status(),
            TxStatus::InTransaction | TxStatus::Failed
        ) {
            tracing::debug!(
                "lido-postgres: rolling back a connection returned inside a transaction"
            );
            self.client.batch_execute("ROLLBACK").await?;
            if known || abandoned {
                bump(&self.ctx.stats.tx_rolled_back);
            }
        }
        match self.wire.status() {
            TxStatus::Idle => Ok(()),
            TxStatus::Unknown => Err(PgError::Reset(ResetFailure::UnknownProtocolState)),
            _ => Err(PgError::Reset(ResetFailure::NotIdleAfterRollback)),
        }
    }

    /// Answers still owed (a request made straight on the client and given
    /// up on, say): waits briefly for them behind an empty query, then
    /// cancels what still runs.
    async fn settle_outstanding(&self) -> Result<(), PgError> {
        let brief = self.ctx.cancel_grace.min(Duration::from_millis(100));
        if let Ok(r) = tokio::time::timeout(brief, self.client.simple_query("")).await {
            return r.map(drop).map_err(PgError::from);
        }
        self.cancel_or_fail().await
    }

    /// Cancels what runs and confirms the connection answers again.
    async fn cancel_or_fail(&self) -> Result<(), PgError> {
        if self.cancel_and_confirm().await {
            Ok(())
        } else {
            Err(PgError::QueryTimeout {
                timeout: self.ctx.cancel_grace,
                cancelled: false,
            })
        }
    }

    /// Cleans up what a dropped lido transaction level or call left on this
    /// connection, before its next statement: two loads when nothing was.
    pub(crate) async fn clean_up(&self) -> Result<(), PgError> {
        if self.left_unfinished() {
            self.settle().await?;
            self.recover_abandoned_call().await?;
        }
        Ok(())
    }

    /// If a call was abandoned mid-flight, cancels it and waits until the
    /// connection answers again; marks the connection broken if it does not.
    pub(crate) async fn recover_abandoned_call(&self) -> Result<(), PgError> {
        // Read first: on the usual path (nothing abandoned) no write, so
        // the flag's cache line stays shared.
        if !self.abandoned_call.load(Ordering::Relaxed)
            || !self.abandoned_call.swap(false, Ordering::Relaxed)
        {
            return Ok(());
        }
        self.cancel_or_fail().await
    }

    /// Rolls back a transaction level whose guard was dropped unfinished.
    pub(crate) async fn settle(&self) -> Result<(), PgError> {
        if self.abandoned_depth.load(Ordering::Relaxed) == 0 {
            return Ok(()); // the usual path: a read, no write
        }
        let level = self.abandoned_depth.swap(0, Ordering::Relaxed);
        if level == 0 {
            return Ok(());
        }
        self.recover_abandoned_call().await?;
        let sql = rollback_sql(level);
        self.client.batch_execute(&sql).await?;
        self.depth.store(level - 1, Ordering::Relaxed);
        if level == 1 {
            bump(&self.ctx.stats.tx_rolled_back);
        }
        Ok(())
    }

    /// Sends a cancel request and waits until the connection answers again.
    /// Returns `false` (and marks the connection broken) if it could not be
    /// confirmed.
    pub(crate) async fn cancel_and_confirm(&self) -> bool {
        let ok = cancel_and_confirm(&self.client, self.cancel_target()).await;
        let stats = &self.ctx.stats;
        if ok {
            bump(&stats.cancels_confirmed);
        } else {
            bump(&stats.cancels_unconfirmed);
            self.broken.store(true, Ordering::Relaxed);
            tracing::warn!(
                "lido-postgres: could not confirm a query cancel; the connection will be closed"
            );
        }
        ok
    }
}

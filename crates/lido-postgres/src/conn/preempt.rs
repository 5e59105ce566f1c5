//! Lane lending's preemption on PostgreSQL: the handle lido-core calls to
//! stop a lent call (a server-side cancel, in the background), and how the
//! interrupted call's error becomes [`PgError::Preempted`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use lido_core::PreemptHandle;
use tokio_postgres::error::SqlState;

use crate::conn::pgconn::PgConn;
use crate::error::PgError;
use crate::net::cancel::{cancel_in_background, CancelTarget};

impl PgConn {
    /// Marks the connection preempted and sends a cancel request for
    /// whatever runs on it now. Returns at once.
    pub(crate) fn preempt_handle(&self) -> PreemptHandle {
        let flag = Arc::clone(&self.preempted);
        let token = self.client.cancel_token();
        let (endpoint, tls) = (self.endpoint.clone(), self.ctx.tls.clone());
        let grace = self.ctx.cancel_grace;
        Arc::new(move || {
            flag.store(true, Ordering::SeqCst);
            let to = CancelTarget {
                endpoint: &endpoint,
                tls: &tls,
                grace,
            };
            cancel_in_background(token.clone(), to, "preempted for a higher-priority caller");
        })
    }

    /// Whether `e` is this lease's call stopped by a preemption: cancelled
    /// (57014), or a transaction the cancel aborted (25P02).
    pub(crate) fn was_preempted(&self, e: &PgError) -> bool {
        self.preempted.load(Ordering::SeqCst)
            && matches!(
                e.code(),
                Some(c) if *c == SqlState::QUERY_CANCELED || *c == SqlState::IN_FAILED_SQL_TRANSACTION
            )
    }
}

//! Whole calls through a cluster, with the retries only the cluster can
//! make: a read cancelled by a recovery conflict runs again on another
//! node; a write that met a node in recovery (SQLSTATE 25006) runs again on
//! the new primary. Both only where running again is safe: a plain
//! statement, or a retrying transaction's closure (re-run from BEGIN).

use std::panic::Location;

use futures::future::BoxFuture;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::cluster::error::{is_read_only, is_recovery_conflict, ClusterError};
use crate::cluster::handle::PgCluster;
use crate::cluster::lease::ClusterConn;
use crate::cluster::route::Need;
use crate::cluster::session::ClusterSession;
use crate::cluster::stats::Counter;
use crate::conn::exec::Sql;
use crate::conn::transaction::Transaction;
use crate::conn::tx_sql::TxOptions;
use crate::error::PgError;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

fn on(conn: &ClusterConn) -> impl Fn(PgError) -> ClusterError + '_ {
    |source| ClusterError::Query {
        node: conn.address().to_owned(),
        source,
    }
}

impl PgCluster {
    /// Runs a read (see [`read`](Self::read)); a recovery conflict on a
    /// replica runs it once more on another node.
    #[track_caller]
    pub fn query<'a>(
        &'a self,
        q: &'a (impl Sql + ?Sized),
        params: Params<'a>,
    ) -> BoxFuture<'a, Result<Vec<Row>, ClusterError>> {
        let location = Location::caller();
        let session = self.shared.default_session.clone();
        Box::pin(async move { self.query_in(Some(&session), q, params, location).await })
    }

    /// Runs a read that sees `session`'s writes (see [`read_for`](Self::read_for)).
    #[track_caller]
    pub fn query_for<'a>(
        &'a self,
        session: &'a ClusterSession,
        q: &'a (impl Sql + ?Sized),
        params: Params<'a>,
    ) -> BoxFuture<'a, Result<Vec<Row>, ClusterError>> {
        let location = Location::caller();
        Box::pin(async move { self.query_in(Some(session), q, params, location).await })
    }

    async fn query_in(
        &self,
        session: Option<&ClusterSession>,
        q: &(impl Sql + ?Sized),
        params: Params<'_>,
        location: &'static Location<'static>,
    ) -> Result<Vec<Row>, ClusterError> {
        let need = Need::of(&self.shared, session);
        let conn = self.shared.read(need, None, location).await?;
        let first = conn.query(q, params).await;
        match first {
            Err(e) if is_recovery_conflict(&e) => {
                let node = Some(conn.node_index());
                drop(conn);
                self.shared.stats.add(Counter::ConflictRetry);
                let conn = self.shared.read(need, node, location).await?;
                conn.query(q, params).await.map_err(on(&conn))
            }
            other => other.map_err(on(&conn)),
        }
    }

    /// Runs one write statement on the primary and records its position
    /// (see [`write`](Self::write)); if the node turned out to be in
    /// recovery (25006), runs it once more on the new primary.
    #[track_caller]
    pub fn execute<'a>(
        &'a self,
        q: &'a (impl Sql + ?Sized),
        params: Params<'a>,
    ) -> BoxFuture<'a, Result<u64, ClusterError>> {
        let location = Location::caller();
        Box::pin(async move { self.execute_in(None, q, params, location).await })
    }

    /// [`execute`](Self::execute), also recorded in `session`.
    #[track_caller]
    pub fn execute_for<'a>(
        &'a self,
        session: &'a ClusterSession,
        q: &'a (impl Sql + ?Sized),
        params: Params<'a>,
    ) -> BoxFuture<'a, Result<u64, ClusterError>> {
        let location = Location::caller();
        Box::pin(async move { self.execute_in(Some(session), q, params, location).await })
    }

    async fn execute_in(
        &self,
        session: Option<&ClusterSession>,
        q: &(impl Sql + ?Sized),
        params: Params<'_>,
        location: &'static Location<'static>,
    ) -> Result<u64, ClusterError> {
        let mut retried = false;
        loop {
            let conn = self.write_lease(session, location).await?;
            let result = conn.execute(q, params).await;
            if let Some(n) = self.settle(conn, result, &mut retried).await? {
                return Ok(n);
            }
        }
    }

    /// Runs `f` in a retrying transaction on the primary (see
    /// [`PgConn::transaction_with_retry`](crate::PgConn::transaction_with_retry))
    /// and records its position; a transaction that met a node in recovery
    /// runs once more, from BEGIN, on the new primary.
    #[track_caller]
    pub fn transaction_with_retry<'a, T, F>(
        &'a self,
        session: Option<&'a ClusterSession>,
        opts: &'a TxOptions,
        mut f: F,
    ) -> BoxFuture<'a, Result<T, ClusterError>>
    where
        T: Send + 'a,
        F: for<'t, 'c> FnMut(&'t mut Transaction<'c>) -> BoxFuture<'t, Result<T, PgError>>
            + Send
            + 'a,
    {
        let location = Location::caller();
        Box::pin(async move {
            let mut retried = false;
            loop {
                let mut conn = self.write_lease(session, location).await?;
                let result = conn.transaction_with_retry_at(location, opts, &mut f).await;
                if let Some(v) = self.settle(conn, result, &mut retried).await? {
                    return Ok(v);
                }
            }
        })
    }

    /// After a write on `conn`: its value once its position is recorded;
    /// `None` to run it again (a first 25006, and a different primary was
    /// found); else the error.
    async fn settle<T>(
        &self,
        conn: ClusterConn,
        result: Result<T, PgError>,
        retried: &mut bool,
    ) -> Result<Option<T>, ClusterError> {
        let e = match result {
            Ok(v) => {
                conn.finish().await?;
                return Ok(Some(v));
            }
            Err(e) if !*retried && is_read_only(&e) => e,
            Err(e) => return Err(on(&conn)(e)),
        };
        let (node, index) = (conn.address().to_owned(), conn.node_index());
        drop(conn);
        self.shared.stats.add(Counter::ReadOnlyRetry);
        if !self.shared.write_target_moved(index).await {
            return Err(ClusterError::Query { node, source: e });
        }
        *retried = true;
        Ok(None)
    }
}

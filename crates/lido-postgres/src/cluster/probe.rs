//! One health probe of one node, on the monitor's own connection to it
//! (outside the node pool's `max_size`, so a busy pool never delays it):
//! role, WAL positions and round trip in one statement, under a short timeout.

use std::time::{Duration, Instant};

use lido_core::Manager as _;

use crate::cluster::lsn::Lsn;
use crate::cluster::node::Node;
use crate::conn::pgconn::PgConn;

/// Role and positions in one round trip. On a replica: replay and receive
/// positions; on a primary: the WAL insert position (which covers every
/// commit that has returned, asynchronous ones included) and the flush
/// position (what replicas can have: lag counts from it).
const PROBE_SQL: &str = "SELECT pg_is_in_recovery(), \
    (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
     ELSE pg_current_wal_insert_lsn() END), \
    (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() \
     ELSE pg_current_wal_flush_lsn() END), \
    EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8";

/// What one probe found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) in_recovery: bool,
    /// Replay position (replica), or the replay position that covers the
    /// insert position (primary; see [`Lsn::replayed_mark`]).
    pub(crate) lsn: Lsn,
    /// Replicas: what it has received from the primary; a primary: what
    /// it has flushed (as the replay position that covers it).
    pub(crate) receive: Option<Lsn>,
    /// Replicas: age of the last replayed commit.
    pub(crate) replay_age: Option<Duration>,
    pub(crate) rtt: Duration,
    /// When the statement was sent.
    pub(crate) taken_at: Instant,
}

/// Probes `node` on `conn` (opening it when there is none); a failure
/// drops the connection so the next round opens a fresh one.
pub(crate) async fn probe(
    node: &Node,
    conn: &mut Option<PgConn>,
    timeout: Duration,
) -> Result<Sample, String> {
    let result = tokio::time::timeout(timeout, probe_on(node, conn)).await;
    let result = result.unwrap_or_else(|_| {
        Err(format!(
            "no answer within the probe timeout ({} ms)",
            timeout.as_millis()
        ))
    });
    if result.is_err() {
        *conn = None;
    }
    result
}

async fn probe_on(node: &Node, conn: &mut Option<PgConn>) -> Result<Sample, String> {
    if conn.is_none() {
        let opened = node.pool.core().manager().connect().await;
        *conn = Some(opened.map_err(|e| e.to_string())?);
    }
    let Some(c) = conn.as_ref() else {
        return Err("no probe connection".to_owned());
    };
    let taken_at = Instant::now();
    let row = c
        .client()
        .query_one(PROBE_SQL, &[])
        .await
        .map_err(|e| crate::error::PgError::from(e).to_string())?;
    let rtt = taken_at.elapsed();
    let parse =
        |i: usize| -> Result<Option<Lsn>, String> { row.try_get(i).map_err(|e| e.to_string()) };
    let lsn = parse(1)?.ok_or("the server reported no WAL position yet")?;
    let age: Option<f64> = row.try_get(3).map_err(|e| e.to_string())?;
    let in_recovery: bool = row.try_get(0).map_err(|e| e.to_string())?;
    Ok(Sample {
        in_recovery,
        // A primary's insert position, as the replay position that covers it.
        lsn: if in_recovery {
            lsn
        } else {
            lsn.replayed_mark()
        },
        receive: parse(2)?.map(|l| if in_recovery { l } else { l.replayed_mark() }),
        replay_age: age.and_then(|s| Duration::try_from_secs_f64(s.max(0.0)).ok()),
        rtt,
        taken_at,
    })
}

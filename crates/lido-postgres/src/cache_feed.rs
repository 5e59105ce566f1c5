//! The result cache's view of writes that bypass the pool: a dedicated
//! connection (outside `max_size`) holds a temporary logical replication
//! slot with `test_decoding` and polls it; every committed change names its
//! table, whose cached results are then stale. The slot's retained WAL is
//! watched: past the bound the slot is dropped and the cache falls back to
//! its TTL alone, with a warning, instead of letting WAL pile up on the
//! server. A feed that fails marks every cached result stale and starts
//! over after a pause.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_core::Manager;
use tokio::task::JoinHandle;

use crate::cluster::Lsn;
use crate::conn::pgconn::PgConn;
use crate::error::PgError;
use crate::obs::feed_position::FeedPosition;
use crate::obs::result_cache::ResultCache;
use crate::obs::writes::WriteLog;
use crate::pool::PgPool;

/// Settings of [`PgPool::watch_outside_writes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedConfig {
    /// How often the slot is read (default 50 ms).
    pub poll: Duration,
    /// Most WAL the slot may hold back before it is dropped (default 256 MiB).
    pub max_retained_bytes: u64,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(50),
            max_retained_bytes: 256 << 20,
        }
    }
}

/// Why the feed cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeedError {
    /// The pool has no result cache.
    #[error("the pool has no result cache (PgPoolBuilder::result_cache): nothing to invalidate")]
    NoCache,
    /// Logical decoding is off on the server.
    #[error("the server runs with wal_level = {current}; set wal_level = logical in postgresql.conf and restart it (the cache then falls back to its TTL alone)")]
    WalLevel {
        /// The server's setting.
        current: String,
    },
    /// The role may not create replication slots.
    #[error("the role cannot create a replication slot ({0}); grant it REPLICATION (ALTER ROLE ... REPLICATION) or run without the feed")]
    Privilege(String),
    /// Anything else the server or the connection said.
    #[error(transparent)]
    Pg(#[from] PgError),
}

/// A running feed of outside writes (a WAL slot, or trigger
/// notifications: [`PgPool::watch_outside_writes_notify`]); dropping it (or
/// [`stop`](Self::stop)) ends it and its temporary slot.
#[derive(Debug)]
pub struct WalFeed {
    task: JoinHandle<()>,
    state: Arc<FeedState>,
}

/// What the feed has done (read through [`WalFeed`]); whether it reads
/// now is its cache position's `is_active`, kept in one place.
#[derive(Debug)]
pub(crate) struct FeedState {
    position: Arc<FeedPosition>,
    changes: AtomicU64,
    restarts: AtomicU64,
    dropped_for_retention: AtomicBool,
}

impl WalFeed {
    pub(crate) fn new(task: JoinHandle<()>, state: Arc<FeedState>) -> Self {
        Self { task, state }
    }

    /// Whether the feed is reading its slot now.
    pub fn is_active(&self) -> bool {
        self.state.position.is_active()
    }

    /// Changes read from the slot so far.
    pub fn changes(&self) -> u64 {
        self.state.changes.load(Ordering::Relaxed)
    }

    /// Times the feed failed and started over.
    pub fn restarts(&self) -> u64 {
        self.state.restarts.load(Ordering::Relaxed)
    }

    /// Whether the slot was dropped for holding back too much WAL (the
    /// cache then relies on its TTL alone).
    pub fn dropped_for_retention(&self) -> bool {
        self.state.dropped_for_retention.load(Ordering::Relaxed)
    }

    /// Ends the feed.
    pub fn stop(self) {}
}

impl Drop for WalFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PgPool {
    /// Starts the result cache's feed of writes that bypass this pool
    /// (needs `wal_level = logical` and the REPLICATION attribute). The
    /// first slot is made before this returns, so setup errors surface here.
    pub async fn watch_outside_writes(&self, config: FeedConfig) -> Result<WalFeed, FeedError> {
        let cache = self.result_cache().ok_or(FeedError::NoCache)?;
        let (conn, slot) = open(self).await?;
        let seen = Seen::of(cache);
        let state = Arc::clone(&seen.state);
        let task = tokio::spawn(run(self.clone(), conn, slot, seen, config));
        Ok(WalFeed { task, state })
    }
}

/// A connection with a fresh temporary slot.
async fn open(pool: &PgPool) -> Result<(PgConn, String), FeedError> {
    let conn = pool.core().manager().connect().await?;
    let level: String = conn
        .client()
        .query_one("SHOW wal_level", &[])
        .await
        .map_err(PgError::from)?
        .get(0);
    if level != "logical" {
        return Err(FeedError::WalLevel { current: level });
    }
    let slot = format!("lido_cache_{:016x}", fastrand::u64(..));
    let made = conn
        .client()
        .execute(
            "SELECT pg_create_logical_replication_slot($1, 'test_decoding', true)",
            &[&slot],
        )
        .await;
    match made {
        Ok(_) => Ok((conn, slot)),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
            Err(FeedError::Privilege(PgError::from(e).to_string()))
        }
        Err(e) => Err(PgError::from(e).into()),
    }
}

/// Where a feed reports (the cache's write log and position, and the
/// feed's own counters), and what both feeds do when they fail and come
/// back.
pub(crate) struct Seen {
    pub(crate) log: Arc<WriteLog>,
    pub(crate) state: Arc<FeedState>,
}

impl Seen {
    /// The cache's, marked active.
    pub(crate) fn of(cache: &ResultCache) -> Self {
        let state = FeedState {
            position: Arc::clone(&cache.position),
            changes: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            dropped_for_retention: AtomicBool::new(false),
        };
        state.position.set_active(true);
        Self {
            log: Arc::clone(&cache.writes),
            state: Arc::new(state),
        }
    }

    pub(crate) fn position(&self) -> &FeedPosition {
        &self.state.position
    }

    /// `n` changes applied to the write log.
    pub(crate) fn changed(&self, tables: &[String]) {
        self.state
            .changes
            .fetch_add(tables.len() as u64, Ordering::Relaxed);
        self.log.wrote(tables);
    }

    /// The feed failed: every cached result is stale, readers waiting for
    /// a position go to the server.
    pub(crate) fn failed(&self, feed: &str, e: &PgError) {
        self.position().set_active(false);
        self.state.restarts.fetch_add(1, Ordering::Relaxed);
        self.log.wrote_all();
        tracing::warn!(error = %e, feed, "lido-postgres: result cache feed failed; every cached result is now stale, starting over");
    }

    /// Retries `open` once a second until it succeeds; writes made while
    /// the feed was away were not seen, so everything is stale again.
    pub(crate) async fn reopen<T, F, Fut>(&self, open: F) -> T
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, FeedError>>,
    {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Ok(opened) = open().await {
                self.log.wrote_all();
                self.position().set_active(true);
                return opened;
            }
        }
    }
}

impl Drop for Seen {
    fn drop(&mut self) {
        // The feed ended (stopped, or its task aborted): readers waiting
        // for a position go to the server.
        self.position().set_active(false);
    }
}

async fn run(pool: PgPool, mut conn: PgConn, mut slot: String, seen: Seen, config: FeedConfig) {
    loop {
        match follow(&conn, &slot, &seen, config).await {
            // Dropped for retention: TTL only from here on (`seen` drops).
            Ok(()) => return,
            Err(e) => seen.failed("wal", &e),
        }
        (conn, slot) = seen.reopen(|| open(&pool)).await;
    }
}

/// Reads the slot until it fails (`Err`) or is dropped for retention (`Ok`).
async fn follow(conn: &PgConn, slot: &str, seen: &Seen, config: FeedConfig) -> Result<(), PgError> {
    let log = &seen.log;
    let mut polls: u64 = 0;
    loop {
        // Every commit flushed by now is in what the slot returns next.
        let flushed = flushed(conn).await?;
        let rows = conn
            .client()
            .query(
                "SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL)",
                &[&slot],
            )
            .await?;
        let mut tables: Vec<String> = Vec::new();
        for row in &rows {
            let data: &str = row.get(0);
            if let Some(t) = changed_table(data) {
                if !tables.contains(&t) {
                    tables.push(t);
                }
            }
        }
        if !tables.is_empty() {
            seen.changed(&tables);
        }
        seen.position().advance(flushed);
        polls += 1;
        if polls % 20 == 0 && retained(conn, slot).await? > config.max_retained_bytes {
            tracing::warn!(slot, "lido-postgres: the result cache's slot holds back too much WAL; dropping it, the cache now relies on its TTL alone");
            conn.client()
                .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
                .await?;
            seen.state
                .dropped_for_retention
                .store(true, Ordering::Relaxed);
            log.wrote_all();
            return Ok(());
        }
        seen.position().next_round(config.poll).await;
    }
}

/// The server's flushed WAL position.
async fn flushed(conn: &PgConn) -> Result<u64, PgError> {
    let row = conn
        .client()
        .query_one("SELECT pg_current_wal_flush_lsn()", &[])
        .await?;
    let lsn: Lsn = row.try_get(0)?;
    Ok(lsn.0)
}

/// Bytes of WAL the slot holds back.
async fn retained(conn: &PgConn, slot: &str) -> Result<u64, PgError> {
    let row = conn
        .client()
        .query_one(
            "SELECT coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::int8 \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}

/// The table a `test_decoding` line changes (`table public.items: UPDATE: ...`),
/// as the result cache names tables (unqualified).
fn changed_table(data: &str) -> Option<String> {
    let rest = data.strip_prefix("table ")?;
    let name = rest.split(": ").next()?;
    let last = name.rsplit('.').next()?;
    Some(last.trim_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    use super::changed_table;

    #[test]
    fn test_decoding_lines_name_their_table() {
        assert_eq!(
            changed_table("table public.items: UPDATE: id[integer]:1 name[text]:'a: b'").as_deref(),
            Some("items")
        );
        assert_eq!(
            changed_table("table s.\"Odd\": TRUNCATE: (no-flags)").as_deref(),
            Some("Odd")
        );
        assert_eq!(changed_table("BEGIN 734"), None);
        assert_eq!(changed_table("COMMIT 734"), None);
    }
}

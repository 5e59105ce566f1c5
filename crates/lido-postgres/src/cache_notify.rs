//! The result cache's view of outside writes where logical decoding is not
//! available (`wal_level` below `logical`, no REPLICATION grant, a managed
//! service): statement-level triggers send `NOTIFY` with the table's name
//! on every write, and a dedicated connection (outside `max_size`)
//! `LISTEN`s. [`write_triggers_sql`] gives the DDL to install (or
//! [`PgPool::install_write_triggers`] runs it).
//!
//! Positions ([`CachedQuery::after`](crate::CachedQuery::after) and
//! [`fresh`](crate::CachedQuery::fresh)) work here too: when a reader asks,
//! the feed reads the server's WAL position and sends itself a `NOTIFY`
//! in the same statement. PostgreSQL delivers notifications in commit
//! order, so once its own arrives, every write that committed before that
//! position has been applied.

use std::sync::Arc;
use std::time::Duration;

use lido_core::Manager;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::Notification;

use crate::cache_feed::{FeedError, Seen, WalFeed};
use crate::cluster::Lsn;
use crate::conn::pgconn::PgConn;
use crate::error::PgError;
use crate::pool::PgPool;

/// The channel lido's triggers notify by default.
pub const DEFAULT_NOTIFY_CHANNEL: &str = "lido_cache";

/// What a probe's own notification starts with (never a table name: the
/// colon cannot appear in an unquoted identifier lido installs).
const PROBE: &str = "lido:probe:";

/// Settings of [`PgPool::watch_outside_writes_notify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyFeedConfig {
    /// The channel the triggers notify (default [`DEFAULT_NOTIFY_CHANNEL`]).
    pub channel: String,
    /// How often the feed checks its connection when nothing arrives
    /// (default 1 s).
    pub probe: Duration,
}

impl Default for NotifyFeedConfig {
    fn default() -> Self {
        Self {
            channel: DEFAULT_NOTIFY_CHANNEL.to_owned(),
            probe: Duration::from_secs(1),
        }
    }
}

/// A name for SQL: a plain identifier as it is, anything else quoted.
fn ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// A string literal for SQL.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The DDL that makes every write to `tables` (`name` or `schema.name`)
/// notify `channel` with the table's name: one trigger function and one
/// statement-level trigger per table (`CREATE OR REPLACE`: safe to run
/// again).
///
/// ```
/// let sql = lido_postgres::write_triggers_sql("lido_cache", &["items", "sales.orders"]);
/// assert!(sql.contains("ON sales.orders"));
/// ```
pub fn write_triggers_sql(channel: &str, tables: &[&str]) -> String {
    let mut sql = String::from(
        "CREATE OR REPLACE FUNCTION lido_cache_notify() RETURNS trigger LANGUAGE plpgsql AS $lido$\n\
         BEGIN PERFORM pg_notify(TG_ARGV[0], TG_TABLE_NAME); RETURN NULL; END\n$lido$;\n",
    );
    for t in tables {
        let name: Vec<String> = t.split('.').map(ident).collect();
        sql.push_str(&format!(
            "CREATE OR REPLACE TRIGGER lido_cache_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE \
             ON {} FOR EACH STATEMENT EXECUTE FUNCTION lido_cache_notify({});\n",
            name.join("."),
            literal(channel)
        ));
    }
    sql
}

impl PgPool {
    /// Runs [`write_triggers_sql`] for `tables` (needs the right to create
    /// a function and triggers on them).
    pub async fn install_write_triggers(
        &self,
        channel: &str,
        tables: &[&str],
    ) -> Result<(), PgError> {
        let conn = self.get().await?;
        conn.batch_execute(&write_triggers_sql(channel, tables))
            .await
    }

    /// Starts the result cache's feed of outside writes from trigger
    /// notifications, for servers without logical decoding: triggers
    /// ([`write_triggers_sql`]) notify `config.channel` with the table's
    /// name on every write, and a dedicated connection (outside `max_size`)
    /// listens and invalidates that table's cached results. Positions
    /// ([`CachedQuery::after`](crate::CachedQuery::after),
    /// [`fresh`](crate::CachedQuery::fresh)) hold here too: the feed reads
    /// the server's position while notifying itself, and notifications
    /// arrive in commit order. A write to a table without the trigger is
    /// not seen (the TTL bounds it). The connection listens before this
    /// returns; when it fails, every cached result is marked stale and the
    /// feed starts over.
    pub async fn watch_outside_writes_notify(
        &self,
        config: NotifyFeedConfig,
    ) -> Result<WalFeed, FeedError> {
        let cache = self.result_cache().ok_or(FeedError::NoCache)?;
        let (conn, rx) = listen(self, &config.channel).await?;
        let seen = Seen::of(cache);
        let state = Arc::clone(&seen.state);
        let task = tokio::spawn(run(self.clone(), conn, rx, seen, config));
        Ok(WalFeed::new(task, state))
    }
}

/// A dedicated connection listening on `channel`.
async fn listen(
    pool: &PgPool,
    channel: &str,
) -> Result<(PgConn, UnboundedReceiver<Notification>), PgError> {
    let conn = pool.core().manager().connect().await?;
    let rx = conn.notify.subscribe();
    conn.client()
        .batch_execute(&format!("LISTEN {}", ident(channel)))
        .await?;
    Ok((conn, rx))
}

async fn run(
    pool: PgPool,
    mut conn: PgConn,
    mut rx: UnboundedReceiver<Notification>,
    seen: Seen,
    config: NotifyFeedConfig,
) {
    let mut probes = 0u64;
    loop {
        let e = follow(&conn, &mut rx, &seen, &config, &mut probes).await;
        seen.failed("notify", &e);
        (conn, rx) = seen
            .reopen(|| async { Ok(listen(&pool, &config.channel).await?) })
            .await;
    }
}

/// Applies notifications and answers readers' wishes until the connection fails.
async fn follow(
    conn: &PgConn,
    rx: &mut UnboundedReceiver<Notification>,
    seen: &Seen,
    config: &NotifyFeedConfig,
    probes: &mut u64,
) -> PgError {
    loop {
        tokio::select! {
            n = rx.recv() => match n {
                Some(n) => {
                    apply(&n, seen);
                }
                None => return PgError::Cached("the listening connection closed".to_owned()),
            },
            () = seen.position().next_round(config.probe) => {
                *probes += 1;
                if let Err(e) = probe(conn, rx, seen, &config.channel, *probes).await {
                    return e;
                }
            }
        }
    }
}

/// A table's notification invalidates it; a probe's own is ignored here.
fn apply(n: &Notification, seen: &Seen) {
    if !n.payload().starts_with(PROBE) {
        seen.changed(&[n.payload().to_owned()]);
    }
}

/// Reads the server's position while notifying itself; once its own
/// notification is back, every write committed before it was applied.
async fn probe(
    conn: &PgConn,
    rx: &mut UnboundedReceiver<Notification>,
    seen: &Seen,
    channel: &str,
    n: u64,
) -> Result<(), PgError> {
    let tag = format!("{PROBE}{n}");
    let row = conn
        .client()
        .query_one(
            "SELECT pg_current_wal_insert_lsn(), pg_notify($1, $2)",
            &[&channel, &tag],
        )
        .await?;
    let lsn: Lsn = row.try_get(0)?;
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let next = tokio::time::timeout_at(until, rx.recv()).await;
        match next {
            Ok(Some(note)) if note.payload() == tag => break,
            Ok(Some(note)) => apply(&note, seen),
            Ok(None) => {
                return Err(PgError::Cached(
                    "the listening connection closed".to_owned(),
                ))
            }
            Err(_) => {
                return Err(PgError::Cached(
                    "the feed's own notification did not come back within 5 s".to_owned(),
                ))
            }
        }
    }
    seen.position().advance(lsn.0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_only_when_they_must_be() {
        assert_eq!(ident("items"), "items");
        assert_eq!(ident("Items"), "\"Items\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
        let sql = write_triggers_sql("ch'x", &["public.Odd"]);
        assert!(sql.contains("ON public.\"Odd\""), "{sql}");
        assert!(sql.contains("lido_cache_notify('ch''x')"), "{sql}");
    }
}

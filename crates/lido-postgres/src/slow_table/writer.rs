//! The writer task: drains the queue in batches over its own connection,
//! reconnecting with backoff, sweeps old rows, and fetches sampled plans.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;

use super::config::SlowTableConfig;
use super::ddl::{is_undefined_table, TableName};
use super::plans::Sampler;
use super::row::{Columns, Planned, SlowRow};
use super::shared::{Every, Shared};
use crate::net::plan::ConnectPlan;
use crate::net::tls_stream::Tls;

/// How the writer reaches the server: the pool's plan and TLS, and what
/// every row says of the pool.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub(crate) plan: Arc<ConnectPlan>,
    pub(crate) tls: Tls,
    pub(crate) application_name: Option<String>,
    pub(crate) database: String,
}

/// The writer's open session.
struct Session {
    client: Client,
    io: tokio::task::AbortHandle,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.io.abort();
    }
}

/// What one wait on the queue gave.
enum Gathered {
    Rows(Vec<SlowRow>),
    Sweep,
    End,
}

/// The background writer (one per pool with a slow-query table).
pub(crate) struct Writer {
    rx: mpsc::Receiver<SlowRow>,
    shared: Arc<Shared>,
    cfg: SlowTableConfig,
    name: TableName,
    link: Link,
    session: Option<Session>,
    backoff: Duration,
    next_sweep: Option<Instant>,
    sampler: Option<Sampler>,
    warn: Every,
    /// After this the writer stops retrying (set when closing).
    give_up: Option<Instant>,
}

impl Writer {
    pub(crate) fn new(
        rx: mpsc::Receiver<SlowRow>,
        shared: Arc<Shared>,
        cfg: SlowTableConfig,
        link: Link,
        name: TableName,
    ) -> Self {
        Self {
            rx,
            shared,
            sampler: cfg.explain.clone().map(Sampler::new),
            cfg,
            name,
            link,
            session: None,
            backoff: Duration::ZERO,
            next_sweep: None,
            warn: Every::default(),
            give_up: None,
        }
    }

    /// Runs until the pool closes (then writes what is queued) or is dropped.
    pub(crate) async fn run(mut self) {
        // Connected first: the table exists (or its DDL is asked for) early.
        if self.connect().await {
            loop {
                match self.gather().await {
                    Gathered::Rows(rows) => self.write(rows).await,
                    Gathered::Sweep => self.sweep().await,
                    Gathered::End => break,
                }
            }
        }
        self.drain().await;
        self.shared.finished();
    }

    fn closing(&self) -> bool {
        *self.shared.closing.borrow()
    }

    fn session_closed(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.client.is_closed())
    }

    fn past_give_up(&self) -> bool {
        self.give_up.is_some_and(|t| Instant::now() >= t)
    }

    /// Waits for a batch: its first row, then more for up to
    /// `flush_interval` or until it is full.
    async fn gather(&mut self) -> Gathered {
        let batch = self.cfg.batch_size.max(1);
        let mut buf = Vec::new();
        let mut closing = self.shared.closing.subscribe();
        let sweep_at = self.next_sweep;
        tokio::select! {
            biased;
            _ = closing.wait_for(|c| *c) => return Gathered::End,
            n = self.rx.recv_many(&mut buf, batch) => if n == 0 { return Gathered::End },
            () = sleep_until(sweep_at) => return Gathered::Sweep,
        }
        let deadline = Instant::now() + self.cfg.flush_interval;
        while buf.len() < batch {
            let room = batch - buf.len();
            tokio::select! {
                biased;
                _ = closing.wait_for(|c| *c) => break,
                n = self.rx.recv_many(&mut buf, room) => if n == 0 { break },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        Gathered::Rows(buf)
    }

    /// Writes what is left in the queue, in batches, within `flush_timeout`.
    async fn drain(&mut self) {
        let limit = Instant::now() + self.cfg.flush_timeout;
        self.give_up.get_or_insert(limit);
        loop {
            let mut buf = Vec::new();
            while buf.len() < self.cfg.batch_size.max(1) {
                match self.rx.try_recv() {
                    Ok(row) => buf.push(row),
                    Err(_) => break,
                }
            }
            if buf.is_empty() {
                return;
            }
            self.write(buf).await;
            if self.past_give_up() {
                return;
            }
        }
    }

    /// Writes one batch: plans first, then one insert; a lost connection
    /// is reopened and the batch tried again, a rejected batch is counted.
    async fn write(&mut self, rows: Vec<SlowRow>) {
        Shared::add(&self.shared.in_hand, rows.len());
        let mut planned: Vec<Planned> = rows
            .into_iter()
            .map(|row| Planned {
                row,
                plan: None,
                findings: None,
            })
            .collect();
        let n = planned.len();
        loop {
            if !self.connect().await {
                self.settle(n, &self.shared.dropped);
                return;
            }
            let Some(s) = &self.session else { continue };
            if let Some(sampler) = &mut self.sampler {
                sampler
                    .plan_all(&s.client, &mut planned, &self.shared)
                    .await;
            }
            match self.insert(&planned).await {
                Ok(()) => {
                    self.settle(n, &self.shared.written);
                    self.shared.batches.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(e) if e.is_closed() || self.session_closed() => {
                    self.lost(&format!(
                        "slow-query table write: {}",
                        crate::PgError::from(e)
                    ));
                }
                Err(e) if is_undefined_table(&e) => {
                    // Dropped under us: set it up again on the next connect.
                    self.lost("the slow-query table was dropped; creating it again");
                }
                Err(e) => {
                    let e = crate::PgError::from(e);
                    self.note(&format!("slow-query table write rejected: {e}"));
                    self.settle(n, &self.shared.failed);
                    self.shared.failed_batches.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }

    /// `n` rows in hand leave it, counted in `counter`.
    fn settle(&self, n: usize, counter: &std::sync::atomic::AtomicU64) {
        Shared::add(counter, n);
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        let _ = self
            .shared
            .in_hand
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                Some(h.saturating_sub(n))
            });
    }

    async fn insert(&self, batch: &[Planned]) -> Result<(), tokio_postgres::Error> {
        let Some(s) = &self.session else {
            return Ok(());
        };
        let c = Columns::of(batch);
        // Unnamed, typed: one round trip, and PgBouncer-safe.
        let params: [(&(dyn ToSql + Sync), Type); 13] = [
            (&c.at, Type::TIMESTAMPTZ_ARRAY),
            (&c.duration_ms, Type::FLOAT8_ARRAY),
            (&c.fingerprint, Type::TEXT_ARRAY),
            (&c.query, Type::TEXT_ARRAY),
            (&c.rows, Type::INT8_ARRAY),
            (&c.sqlstate, Type::TEXT_ARRAY),
            (&c.class, Type::TEXT_ARRAY),
            (&c.call_site, Type::TEXT_ARRAY),
            (&c.params, Type::TEXT_ARRAY),
            (&c.plan, Type::JSONB_ARRAY),
            (&c.findings, Type::JSONB_ARRAY),
            (&self.link.application_name, Type::TEXT),
            (&self.link.database, Type::TEXT),
        ];
        s.client
            .execute_typed(&self.name.insert_sql(), &params)
            .await?;
        Ok(())
    }

    /// Deletes rows past the retention, then schedules the next sweep.
    async fn sweep(&mut self) {
        self.next_sweep = Some(Instant::now() + self.cfg.retention_interval);
        let Some(s) = &self.session else { return };
        let days = i32::try_from(self.cfg.retention_days).unwrap_or(i32::MAX);
        let sql = self.name.retention_sql();
        match s.client.execute_typed(&sql, &[(&days, Type::INT4)]).await {
            Ok(n) => {
                self.shared.expired.fetch_add(n, Ordering::Relaxed);
                tracing::debug!(
                    deleted = n,
                    "lido-postgres: slow-query table retention sweep"
                );
            }
            Err(e) => self.lost(&format!(
                "slow-query table retention sweep: {}",
                crate::PgError::from(e)
            )),
        }
    }

    /// The session failed: note why, drop it (the next write reconnects).
    fn lost(&mut self, why: &str) {
        self.note(why);
        self.session = None;
        self.shared.connected.store(false, Ordering::Relaxed);
    }

    /// Keeps `why` as the last error and warns (rate-limited).
    fn note(&mut self, why: &str) {
        *self.shared.last_error.lock() = Some(why.to_owned());
        if self.warn.due() {
            let s = &self.shared;
            tracing::warn!(
                target: "lido::slow_query",
                dropped = s.dropped.load(Ordering::Relaxed),
                queued = s.queued.load(Ordering::Relaxed),
                "lido-postgres: {why}"
            );
        }
    }

    /// Makes sure a session with the table set up is open, retrying with
    /// backoff; `false` once past the give-up time (closing).
    async fn connect(&mut self) -> bool {
        loop {
            if let Some(s) = &self.session {
                if !s.client.is_closed() {
                    return true;
                }
                self.lost("the slow-query table's connection closed");
            }
            if (self.closing() || self.rx.is_closed()) && self.give_up.is_none() {
                self.give_up = Some(Instant::now() + self.cfg.flush_timeout);
            }
            if self.past_give_up() {
                return false;
            }
            if !self.backoff.is_zero() {
                self.wait_backoff().await;
            }
            self.backoff = (self.backoff * 2).clamp(
                Duration::from_millis(100),
                self.cfg.reconnect_max.max(Duration::from_millis(100)),
            );
            match self.open().await {
                Ok(session) => {
                    self.session = Some(session);
                    self.backoff = Duration::ZERO;
                    self.shared.connected.store(true, Ordering::Relaxed);
                    self.shared.connects.fetch_add(1, Ordering::Relaxed);
                    if self.cfg.retention_days > 0 && self.next_sweep.is_none() {
                        self.next_sweep = Some(Instant::now());
                    }
                    return true;
                }
                Err(why) => self.note(&why),
            }
        }
    }

    async fn wait_backoff(&self) {
        let mut wait = self.backoff;
        if let Some(t) = self.give_up {
            wait = wait.min(t.saturating_duration_since(Instant::now()));
        }
        tokio::time::sleep(wait).await;
    }

    /// Opens a session on the pool's servers and sets the table up.
    async fn open(&self) -> Result<Session, String> {
        let opened = self
            .link
            .plan
            .open(&self.link.tls, &mut ())
            .await
            .map_err(|e| format!("slow-query table connect: {e}"))?;
        let session = Session {
            client: opened.client,
            io: opened.io,
        };
        self.name
            .setup(&session.client, self.cfg.create)
            .await
            .map_err(|e| e.to_string())?;
        Ok(session)
    }
}

/// Sleeps until `at`; never, for `None`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

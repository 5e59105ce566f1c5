//! The pools under test: lido, and the peers' managers rebuilt on rusqlite 0.41.1.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool::Runtime;
use deadpool_sync::SyncWrapper;
use lido_sqlite::rusqlite::{self, Connection, ErrorCode, OpenFlags, TransactionBehavior};
use lido_sqlite::{Mode, SqlitePool};

use crate::BoxError;

const ROWS_SEEDED: i64 = crate::ROWS;
const COUNTERS: i64 = 100;

fn open_peer(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = Connection::open_with_flags(path, flags)?;
    c.busy_timeout(Duration::from_secs(5))?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(c)
}

/// deadpool-sqlite 0.14's manager, on rusqlite 0.41.1.
pub(crate) struct DeadpoolManager {
    path: PathBuf,
    recycle_count: AtomicI64,
}

impl managed::Manager for DeadpoolManager {
    type Type = SyncWrapper<Connection>;
    type Error = rusqlite::Error;

    async fn create(&self) -> Result<Self::Type, Self::Error> {
        let path = self.path.clone();
        SyncWrapper::new(Runtime::Tokio1, move || open_peer(&path)).await
    }

    async fn recycle(&self, conn: &mut Self::Type, _: &Metrics) -> RecycleResult<Self::Error> {
        if conn.is_mutex_poisoned() {
            return Err(RecycleError::message("mutex poisoned"));
        }
        let n = self.recycle_count.fetch_add(1, Ordering::Relaxed);
        let got: i64 = conn
            .interact(move |c| c.query_row("SELECT $1", [n], |r| r.get(0)))
            .await
            .map_err(|e| RecycleError::message(e.to_string()))??;
        if got == n {
            Ok(())
        } else {
            Err(RecycleError::message("recycle count mismatch"))
        }
    }
}

/// r2d2_sqlite 0.35's manager, on rusqlite 0.41.1.
pub(crate) struct R2d2Manager(PathBuf);

impl r2d2::ManageConnection for R2d2Manager {
    type Connection = Connection;
    type Error = rusqlite::Error;

    fn connect(&self) -> Result<Connection, rusqlite::Error> {
        open_peer(&self.0)
    }

    fn is_valid(&self, conn: &mut Connection) -> Result<(), rusqlite::Error> {
        conn.execute_batch("")
    }

    fn has_broken(&self, _: &mut Connection) -> bool {
        false
    }
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Op {
    Read,
    /// Read-modify-write in `BEGIN DEFERRED` (rusqlite's default `transaction()`).
    RmwDeferred,
    /// The same in `BEGIN IMMEDIATE`.
    RmwImmediate,
    Insert,
}

fn read(c: &Connection, key: i64) -> rusqlite::Result<()> {
    let mut stmt = c.prepare_cached("SELECT v FROM kv WHERE id = ?1")?;
    stmt.query_row([key], |r| r.get::<_, String>(0)).map(drop)
}

fn rmw(c: &Connection, key: i64) -> rusqlite::Result<()> {
    let id = key % COUNTERS;
    let n: i64 = c.query_row("SELECT n FROM counters WHERE id = ?1", [id], |r| r.get(0))?;
    c.execute("UPDATE counters SET n = ?1 WHERE id = ?2", [n + 1, id])
        .map(drop)
}

fn insert(c: &Connection, key: i64) -> rusqlite::Result<()> {
    c.execute("INSERT INTO log(k) VALUES (?1)", [key]).map(drop)
}

/// What a peer runs for `op`, on a connection it leased.
fn run_op(c: &mut Connection, op: Op, key: i64) -> rusqlite::Result<()> {
    match op {
        Op::Read => read(c, key),
        Op::Insert => insert(c, key),
        Op::RmwDeferred | Op::RmwImmediate => {
            let behavior = if op == Op::RmwDeferred {
                TransactionBehavior::Deferred
            } else {
                TransactionBehavior::Immediate
            };
            let tx = c.transaction_with_behavior(behavior)?;
            rmw(&tx, key)?;
            tx.commit()
        }
    }
}

#[derive(Clone)]
pub(crate) enum Peer {
    Lido(SqlitePool),
    Deadpool(managed::Pool<DeadpoolManager>),
    R2d2(r2d2::Pool<R2d2Manager>),
}

pub(crate) enum Failure {
    Busy,
    Other,
}

fn busy_code(code: Option<ErrorCode>) -> Failure {
    match code {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Failure::Busy,
        _ => Failure::Other,
    }
}

fn sqlite_failure(e: &rusqlite::Error) -> Failure {
    busy_code(e.sqlite_error_code())
}

impl Peer {
    pub(crate) async fn op(&self, op: Op, key: i64) -> Result<(), Failure> {
        match self {
            Self::Lido(db) => {
                let r = match op {
                    Op::Read => db.read(move |c| read(c, key)).await,
                    Op::Insert => db.write(move |c| insert(c, key)).await,
                    Op::RmwDeferred => db.transaction(Mode::Deferred, move |tx| rmw(tx, key)).await,
                    Op::RmwImmediate => {
                        db.transaction(Mode::Immediate, move |tx| rmw(tx, key))
                            .await
                    }
                };
                r.map_err(|e| busy_code(e.sqlite_code()))
            }
            Self::Deadpool(pool) => {
                let conn = pool.get().await.map_err(|_| Failure::Other)?;
                let r = conn.interact(move |c| run_op(c, op, key)).await;
                r.map_err(|_| Failure::Other)?
                    .map_err(|e| sqlite_failure(&e))
            }
            Self::R2d2(pool) => {
                let pool = pool.clone();
                let r = tokio::task::spawn_blocking(move || {
                    let mut conn = pool.get().map_err(|_| Failure::Other)?;
                    run_op(&mut conn, op, key).map_err(|e| sqlite_failure(&e))
                })
                .await;
                r.map_err(|_| Failure::Other)?
            }
        }
    }
}

fn seed_db(path: &Path) -> rusqlite::Result<()> {
    let mut c = open_peer(path)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS kv(id INTEGER PRIMARY KEY, v TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS counters(id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS log(id INTEGER PRIMARY KEY, k INTEGER NOT NULL);",
    )?;
    let tx = c.transaction()?;
    for id in 1..=ROWS_SEEDED {
        tx.execute(
            "INSERT OR REPLACE INTO kv VALUES (?1, ?2)",
            rusqlite::params![id, format!("value-{id:08}")],
        )?;
    }
    for id in 0..COUNTERS {
        tx.execute("INSERT OR REPLACE INTO counters VALUES (?1, 0)", [id])?;
    }
    tx.commit()
}

pub(crate) async fn build_peers(
    dir: &Path,
    readers: usize,
) -> Result<Vec<(&'static str, Peer)>, BoxError> {
    let path = |name: &str| -> Result<PathBuf, BoxError> {
        let p = dir.join(format!("{name}.db"));
        seed_db(&p)?;
        Ok(p)
    };
    let lido = SqlitePool::file(path("lido")?)
        .readers(readers)
        .acquire_timeout(Duration::from_secs(30))
        .build()
        .await?;
    let manager = DeadpoolManager {
        path: path("deadpool")?,
        recycle_count: AtomicI64::new(0),
    };
    let deadpool = managed::Pool::builder(manager)
        .max_size(readers + 1)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(30)))
        .build()?;
    let r2d2_path = path("r2d2")?;
    let max = u32::try_from(readers + 1)?;
    let r2d2 = tokio::task::spawn_blocking(move || {
        r2d2::Pool::builder()
            .max_size(max)
            .connection_timeout(Duration::from_secs(30))
            .build(R2d2Manager(r2d2_path))
    })
    .await??;
    Ok(vec![
        ("lido", Peer::Lido(lido)),
        ("deadpool*", Peer::Deadpool(deadpool)),
        ("r2d2*", Peer::R2d2(r2d2)),
    ])
}

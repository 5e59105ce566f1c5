//! The embedded default: a SQLite database in a temp directory (or a given
//! file), seeded with a `lido_bench_orders` table (its own name, so a
//! `sqlite:PATH` database's tables are never touched), driven by a mixed
//! read/write workload.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lido_sqlite::rusqlite::Error;
use lido_sqlite::{Mode, SqlitePool};

use crate::bench::target::{BenchPool, BenchTarget, BoxFut, OpError};

/// Customers and orders the seed creates.
const CUSTOMERS: i64 = 1_000;
const ORDERS: i64 = 20_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS lido_bench_orders (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    total_cents INTEGER NOT NULL,
    created_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS lido_bench_orders_by_customer
    ON lido_bench_orders(customer_id, created_at);
";

const READ: &str = "SELECT id, status, total_cents FROM lido_bench_orders \
                    WHERE customer_id = ?1 ORDER BY created_at DESC LIMIT 10";
const WRITE: &str =
    "INSERT INTO lido_bench_orders(customer_id, status, total_cents) VALUES (?1, 'new', ?2)";

/// `lido bench` on SQLite.
pub struct SqliteTarget {
    path: PathBuf,
    /// Keeps the temporary directory alive for the run.
    _dir: Option<tempfile::TempDir>,
    query: Option<String>,
}

impl SqliteTarget {
    /// The embedded default: a fresh database in a temporary directory.
    pub fn embedded(query: Option<String>) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("lido-bench-")
            .tempdir()
            .map_err(|e| {
                format!("cannot create a temporary directory for the embedded SQLite database: {e}")
            })?;
        Ok(Self {
            path: dir.path().join("bench.db"),
            _dir: Some(dir),
            query,
        })
    }

    /// A database file the user named (`sqlite:PATH`).
    pub fn file(path: PathBuf, query: Option<String>) -> Self {
        Self {
            path,
            _dir: None,
            query,
        }
    }

    async fn open_pool(&self, readers: usize) -> Result<SqlitePool, String> {
        SqlitePool::file(&self.path)
            .readers(readers)
            .acquire_timeout(Duration::from_secs(5))
            .build()
            .await
            .map_err(|e| format!("opening {}: {e}", self.path.display()))
    }
}

async fn seed(pool: &SqlitePool) -> Result<(), String> {
    pool.transaction(Mode::Immediate, |tx| {
        tx.execute_batch(SCHEMA)?;
        let have: i64 = tx.query_row("SELECT count(*) FROM lido_bench_orders", [], |r| r.get(0))?;
        let mut insert = tx.prepare(WRITE)?;
        for i in have..ORDERS {
            insert.execute((i % CUSTOMERS, (i * 7919) % 100_000))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| format!("seeding the benchmark table: {e}"))
}

impl BenchTarget for SqliteTarget {
    fn describe(&self) -> String {
        match &self._dir {
            Some(_) => "embedded SQLite (temporary file, WAL, 20,000 orders)".to_owned(),
            None if self.query.is_some() => {
                format!("SQLite file {} (custom query)", self.path.display())
            }
            None => format!(
                "SQLite file {} (table lido_bench_orders, 20,000 orders)",
                self.path.display()
            ),
        }
    }

    fn wait_means(&self) -> &'static str {
        "time until the statement starts: reader lease for reads, writer-lane queue for writes"
    }

    fn size_means(&self) -> Option<&'static str> {
        Some(
            "for SQLite the size, and so the recommendation, is the number of read \
             connections (SqlitePool readers(n)); every write goes through the single \
             writer lane, one connection more",
        )
    }

    fn prepare(&self) -> BoxFut<'_, Result<(), String>> {
        Box::pin(async move {
            if self.query.is_some() && self._dir.is_none() {
                return Ok(()); // the user's database and statement: leave it as it is
            }
            let pool = self.open_pool(1).await?;
            seed(&pool).await?;
            pool.close(Duration::from_secs(5)).await;
            Ok(())
        })
    }

    fn open(&self, size: usize) -> BoxFut<'_, Result<Arc<dyn BenchPool>, String>> {
        Box::pin(async move {
            let pool = self.open_pool(size).await?;
            let bench: Arc<dyn BenchPool> = Arc::new(SqliteBench {
                pool,
                query: self.query.clone().map(Arc::from),
            });
            Ok(bench)
        })
    }
}

struct SqliteBench {
    pool: SqlitePool,
    query: Option<Arc<str>>,
}

fn classify(e: lido_sqlite::Error) -> OpError {
    if e.is_timeout() {
        OpError::AcquireTimeout
    } else {
        OpError::Other(e.to_string())
    }
}

/// Drains a query's rows.
fn drain(stmt: &mut lido_sqlite::rusqlite::Statement<'_>, key: Option<i64>) -> Result<(), Error> {
    let mut rows = match key {
        Some(k) => stmt.query([k])?,
        None => stmt.query([])?,
    };
    while rows.next()?.is_some() {}
    Ok(())
}

impl SqliteBench {
    /// One operation; the wait is the time until its closure starts: reader
    /// lease (and the hop to a blocking thread) for reads, the writer-lane
    /// queue for writes.
    async fn run(&self, write: bool) -> lido_sqlite::Result<Duration> {
        let key = fastrand::i64(0..CUSTOMERS);
        let started = Instant::now();
        if write && self.query.is_none() {
            let cents = fastrand::i64(100..100_000);
            return self
                .pool
                .write(move |c| {
                    let waited = started.elapsed();
                    c.prepare_cached(WRITE)?.execute((key, cents))?;
                    Ok(waited)
                })
                .await;
        }
        let query = self.query.clone();
        self.pool
            .read(move |c| {
                let waited = started.elapsed();
                match &query {
                    Some(q) => drain(&mut *c.prepare_cached(q)?, None)?,
                    None => drain(&mut *c.prepare_cached(READ)?, Some(key))?,
                }
                Ok(waited)
            })
            .await
    }
}

impl BenchPool for SqliteBench {
    fn op(&self, write: bool) -> BoxFut<'_, Result<Duration, OpError>> {
        Box::pin(async move { self.run(write).await.map_err(classify) })
    }

    fn close(&self) -> BoxFut<'_, ()> {
        Box::pin(async move {
            self.pool.close(Duration::from_secs(5)).await;
        })
    }
}

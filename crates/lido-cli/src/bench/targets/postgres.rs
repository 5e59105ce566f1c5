//! PostgreSQL through lido-postgres's `PgPool`: a `lido_bench_orders` table
//! (the same shape as the SQLite one) created and seeded in the given
//! database, driven by the same mixed read/write workload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lido_postgres::{PgConfig, PgError, PgPool};

use crate::bench::target::{BenchPool, BenchTarget, BoxFut, OpError};
use crate::util::chain;

/// Customers and orders the seed creates.
const CUSTOMERS: i64 = 1_000;

/// Creates the table and tops it up to 20,000 rows; the advisory lock keeps
/// two benchmarks seeding the same database at once from doubling the rows.
const SEED: &str = "
BEGIN;
SELECT pg_advisory_xact_lock(74116);
CREATE TABLE IF NOT EXISTS lido_bench_orders (
    id          bigserial   PRIMARY KEY,
    customer_id bigint      NOT NULL,
    status      text        NOT NULL,
    total_cents bigint      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS lido_bench_orders_by_customer
    ON lido_bench_orders(customer_id, created_at);
INSERT INTO lido_bench_orders(customer_id, status, total_cents)
    SELECT i % 1000, 'new', (i * 7919) % 100000
    FROM generate_series((SELECT count(*) FROM lido_bench_orders), 19999) AS i;
COMMIT;
ANALYZE lido_bench_orders;
";

const READ: &str = "SELECT id, status, total_cents FROM lido_bench_orders \
                    WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 10";
const WRITE: &str =
    "INSERT INTO lido_bench_orders(customer_id, status, total_cents) VALUES ($1, 'new', $2)";

/// `lido bench --url postgres://…`.
pub struct PgTarget {
    config: PgConfig,
    query: Option<String>,
}

impl PgTarget {
    /// A target on `config`; `query` replaces the built-in workload.
    pub fn new(config: PgConfig, query: Option<String>) -> Self {
        Self { config, query }
    }

    async fn open_pool(&self, size: usize) -> Result<PgPool, String> {
        PgPool::builder(self.config.clone())
            .application_name("lido bench")
            .max_size(size)
            .min_idle(size)
            .acquire_timeout(Duration::from_secs(5))
            .build()
            .await
            .map_err(|e| format!("opening a pool of {size} on {}: {}", self.config, chain(&e)))
    }
}

impl BenchTarget for PgTarget {
    fn describe(&self) -> String {
        match &self.query {
            Some(_) => format!("PostgreSQL {} (custom query)", self.config),
            None => format!(
                "PostgreSQL {} (table lido_bench_orders, 20,000 orders)",
                self.config
            ),
        }
    }

    fn wait_means(&self) -> &'static str {
        "time waiting in the pool's get() for a connection"
    }

    fn prepare(&self) -> BoxFut<'_, Result<(), String>> {
        Box::pin(async move {
            // Lazy, so a failed connect reports its cause (not only "warm-up failed").
            let pool = PgPool::builder(self.config.clone())
                .application_name("lido bench")
                .max_size(1)
                .build_lazy()
                .map_err(|e| format!("setting up a pool on {}: {}", self.config, chain(&e)))?;
            let result = seed(&pool, self.query.is_none()).await;
            pool.close(Duration::from_secs(5)).await;
            result
        })
    }

    fn open(&self, size: usize) -> BoxFut<'_, Result<Arc<dyn BenchPool>, String>> {
        Box::pin(async move {
            let pool = self.open_pool(size).await?;
            let bench: Arc<dyn BenchPool> = Arc::new(PgBench {
                pool,
                query: self.query.clone().map(Arc::from),
            });
            Ok(bench)
        })
    }
}

/// Connects once (so connection errors surface before the sweep) and, for
/// the built-in workload, creates and seeds the table. A custom `--query`
/// runs on the user's own tables: nothing is created then.
async fn seed(pool: &PgPool, create: bool) -> Result<(), String> {
    let conn = pool
        .get()
        .await
        .map_err(|e| format!("cannot connect: {}", chain(&e)))?;
    if !create {
        return Ok(());
    }
    conn.no_timeout()
        .batch_execute(SEED)
        .await
        .map_err(|e| format!("creating and seeding lido_bench_orders: {}", chain(&e)))
}

struct PgBench {
    pool: PgPool,
    query: Option<Arc<str>>,
}

fn classify(e: PgError) -> OpError {
    match &e {
        PgError::Pool(p) if p.is_timeout() => OpError::AcquireTimeout,
        _ => OpError::Other(chain(&e)),
    }
}

impl PgBench {
    async fn run(&self, write: bool) -> Result<Duration, PgError> {
        let started = Instant::now();
        let conn = self.pool.get().await?;
        let waited = started.elapsed();
        let key = fastrand::i64(0..CUSTOMERS);
        if let Some(q) = &self.query {
            conn.query(&**q, &[]).await?;
        } else if write {
            let cents = fastrand::i64(100..100_000);
            conn.execute(WRITE, &[&key, &cents]).await?;
        } else {
            conn.query(READ, &[&key]).await?;
        }
        Ok(waited)
    }
}

impl BenchPool for PgBench {
    fn op(&self, write: bool) -> BoxFut<'_, Result<Duration, OpError>> {
        Box::pin(async move { self.run(write).await.map_err(classify) })
    }

    fn close(&self) -> BoxFut<'_, ()> {
        Box::pin(async move {
            self.pool.close(Duration::from_secs(5)).await;
        })
    }
}

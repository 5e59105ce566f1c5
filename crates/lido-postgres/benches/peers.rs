//! lido-postgres beside deadpool-postgres, bb8-postgres, sqlx and raw
//! tokio-postgres clients (one owned per task), on one throwaway server.
//!
//! `cargo bench -p lido-postgres --features peers-bench --bench peers`
//! Environment: `LIDO_BENCH_SECS` (measured seconds per cell, default 1.2),
//! `LIDO_BENCH_TASKS` (comma list, default 16,64,256).
//! `LIDO_BENCH_LAYERS=all` (or `short`: lido, lido's core around plain
//! tokio-postgres clients, and deadpool) runs the layer table instead
//! (`layers.rs`): lido with one layer turned off at a time beside lido's
//! core alone (`core_plain.rs`) and deadpool-postgres, in
//! `LIDO_BENCH_ROUNDS` interleaved rounds (default 5), each round shown,
//! and the median ratio.
//!
//! The machine is shared by client and server, so figures move with
//! anything else running; compare within one run.
//!
//! Every pool has 16 connections. How each one runs a parameterized query
//! the way its users usually do: raw and deadpool use prepared statements
//! (deadpool's `prepare_cached`), bb8 passes SQL text (tokio-postgres
//! prepares and closes a statement per call), sqlx uses its own statement
//! cache, lido runs with its cache (default) and without it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use lido_postgres::{PgConfig, PgPool};
use lido_testkit::PgServer;
use tokio::time::Instant;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};

#[path = "peers/core_plain.rs"]
mod core_plain;
#[path = "peers/layers.rs"]
mod layers;

const POOL: usize = 16;
const ROWS: i32 = 10_000;

#[derive(Clone, Copy, PartialEq)]
enum Query {
    Select1,
    Lookup,
}

impl Query {
    fn sql(self) -> &'static str {
        match self {
            Query::Select1 => "SELECT 1",
            Query::Lookup => "SELECT v FROM kv WHERE id = $1",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Query::Select1 => "SELECT 1",
            Query::Lookup => "indexed lookup (SELECT v FROM kv WHERE id = $1)",
        }
    }
}

struct Sample {
    ops: u64,
    errors: u64,
    secs: f64,
    lat_us: Vec<u32>,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }
    fn pct(&self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.lat_us.len() - 1) as f64 * p).round() as usize;
        f64::from(self.lat_us[i])
    }
}

/// `tasks` tasks call `op(task, key)` in a loop: warm-up, then `dur` measured.
async fn run<F, Fut>(tasks: usize, dur: Duration, op: F) -> Sample
where
    F: Fn(usize, i32) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let warm_until = Instant::now() + Duration::from_millis(300);
    let start = warm_until;
    let end = start + dur;
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let op = op.clone();
        set.spawn(async move {
            let (mut ops, mut errors, mut lat) = (0u64, 0u64, Vec::with_capacity(4096));
            loop {
                let key = fastrand::i32(1..=ROWS);
                let began = Instant::now();
                let ok = op(t, key).await;
                let now = Instant::now();
                if now >= end {
                    break;
                }
                if began >= start {
                    ops += 1;
                    errors += u64::from(!ok);
                    lat.push(u32::try_from((now - began).as_micros()).unwrap_or(u32::MAX));
                }
            }
            (ops, errors, lat)
        });
    }
    let mut s = Sample {
        ops: 0,
        errors: 0,
        secs: dur.as_secs_f64(),
        lat_us: Vec::new(),
    };
    while let Some(Ok((ops, errors, lat))) = set.join_next().await {
        s.ops += ops;
        s.errors += errors;
        s.lat_us.extend(lat);
    }
    s.lat_us.sort_unstable();
    s
}

async fn raw_clients(
    cfg: &tokio_postgres::Config,
    n: usize,
    q: Query,
) -> Arc<Vec<(Client, Statement)>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let (client, conn) = cfg.connect(NoTls).await.expect("raw connect");
        tokio::spawn(conn);
        let st = client.prepare(q.sql()).await.expect("prepare");
        v.push((client, st));
    }
    Arc::new(v)
}

struct Peers {
    pub(crate) url: String,
    tp: tokio_postgres::Config,
    lido: PgPool,
    lido_nocache: PgPool,
    pub(crate) deadpool: deadpool_postgres::Pool,
    bb8: bb8::Pool<bb8_postgres::PostgresConnectionManager<NoTls>>,
    sqlx: sqlx::PgPool,
}

fn lido_builder(url: &str) -> lido_postgres::PgPoolBuilder {
    PgPool::builder(PgConfig::parse(url).expect("url"))
        .max_size(POOL)
        .min_idle(POOL)
}

async fn lido_pool(url: &str, cache: usize) -> PgPool {
    lido_builder(url)
        .statement_cache(cache)
        .build()
        .await
        .expect("lido pool")
}

/// One lido call: `get()`, then `query_one` with the SQL text.
async fn lido_call(pool: &PgPool, q: Query, key: i32) -> bool {
    let one = [&key as &(dyn ToSql + Sync)];
    let p: &[&(dyn ToSql + Sync)] = if q == Query::Lookup { &one } else { &[] };
    let Ok(c) = pool.get().await else {
        return false;
    };
    c.query_one(q.sql(), p).await.is_ok()
}

/// One deadpool-postgres call: `get()`, `prepare_cached`, `query_one`.
async fn deadpool_call(pool: &deadpool_postgres::Pool, q: Query, key: i32) -> bool {
    let one = [&key as &(dyn ToSql + Sync)];
    let p: &[&(dyn ToSql + Sync)] = if q == Query::Lookup { &one } else { &[] };
    let Ok(c) = pool.get().await else {
        return false;
    };
    let Ok(st) = c.prepare_cached(q.sql()).await else {
        return false;
    };
    c.query_one(&st, p).await.is_ok()
}

impl Peers {
    async fn new(url: String) -> Self {
        let tp: tokio_postgres::Config = url.parse().expect("tokio-postgres config");
        let mgr = deadpool_postgres::Manager::from_config(
            tp.clone(),
            NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let deadpool = deadpool_postgres::Pool::builder(mgr)
            .max_size(POOL)
            .build()
            .expect("deadpool");
        let bb8 = bb8::Pool::builder()
            .max_size(u32::try_from(POOL).unwrap_or(16))
            .build(bb8_postgres::PostgresConnectionManager::new(
                tp.clone(),
                NoTls,
            ))
            .await
            .expect("bb8");
        let sqlx = sqlx::postgres::PgPoolOptions::new()
            .max_connections(u32::try_from(POOL).unwrap_or(16))
            .connect(&url)
            .await
            .expect("sqlx");
        Self {
            lido: lido_pool(&url, 256).await,
            lido_nocache: lido_pool(&url, 0).await,
            url,
            tp,
            deadpool,
            bb8,
            sqlx,
        }
    }

    async fn cell(&self, name: &str, tasks: usize, q: Query, dur: Duration) -> Sample {
        match name {
            "raw tokio-postgres" => {
                let clients = raw_clients(&self.tp, tasks, q).await;
                run(tasks, dur, move |t, key| {
                    let clients = Arc::clone(&clients);
                    async move {
                        let (c, st) = &clients[t];
                        match q {
                            Query::Select1 => c.query_one(st, &[]).await.is_ok(),
                            Query::Lookup => c.query_one(st, &[&key]).await.is_ok(),
                        }
                    }
                })
                .await
            }
            "lido" | "lido (no stmt cache)" => {
                let pool = if name == "lido" {
                    self.lido.clone()
                } else {
                    self.lido_nocache.clone()
                };
                run(tasks, dur, move |_, key| {
                    let pool = pool.clone();
                    async move { lido_call(&pool, q, key).await }
                })
                .await
            }
            "deadpool-postgres" => {
                let pool = self.deadpool.clone();
                run(tasks, dur, move |_, key| {
                    let pool = pool.clone();
                    async move { deadpool_call(&pool, q, key).await }
                })
                .await
            }
            "bb8-postgres" => {
                let pool = self.bb8.clone();
                run(tasks, dur, move |_, key| {
                    let pool = pool.clone();
                    async move {
                        let one = [&key as &(dyn ToSql + Sync)];
                        let p: &[&(dyn ToSql + Sync)] = if q == Query::Lookup { &one } else { &[] };
                        let Ok(c) = pool.get().await else {
                            return false;
                        };
                        c.query_one(q.sql(), p).await.is_ok()
                    }
                })
                .await
            }
            _ => {
                let pool = self.sqlx.clone();
                run(tasks, dur, move |_, key| {
                    let pool = pool.clone();
                    async move {
                        let query = sqlx::query_scalar::<_, i32>(q.sql());
                        let query = if q == Query::Lookup {
                            query.bind(key)
                        } else {
                            query
                        };
                        query.fetch_one(&pool).await.is_ok()
                    }
                })
                .await
            }
        }
    }
}

const IMPLS: [&str; 6] = [
    "raw tokio-postgres",
    "lido",
    "lido (no stmt cache)",
    "deadpool-postgres",
    "bb8-postgres",
    "sqlx 0.8",
];

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dur = Duration::from_secs_f64(env_or("LIDO_BENCH_SECS", 1.2));
    let tasks: Vec<usize> = std::env::var("LIDO_BENCH_TASKS")
        .unwrap_or_else(|_| "16,64,256".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let began = Instant::now();
    let server = PgServer::builder()
        .tls(false)
        .max_connections(400)
        .start()?;
    let db = server.create_database()?;
    server.psql(
        &db,
        &format!(
            "CREATE TABLE kv (id int PRIMARY KEY, v int NOT NULL); \
             INSERT INTO kv SELECT g, g * 2 FROM generate_series(1, {ROWS}) g; ANALYZE kv;"
        ),
    )?;
    let peers = Peers::new(server.url(&db)).await;
    if let Ok(which) = std::env::var("LIDO_BENCH_LAYERS") {
        let rounds = env_or("LIDO_BENCH_ROUNDS", 5);
        layers::run_all(&peers, &which, &tasks, rounds, dur).await;
        println!("total {:.0} s", began.elapsed().as_secs_f64());
        return Ok(());
    }
    let _ = &peers.url;
    println!(
        "pool size {POOL}, {:.1} s measured per cell after 0.3 s warm-up, {} CPU(s) shared by client and server\n",
        dur.as_secs_f64(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    for q in [Query::Select1, Query::Lookup] {
        println!("## {}\n", q.name());
        println!(
            "| tasks | implementation | ops/s | p50 µs | p99 µs | vs raw | lido ÷ this | errors |"
        );
        println!("|---:|---|---:|---:|---:|---:|---:|---:|");
        let mut ratios = Vec::new();
        for &n in &tasks {
            let mut rows = Vec::new();
            for name in IMPLS {
                rows.push((name, peers.cell(name, n, q, dur).await));
                // Let the server reap the raw clients' backends before the next cell.
                let settle = if name.starts_with("raw") { 1000 } else { 200 };
                tokio::time::sleep(Duration::from_millis(settle)).await;
            }
            let raw = rows[0].1.rate();
            let lido = rows[1].1.rate();
            for (name, s) in &rows {
                println!(
                    "| {n} | {name} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} | {} |",
                    s.rate(),
                    s.pct(0.50),
                    s.pct(0.99),
                    s.rate() / raw,
                    lido / s.rate(),
                    s.errors
                );
            }
            let best = rows[3..]
                .iter()
                .max_by(|a, b| a.1.rate().total_cmp(&b.1.rate()))
                .map_or(("none", f64::NAN), |(name, s)| (*name, s.rate()));
            ratios.push(format!(
                "- {n} tasks: lido/raw {:.2}, lido/best peer ({}) {:.2}, lido with/without statement cache {:.2}",
                lido / raw,
                best.0,
                lido / best.1,
                lido / rows[2].1.rate()
            ));
        }
        println!("\n{}\n", ratios.join("\n"));
    }
    println!("total {:.0} s", began.elapsed().as_secs_f64());
    Ok(())
}

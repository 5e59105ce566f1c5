//! lido-sqlite beside its peers, in one run, on rusqlite 0.41.1.
//!
//! The peer crates cannot be linked into this build: every published
//! version depends on an older rusqlite, whose `libsqlite3-sys` declares
//! `links = "sqlite3"` like the 0.39 that rusqlite 0.41.1 needs, and Cargo
//! allows one crate per `links` name in a build. Checked on crates.io
//! (index, 2026): `deadpool-sqlite` 0.14.0 (latest) needs rusqlite ^0.40
//! (libsqlite3-sys ^0.38), 0.13.0 ^0.38, 0.12.x ^0.37; `r2d2_sqlite` 0.35.0
//! (latest) needs rusqlite ^0.40, 0.33–0.34 ^0.39, 0.32 ^0.38. None uses
//! rusqlite 0.41 (libsqlite3-sys 0.39). So the peers here are their managers
//! rebuilt faithfully on rusqlite 0.41.1:
//!
//! * `deadpool*`: deadpool 0.13 + deadpool-sync 0.2 with deadpool-sqlite
//!   0.14's manager (open on a blocking thread; on every return a
//!   `SELECT $1` round trip through `interact`); work runs via `interact`.
//! * `r2d2*`: r2d2 0.8 with r2d2_sqlite 0.35's manager (`is_valid` runs an
//!   empty batch); work runs in `spawn_blocking` around a blocking `get()`.
//!
//! Every connection uses WAL, `synchronous=NORMAL` and a 5 s busy timeout.
//! Reads are point lookups by primary key. The mixes are 90 % reads and 10 %
//! writes; the writes are a read-modify-write transaction (SELECT a counter,
//! UPDATE it) asked for as `DEFERRED` (rusqlite's default `transaction()`;
//! lido runs it as `BEGIN IMMEDIATE` on its writer lane, see `Mode`) or
//! `IMMEDIATE`, or a plain autocommit INSERT. Every pool runs the same SQL;
//! errors are counted, never retried. The `SQLITE_BUSY` column counts the
//! busy/locked errors each pool's callers saw.
//!
//! Targets: on reads lido ≥ the best peer (`reads ≥ best peer` lines); on
//! the mixes no lido caller ever sees `SQLITE_BUSY` (peers may).
//!
//! Run: `cargo bench -p lido-sqlite --bench peers`. Each cell runs
//! `LIDO_BENCH_SECS` seconds (default 1; `--secs N` also works), split in 4
//! rounds interleaved across the pools so outside load hits all alike,
//! after a warm-up; "CPU µs/op" is this process's CPU time per operation,
//! which does not depend on how busy the machine is.
//! `LIDO_BENCH_READERS` sets lido's readers (default 4; peers get one more
//! connection, matching lido's writer).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool::Runtime;
use deadpool_sync::SyncWrapper;
use lido_sqlite::rusqlite::{self, Connection, ErrorCode, OpenFlags, TransactionBehavior};
use lido_sqlite::{Mode, SqlitePool};

const ROWS: i64 = 10_000;
const ROUNDS: u32 = 4;
const COUNTERS: i64 = 100;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
struct DeadpoolManager {
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
struct R2d2Manager(PathBuf);

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
enum Op {
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
enum Peer {
    Lido(SqlitePool),
    Deadpool(managed::Pool<DeadpoolManager>),
    R2d2(r2d2::Pool<R2d2Manager>),
}

enum Failure {
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
    async fn op(&self, op: Op, key: i64) -> Result<(), Failure> {
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

#[derive(Default, Clone, Copy)]
struct Sample {
    ops: u64,
    busy: u64,
    errors: u64,
    secs: f64,
    /// Process CPU seconds (user + system) spent, when /proc tells.
    cpu: f64,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    /// CPU microseconds per operation: independent of how busy the machine is.
    fn cpu_us(&self) -> f64 {
        self.cpu * 1e6 / (self.ops.max(1) as f64)
    }

    fn add(&mut self, o: Sample) {
        self.ops += o.ops;
        self.busy += o.busy;
        self.errors += o.errors;
        self.secs += o.secs;
        self.cpu += o.cpu;
    }
}

/// This process's CPU time in seconds from /proc/self/stat (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of the file (utime, stime), in clock ticks of 1/100 s.
    (ticks(11) + ticks(12)) / 100.0
}

async fn task(peer: Peer, write_pct: u32, write: Op, until: Instant, seed: u64) -> Sample {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut s = Sample::default();
    while Instant::now() < until {
        let op = if rng.u32(0..100) < write_pct {
            write
        } else {
            Op::Read
        };
        match peer.op(op, rng.i64(1..=ROWS)).await {
            Ok(()) => s.ops += 1,
            Err(Failure::Busy) => s.busy += 1,
            Err(Failure::Other) => s.errors += 1,
        }
    }
    s
}

async fn measure(peer: &Peer, tasks: usize, write_pct: u32, write: Op, secs: f64) -> Sample {
    let cpu_start = cpu_seconds();
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..tasks)
        .map(|i| tokio::spawn(task(peer.clone(), write_pct, write, until, i as u64 + 1)))
        .collect();
    let mut total = Sample::default();
    for h in handles {
        if let Ok(s) = h.await {
            total.add(s);
        }
    }
    total.secs = started.elapsed().as_secs_f64();
    total.cpu = cpu_seconds() - cpu_start;
    total
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
    for id in 1..=ROWS {
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

async fn build_peers(dir: &Path, readers: usize) -> Result<Vec<(&'static str, Peer)>, BoxError> {
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

struct Scenario {
    name: &'static str,
    tasks: usize,
    write_pct: u32,
    write: Op,
}

const fn scenario(name: &'static str, tasks: usize, write_pct: u32, write: Op) -> Scenario {
    Scenario {
        name,
        tasks,
        write_pct,
        write,
    }
}

const SCENARIOS: [Scenario; 8] = [
    scenario("read", 1, 0, Op::Read),
    scenario("read", 4, 0, Op::Read),
    scenario("read", 16, 0, Op::Read),
    scenario("read", 64, 0, Op::Read),
    scenario("mix rmw DEFERRED", 16, 10, Op::RmwDeferred),
    scenario("mix rmw DEFERRED", 64, 10, Op::RmwDeferred),
    scenario("mix rmw IMMEDIATE", 64, 10, Op::RmwImmediate),
    scenario("mix insert", 64, 10, Op::Insert),
];

fn settings() -> (f64, usize) {
    let mut secs = std::env::var("LIDO_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0_f64);
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--secs") {
        if let Some(v) = args.get(i + 1).and_then(|s| s.parse().ok()) {
            secs = v;
        }
    }
    let readers = std::env::var("LIDO_BENCH_READERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    (secs.max(0.1), readers)
}

fn print_row(s: &Scenario, samples: &[Sample]) {
    let [lido, dp, r2] = [samples[0], samples[1], samples[2]];
    println!(
        "| {:<17} | {:>5} | {:>10.0} | {:>10.0} | {:>10.0} | {:>8.2} | {:>8.2} | {:>5.1} / {:>5.1} / {:>5.1} | {:>6} / {:>6} / {:>6} | {:>3} / {:>3} / {:>3} |",
        s.name,
        s.tasks,
        lido.rate(),
        dp.rate(),
        r2.rate(),
        lido.rate() / dp.rate().max(1e-9),
        lido.rate() / r2.rate().max(1e-9),
        lido.cpu_us(),
        dp.cpu_us(),
        r2.cpu_us(),
        lido.busy,
        dp.busy,
        r2.busy,
        lido.errors,
        dp.errors,
        r2.errors,
    );
}

/// The targets, judged on the measured samples.
fn verdict(s: &Scenario, samples: &[Sample]) -> String {
    let [lido, dp, r2] = [samples[0], samples[1], samples[2]];
    if s.write_pct == 0 {
        let best = dp.rate().max(r2.rate());
        let ok = lido.rate() >= best;
        format!(
            "reads, {} tasks: lido ≥ best peer: {} (lido/best {:.2})",
            s.tasks,
            if ok { "yes" } else { "NO" },
            lido.rate() / best.max(1e-9)
        )
    } else {
        format!(
            "{}, {} tasks: lido callers saw SQLITE_BUSY: {} (deadpool* {}, r2d2* {})",
            s.name,
            s.tasks,
            if lido.busy == 0 {
                "never".to_owned()
            } else {
                format!("{} TIMES", lido.busy)
            },
            dp.busy,
            r2.busy
        )
    }
}

async fn run() -> Result<(), BoxError> {
    let (secs, readers) = settings();
    let dir = tempfile::tempdir()?;
    let peers = build_peers(dir.path(), readers).await?;
    println!(
        "lido-sqlite peers: SQLite {}, {} CPUs, {secs} s per cell, lido {readers} readers + 1 writer, peers max_size {}",
        rusqlite::version(),
        std::thread::available_parallelism().map_or(0, usize::from),
        readers + 1
    );
    println!("(* = the peer crate's manager rebuilt on rusqlite 0.41.1; see the file header)\n");
    println!("| scenario          | tasks | lido ops/s | deadpool*  | r2d2*      | lido/dp  | lido/r2  | CPU µs/op lido/dp/r2  | SQLITE_BUSY lido/dp/r2 | other errors |");
    println!("|-------------------|------:|-----------:|-----------:|-----------:|---------:|---------:|----------------------:|-----------------------:|-------------:|");
    let mut verdicts = Vec::new();
    for s in &SCENARIOS {
        let mut samples = vec![Sample::default(); peers.len()];
        for (_, peer) in &peers {
            measure(peer, s.tasks, s.write_pct, s.write, 0.2).await; // warm-up
        }
        // Interleaved rounds, so load from elsewhere on the machine falls on every pool alike.
        for _ in 0..ROUNDS {
            for (i, (_, peer)) in peers.iter().enumerate() {
                let per_round = secs / f64::from(ROUNDS);
                samples[i].add(measure(peer, s.tasks, s.write_pct, s.write, per_round).await);
            }
        }
        print_row(s, &samples);
        verdicts.push(verdict(s, &samples));
    }
    println!("\ntargets:");
    for v in verdicts {
        println!("  {v}");
    }
    Ok(())
}

fn main() -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

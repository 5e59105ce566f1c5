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
//! `IMMEDIATE`, or a plain autocommit INSERT; `insert 1` is one task
//! inserting in a loop (every write's latency). Every pool runs the same SQL;
//! errors are counted, never retried. The `SQLITE_BUSY` column counts the
//! busy/locked errors each pool's callers saw.
//!
//! Targets: on reads lido ≥ the best peer (`reads ≥ best peer` lines); on
//! the mixes no lido caller ever sees `SQLITE_BUSY` (peers may).
//!
//! Run: `cargo bench -p lido-sqlite --bench peers`. Each cell gives every
//! pool `LIDO_BENCH_SECS` seconds (default 1; `--secs N` also works), split
//! in `LIDO_BENCH_ROUNDS` rounds (default 5) interleaved across the pools
//! (each round starts with the next pool) so outside load hits all alike,
//! after a warm-up. The table shows each pool's median ops/s over the
//! rounds and the median of the per-round ratios; every round's values
//! follow it. "CPU µs/op" is this process's CPU time per operation over all
//! rounds. `LIDO_BENCH_ONLY` runs only the scenarios with that name (`read`)
//! or name and task count (`read 64`).
//! `LIDO_BENCH_READERS` sets lido's readers (default 4; peers get one more
//! connection, matching lido's writer).
//! `LIDO_BENCH_SOLO=lido|deadpool|r2d2` runs only that pool, on the selected
//! cells, for `LIDO_BENCH_SECS` each with no peers between its rounds (for a
//! profile or `perf stat` of one pool); it prints ops/s and CPU µs/op.
#![forbid(unsafe_code)]

#[path = "peers/load.rs"]
mod load;
#[path = "peers/pools.rs"]
mod pools;

use load::{measure, Sample};
use pools::{build_peers, Op, Peer};

const ROWS: i64 = 10_000;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Scenario {
    name: &'static str,
    tasks: usize,
    write_pct: u32,
    write: Op,
}

impl Scenario {
    fn label(&self) -> String {
        format!("{} {}", self.name, self.tasks)
    }
}

const fn scenario(name: &'static str, tasks: usize, write_pct: u32, write: Op) -> Scenario {
    Scenario {
        name,
        tasks,
        write_pct,
        write,
    }
}

const SCENARIOS: [Scenario; 9] = [
    scenario("read", 1, 0, Op::Read),
    scenario("read", 4, 0, Op::Read),
    scenario("read", 16, 0, Op::Read),
    scenario("read", 64, 0, Op::Read),
    scenario("mix rmw DEFERRED", 16, 10, Op::RmwDeferred),
    scenario("mix rmw DEFERRED", 64, 10, Op::RmwDeferred),
    scenario("mix rmw IMMEDIATE", 64, 10, Op::RmwImmediate),
    scenario("mix insert", 64, 10, Op::Insert),
    // One task writing in a loop: the writer lane's latency, not its throughput.
    scenario("insert", 1, 100, Op::Insert),
];

struct Settings {
    secs: f64,
    rounds: usize,
    readers: usize,
    only: Option<String>,
    solo: Option<String>,
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

fn settings() -> Settings {
    let mut secs = env("LIDO_BENCH_SECS").unwrap_or(1.0_f64);
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--secs") {
        if let Some(v) = args.get(i + 1).and_then(|s| s.parse().ok()) {
            secs = v;
        }
    }
    Settings {
        secs: secs.max(0.1),
        rounds: env("LIDO_BENCH_ROUNDS").unwrap_or(5_usize).max(1),
        readers: env("LIDO_BENCH_READERS").unwrap_or(4),
        only: std::env::var("LIDO_BENCH_ONLY")
            .ok()
            .filter(|s| !s.is_empty()),
        solo: std::env::var("LIDO_BENCH_SOLO")
            .ok()
            .filter(|s| !s.is_empty()),
    }
}

/// One cell: `rounds[r][p]` is pool `p`'s sample in round `r`.
struct Cell {
    rounds: Vec<Vec<Sample>>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl Cell {
    fn rates(&self, pool: usize) -> Vec<f64> {
        self.rounds.iter().map(|r| r[pool].rate()).collect()
    }

    /// Per round, lido's rate over `other`'s (the best peer's when `None`).
    fn ratios(&self, other: Option<usize>) -> Vec<f64> {
        let of = |r: &[Sample]| match other {
            Some(p) => r[p].rate(),
            None => r[1].rate().max(r[2].rate()),
        };
        self.rounds
            .iter()
            .map(|r| r[0].rate() / of(r).max(1e-9))
            .collect()
    }

    fn total(&self, pool: usize) -> Sample {
        let mut t = Sample::default();
        for r in &self.rounds {
            t.add(r[pool]);
        }
        t
    }
}

fn print_row(s: &Scenario, cell: &Cell) {
    let [lido, dp, r2] = [cell.total(0), cell.total(1), cell.total(2)];
    println!(
        "| {:<17} | {:>5} | {:>10.0} | {:>10.0} | {:>10.0} | {:>8.2} | {:>8.2} | {:>5.1} / {:>5.1} / {:>5.1} | {:>6} / {:>6} / {:>6} | {:>3} / {:>3} / {:>3} |",
        s.name,
        s.tasks,
        median(cell.rates(0)),
        median(cell.rates(1)),
        median(cell.rates(2)),
        median(cell.ratios(Some(1))),
        median(cell.ratios(Some(2))),
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

fn list(v: &[f64], digits: usize) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:.digits$}")).collect();
    parts.join(" ")
}

fn print_rounds(s: &Scenario, cell: &Cell, names: &[&str]) {
    println!("{}:", s.label());
    for (p, name) in names.iter().enumerate() {
        println!("  {name:<10} ops/s {}", list(&cell.rates(p), 0));
    }
    println!("  lido/dp    {}", list(&cell.ratios(Some(1)), 2));
    println!("  lido/r2    {}", list(&cell.ratios(Some(2)), 2));
}

/// The targets, judged on the medians.
fn verdict(s: &Scenario, cell: &Cell) -> String {
    let [lido, dp, r2] = [cell.total(0), cell.total(1), cell.total(2)];
    if s.write_pct == 0 {
        let ratio = median(cell.ratios(None));
        format!(
            "reads, {} tasks: lido ≥ best peer: {} (median of per-round lido/best {:.2})",
            s.tasks,
            if ratio >= 1.0 { "yes" } else { "NO" },
            ratio
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

/// Warm-up, then `rounds` rounds, each starting with the next pool.
async fn run_cell(s: &Scenario, peers: &[(&str, Peer)], set: &Settings) -> Cell {
    for (_, peer) in peers {
        measure(peer, s.tasks, s.write_pct, s.write, 0.2).await;
    }
    let per_round = set.secs / set.rounds as f64;
    let mut rounds = Vec::with_capacity(set.rounds);
    for r in 0..set.rounds {
        let mut round = vec![Sample::default(); peers.len()];
        for k in 0..peers.len() {
            let p = (r + k) % peers.len();
            round[p] = measure(&peers[p].1, s.tasks, s.write_pct, s.write, per_round).await;
        }
        rounds.push(round);
    }
    Cell { rounds }
}

fn selected(s: &Scenario, only: Option<&str>) -> bool {
    only.is_none_or(|o| o == s.name || o == s.label())
}

async fn run() -> Result<(), BoxError> {
    let set = settings();
    let dir = tempfile::tempdir()?;
    let peers = build_peers(dir.path(), set.readers).await?;
    if let Some(name) = &set.solo {
        return solo(name, &peers, &set).await;
    }
    println!(
        "lido-sqlite peers: SQLite {}, {} CPUs, {} s per pool per cell in {} interleaved rounds, lido {} readers + 1 writer, peers max_size {}",
        rusqlite_version(),
        std::thread::available_parallelism().map_or(0, usize::from),
        set.secs,
        set.rounds,
        set.readers,
        set.readers + 1
    );
    println!("(* = the peer crate's manager rebuilt on rusqlite 0.41.1; see the file header)");
    println!("(ops/s: median over the rounds; lido/dp, lido/r2: median of the per-round ratios)\n");
    println!("| scenario          | tasks | lido ops/s | deadpool*  | r2d2*      | lido/dp  | lido/r2  | CPU µs/op lido/dp/r2  | SQLITE_BUSY lido/dp/r2 | other errors |");
    println!("|-------------------|------:|-----------:|-----------:|-----------:|---------:|---------:|----------------------:|-----------------------:|-------------:|");
    let mut cells = Vec::new();
    for s in SCENARIOS
        .iter()
        .filter(|s| selected(s, set.only.as_deref()))
    {
        let cell = run_cell(s, &peers, &set).await;
        print_row(s, &cell);
        cells.push((s, cell));
    }
    let names: Vec<&str> = peers.iter().map(|(n, _)| *n).collect();
    println!("\nrounds, in order:");
    for (s, cell) in &cells {
        print_rounds(s, cell, &names);
    }
    println!("\ntargets:");
    for (s, cell) in &cells {
        println!("  {}", verdict(s, cell));
    }
    Ok(())
}

/// One pool alone on the selected cells (`LIDO_BENCH_SOLO`).
async fn solo(name: &str, peers: &[(&str, Peer)], set: &Settings) -> Result<(), BoxError> {
    let Some((label, peer)) = peers.iter().find(|(n, _)| n.trim_end_matches('*') == name) else {
        let names: Vec<&str> = peers.iter().map(|(n, _)| n.trim_end_matches('*')).collect();
        return Err(format!("LIDO_BENCH_SOLO={name}: no such pool (one of {names:?})").into());
    };
    for s in SCENARIOS
        .iter()
        .filter(|s| selected(s, set.only.as_deref()))
    {
        measure(peer, s.tasks, s.write_pct, s.write, 0.2).await;
        let got = measure(peer, s.tasks, s.write_pct, s.write, set.secs).await;
        println!(
            "{label} {}: {:.0} ops/s, {:.1} CPU µs/op, {} SQLITE_BUSY, {} other errors",
            s.label(),
            got.rate(),
            got.cpu_us(),
            got.busy,
            got.errors
        );
    }
    Ok(())
}

fn rusqlite_version() -> &'static str {
    lido_sqlite::rusqlite::version()
}

fn main() -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

//! The fault table of issue 11: for each fault — a fast restart, a crash, a
//! 3 s outage, `pg_terminate_backend` of every session — how long after the
//! server accepts connections again the first caller is served, how many
//! calls failed and how many connects were tried from the fault's start to
//! then; lido beside deadpool-postgres and bb8-postgres (with
//! `--features peers-bench`), each with its default settings but a pool
//! size of 16, under 64 callers looping `SELECT $1::int8 + 1`, each call
//! bounded by 5 s, a caller pausing 5 ms after a failed call. Each round
//! builds fresh pools; rounds interleave the pools. Medians, with every
//! round's value, and lido/peer ratios.
//!
//! Run with: `cargo run --release -p lido-postgres --features peers-bench
//! --example faults [rounds]` (default 5; needs the PostgreSQL server
//! binaries, see lido-testkit).

mod support;

use std::time::Duration;

use lido_testkit::PgServer;

use support::faults::{round, Callers, Fault, Measured};
use support::pools::{Kind, Target};

const POOL: usize = 16;
const CALLERS: Callers = Callers {
    count: 64,
    deadline: Duration::from_secs(5),
    pause: Duration::from_millis(5),
};
const FAULTS: [Fault; 4] = [
    Fault::FastRestart,
    Fault::Crash,
    Fault::Outage(Duration::from_secs(3)),
    Fault::TerminateAll,
];

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `median (a, b, c)` with one decimal.
fn cell(values: &[f64]) -> String {
    let all: Vec<String> = values.iter().map(|v| format!("{v:.1}")).collect();
    format!("{:.1} ({})", median(values.to_vec()), all.join(", "))
}

/// `lido / peer`, or why not: a ratio to a peer median below 1 (ms or
/// count) says nothing.
fn ratio(lido: f64, peer: f64) -> String {
    if peer >= 1.0 {
        format!("{:.2}", lido / peer)
    } else {
        "n/a (peer below 1)".to_owned()
    }
}

/// A row of the table: its name and how to read it off a round.
type Metric = (&'static str, fn(&Measured) -> f64);

/// Prints one fault's rows and the lido/peer ratios of the medians.
fn report(fault: Fault, kinds: &[Kind], results: &[(Kind, Measured)]) {
    println!("\n{}:", fault.label());
    let metrics: [Metric; 4] = [
        ("first success after the server accepts again (ms)", |m| {
            m.first_success.as_secs_f64() * 1e3
        }),
        ("errors from the fault's start to the first success", |m| {
            m.errors as f64
        }),
        (
            "connect attempts from the fault's start to the first success",
            |m| m.connects as f64,
        ),
        (
            "errors from the server accepting again to 300 ms after the first success",
            |m| m.errors_after_accept as f64,
        ),
    ];
    let of = |k: Kind| -> Vec<&Measured> {
        results
            .iter()
            .filter(|(kk, _)| *kk == k)
            .map(|(_, m)| m)
            .collect()
    };
    for (name, get) in metrics {
        println!("  {name}:");
        let lido = median(of(Kind::Lido).iter().map(|m| get(m)).collect());
        for &k in kinds {
            let values: Vec<f64> = of(k).iter().map(|m| get(m)).collect();
            let vs = if k == Kind::Lido {
                String::new()
            } else {
                format!(
                    "   lido/{} = {}",
                    k.name(),
                    ratio(lido, median(values.clone()))
                )
            };
            println!("    {:<18} {}{vs}", k.name(), cell(&values));
        }
    }
    for &k in kinds {
        let hits: usize = of(k).iter().map(|m| m.deadline_hits).sum();
        if hits > 0 {
            println!("  {}: {hits} calls ran into their 5 s deadline", k.name());
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args().nth(1).map_or(Ok(5), |a| a.parse())?;
    let kinds = Kind::all();
    let server = PgServer::start()?;
    let db = server.create_database()?;
    let url = server.url(&db);
    println!(
        "pool size {POOL}, default settings otherwise; {} callers looping `{}`, each call \
         bounded by {:?}, {:?} pause after a failed call; {rounds} rounds; pools: {}",
        CALLERS.count,
        support::pools::SQL,
        CALLERS.deadline,
        CALLERS.pause,
        kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("load average at start: {}", load_average());
    let mut results: Vec<(usize, Kind, Measured)> = Vec::new();
    for r in 0..rounds {
        for (f, fault) in FAULTS.iter().enumerate() {
            for &kind in &kinds {
                let target = Target::build(kind, &url, POOL).await;
                let m = round(&server, &url, target, CALLERS, *fault).await;
                results.push((f, kind, m));
            }
        }
        eprintln!("round {} of {rounds} done", r + 1);
    }
    for (f, fault) in FAULTS.iter().enumerate() {
        let mine: Vec<(Kind, Measured)> = results
            .iter()
            .filter(|(ff, _, _)| *ff == f)
            .map(|(_, k, m)| (*k, *m))
            .collect();
        report(*fault, &kinds, &mine);
    }
    println!("\nload average at end: {}", load_average());
    Ok(())
}

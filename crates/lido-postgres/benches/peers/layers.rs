//! The layer table: lido with one layer turned off at a time (what the
//! builder allows), beside lido with its defaults and deadpool-postgres,
//! run in interleaved rounds (every variant once per round, in turn), each
//! round's ops/s shown, then the median over rounds of each variant's
//! ratio to lido with its defaults and to deadpool in the same round.

use std::future::Future;
use std::time::Duration;

use lido_postgres::{PgPool, PgPoolBuilder};

use super::core_plain::{core_call, core_pool, CorePool};
use super::{deadpool_call, lido_builder, lido_call, run, Peers, Query, POOL};

/// A lido variant: its name and what it turns off.
type Tweak = fn(PgPoolBuilder) -> PgPoolBuilder;

const VARIANTS: [(&str, Tweak); 7] = [
    ("lido (defaults)", |b| b),
    ("statistics(false)", |b| b.statistics(false)),
    ("slow_query_threshold(None)", |b| {
        b.slow_query_threshold(None)
    }),
    ("statement_cache(0)", |b| b.statement_cache(0)),
    ("query_timeout(None)", |b| b.query_timeout(None)),
    ("not_answering_after(None)", |b| b.not_answering_after(None)),
    ("all four off (stats, slow log, timeout, watchdog)", |b| {
        b.statistics(false)
            .slow_query_threshold(None)
            .query_timeout(None)
            .not_answering_after(None)
    }),
];

const DEADPOOL: &str = "deadpool-postgres";
const CORE: &str = "lido-core + plain tokio-postgres";

/// What one row of the table runs.
enum Row {
    Lido(PgPool),
    Core(CorePool),
    Deadpool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs the layer table: `which` is `all` (every variant), `short` (lido
/// with its defaults, lido's core around plain clients, and deadpool), or,
/// for a profile of one of them, `lido`, `bare` (all four off), `only:N`
/// (the Nth variant, from 0), `core` or `deadpool` alone.
pub(crate) async fn run_all(
    peers: &Peers,
    which: &str,
    tasks: &[usize],
    rounds: usize,
    dur: Duration,
) {
    let only = which
        .strip_prefix("only:")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n < VARIANTS.len());
    // The lido variants, and whether the core row and deadpool run too.
    let all = &VARIANTS[..];
    let (chosen, core, deadpool) = match (which, only) {
        (_, Some(n)) => (&all[n..=n], false, false),
        ("short", None) => (&all[..1], true, true),
        ("lido", None) => (&all[..1], false, false),
        ("bare", None) => (&all[all.len() - 1..], false, false),
        ("core", None) => (&all[..0], true, false),
        ("deadpool", None) => (&all[..0], false, true),
        _ => (all, true, true),
    };
    let mut pools: Vec<(&str, Row)> = Vec::new();
    for (name, tweak) in chosen {
        let pool = tweak(lido_builder(&peers.url))
            .build()
            .await
            .expect("lido pool");
        pools.push((name, Row::Lido(pool)));
    }
    if core {
        pools.push((CORE, Row::Core(core_pool(&peers.url, POOL).await)));
    }
    if deadpool {
        pools.push((DEADPOOL, Row::Deadpool));
    }
    println!(
        "layer table: {rounds} interleaved rounds of {:.1} s per cell after 0.3 s warm-up\n",
        dur.as_secs_f64()
    );
    for q in [Query::Select1, Query::Lookup] {
        for &n in tasks {
            table(peers, &pools, q, n, rounds, dur).await;
        }
    }
}

async fn cell(peers: &Peers, row: &Row, q: Query, n: usize, dur: Duration) -> f64 {
    let rate = match row {
        Row::Lido(pool) => {
            looped(n, dur, pool, move |p, key| async move {
                lido_call(&p, q, key).await
            })
            .await
        }
        Row::Core(pool) => {
            looped(n, dur, pool, move |p, key| async move {
                core_call(&p, q, key).await
            })
            .await
        }
        Row::Deadpool => {
            looped(n, dur, &peers.deadpool, move |p, key| async move {
                deadpool_call(&p, q, key).await
            })
            .await
        }
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    rate
}

/// `n` tasks run `call` with their own handle on `pool`; ops/s.
async fn looped<P, F, Fut>(n: usize, dur: Duration, pool: &P, call: F) -> f64
where
    P: Clone + Send + Sync + 'static,
    F: Fn(P, i32) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let pool = pool.clone();
    run(n, dur, move |_, key| call(pool.clone(), key))
        .await
        .rate()
}

async fn table(
    peers: &Peers,
    pools: &[(&str, Row)],
    q: Query,
    n: usize,
    rounds: usize,
    dur: Duration,
) {
    // rates[variant][round]
    let mut rates = vec![Vec::with_capacity(rounds); pools.len()];
    for r in 0..rounds {
        // Rotate the starting variant so none always runs first.
        for i in 0..pools.len() {
            let v = (i + r) % pools.len();
            rates[v].push(cell(peers, &pools[v].1, q, n, dur).await);
        }
    }
    println!("### {}, {n} tasks\n", q.name());
    let heads: Vec<String> = (1..=rounds).map(|r| format!("round {r}")).collect();
    println!(
        "| variant | {} | median ÷ lido (defaults) | median ÷ deadpool |",
        heads.join(" | ")
    );
    println!("|---|{}---:|---:|", "---:|".repeat(rounds));
    let last = pools.len() - 1;
    for (v, (name, _)) in pools.iter().enumerate() {
        let vs_lido = median((0..rounds).map(|r| rates[v][r] / rates[0][r]).collect());
        let vs_dp = median((0..rounds).map(|r| rates[v][r] / rates[last][r]).collect());
        let cells: Vec<String> = rates[v].iter().map(|x| format!("{x:.0}")).collect();
        println!(
            "| {name} | {} | {vs_lido:.3} | {vs_dp:.3} |",
            cells.join(" | ")
        );
    }
    println!();
}

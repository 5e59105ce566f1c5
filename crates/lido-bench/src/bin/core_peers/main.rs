//! `core_peers`: lido-core beside deadpool 0.13 (managed), bb8 0.9 and mobc 0.9
//! in one run, each pool with a do-nothing manager, in the method of the public
//! `async-pool-benchmark` (bikeshedder): a fixed number of gets per cell split
//! evenly over `tasks` spawned tasks, each get followed by dropping the guard.
//!
//! * Every pool runs on the same multi-thread tokio runtime (all cores by default).
//! * Every pool keeps its default settings except its size (mobc also gets
//!   `max_idle = size`, since its default of 2 idle would close and reopen
//!   connections on every return above two).
//! * Before each timed run the pool is filled to `size` (that many guards held
//!   at once, then dropped) and exercised with a short untimed pass.
//! * Each cell is repeated `reps` times (pool order rotated per repetition, a
//!   fresh pool each time) and the median ops/s is reported.
//! * `hold=yield` holds each guard across one `tokio::task::yield_now()`, so
//!   tasks really overlap their leases and cells with `tasks > size` exercise
//!   the wait queue even on a machine with few cores; `hold=none` is the
//!   public benchmark's exact loop (get, drop).
//!
//! After the table it prints a summary and, unless `--fairness off`, a FIFO
//! fairness check (per-task completed gets and the wait distribution when
//! `tasks > size`, guards held across a yield). Nothing is asserted.
//!
//! ```text
//! cargo run --release -p lido-bench --bin core_peers -- --help
//! LIDO_BENCH_GETS=262144 cargo run --release -p lido-bench --bin core_peers
//! cargo run --release -p lido-bench --bin core_peers -- --sizes 8 --tasks 1,64 --hold yield
//! ```

mod args;
mod cost;
mod measure;
mod pools;
mod report;

use clap::Parser;

use args::{Args, FairnessMode, Kind};
use measure::measure_kind;
use report::{fairness_report, fmt_ratio, ops, summary, Row};

fn main() {
    let mut args = Args::parse();
    if args.quick {
        args.sizes = vec![8, 32];
        args.tasks = vec![1, 64, 1024];
        args.gets = 1 << 16;
        args.reps = 1;
    }
    args.reps = args.reps.max(1);
    let mut seen = Vec::new();
    args.pools.retain(|k| {
        let first = !seen.contains(k);
        seen.push(*k);
        first
    });
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(std::num::NonZeroUsize::get)
            .unwrap_or(1)
    });
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("core_peers: cannot start the tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(run(args, threads));
}

async fn run(args: Args, threads: usize) {
    if args.ambient_timer {
        tokio::spawn(async {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
            }
        });
    }
    let pools = args.pools.clone();
    let lido_ix = pools.iter().position(|k| *k == Kind::Lido);
    let peers: Vec<(usize, Kind)> = pools
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, k)| k.is_peer())
        .collect();

    println!("# core_peers: lido-core vs deadpool 0.13 (managed) / bb8 0.9 / mobc 0.9, do-nothing managers");
    println!(
        "# tokio multi-thread runtime, {threads} worker threads; {} gets per cell split across the tasks; \
         median of {} reps (pools back to back in each, order rotated); \
         fill to size + untimed warm-up pass before each timed run; {}",
        args.gets,
        args.reps,
        if args.ambient_timer {
            "one ambient timer in the runtime (--ambient-timer true)"
        } else {
            "no ambient timer (--ambient-timer false)"
        }
    );
    println!(
        "# ops/s = completed get+drop per second (higher is better); lido/X = median over reps \
         of lido ops/s ÷ X ops/s in the same rep (each rep's figures on the line below)"
    );
    println!();

    let mut header = format!("{:<5} {:>4} {:>5}", "hold", "size", "tasks");
    for k in &pools {
        header.push_str(&format!(" {:>9}", k.name()));
    }
    if lido_ix.is_some() {
        for (_, k) in &peers {
            header.push_str(&format!(" {:>12}", format!("lido/{}", k.name())));
        }
    }
    println!("{header}");
    println!("{}", "-".repeat(header.chars().count()));

    let names: Vec<&str> = pools.iter().map(|k| k.name()).collect();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for &hold in &args.hold {
        for &size in &args.sizes {
            for &tasks in &args.tasks {
                let per_task = (args.gets / tasks as u64).max(1);
                let mut samples: Vec<Vec<f64>> = vec![Vec::new(); pools.len()];
                for rep in 0..args.reps {
                    for i in 0..pools.len() {
                        let ix = (i + rep) % pools.len();
                        let kind = pools[ix];
                        match measure_kind(kind, size, tasks, per_task, hold).await {
                            Ok(s) => {
                                if s.failed > 0 {
                                    failures.push(format!(
                                        "{} hold={hold} size={size} tasks={tasks}: {} failed gets",
                                        kind.name(),
                                        s.failed
                                    ));
                                }
                                samples[ix].push(s.ops_per_sec);
                            }
                            Err(e) => {
                                failures.push(format!(
                                    "{} hold={hold} size={size} tasks={tasks}: {e}",
                                    kind.name()
                                ));
                                samples[ix].push(f64::NAN);
                            }
                        }
                    }
                }
                let row = Row::new(hold, size, tasks, samples);
                let mut line = format!("{:<5} {:>4} {:>5}", row.hold, row.size, row.tasks);
                for o in &row.ops {
                    line.push_str(&format!(" {:>9}", ops(*o)));
                }
                if let Some(li) = lido_ix {
                    for (pi, _) in &peers {
                        line.push_str(&format!(" {:>12}", fmt_ratio(row.ratio(li, *pi))));
                    }
                }
                println!("{line}");
                if args.reps > 1 {
                    println!("{}", row.reps_line(&names, lido_ix, &peers));
                }
                rows.push(row);
            }
        }
    }

    println!();
    summary(&rows, lido_ix, &peers);
    let at = |kind: Kind| pools.iter().position(|k| *k == kind);
    if let (Some(on), Some(off)) = (lido_ix, at(Kind::LidoNostats)) {
        let names = ("lido", "lido-nostats");
        cost::observability_cost(&rows, on, off, "statistics (histograms)", names);
    }
    if let (Some(on), Some(off)) = (at(Kind::LidoNostats), at(Kind::LidoBare)) {
        let names = ("lido-nostats", "lido-bare");
        cost::observability_cost(&rows, on, off, "leak detection", names);
    }
    if !failures.is_empty() {
        println!();
        println!("## failures");
        for f in &failures {
            println!("  {f}");
        }
    }

    let fair_kinds: Vec<Kind> = match args.fairness {
        FairnessMode::Off => Vec::new(),
        FairnessMode::Lido => vec![Kind::Lido],
        FairnessMode::All => pools.clone(),
    };
    if !fair_kinds.is_empty() {
        let total = args.fairness_gets.unwrap_or(args.gets / 4).max(1);
        fairness_report(&args, &fair_kinds, total).await;
    }
}

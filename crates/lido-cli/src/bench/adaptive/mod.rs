//! `lido bench --adaptive`: fixed pool sizes against adaptive sizing,
//! through workload phases on PostgreSQL.
//!
//! For each phase every fixed size runs on its own pool (warm-up, then the
//! measured window). Then one adaptive pool (min 1, max the largest fixed
//! size) runs all phases back to back, so that each phase change is one it
//! must follow live; its throughput and p99 are taken from the moment its
//! target converged to the end of the phase.

mod drive;
mod json;
mod report;
mod workload;

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::ProgressBar;

use lido_core::{AdaptiveConfig, Config};
use lido_postgres::{PgConfig, PgPool};

use crate::args::BenchArgs;
use crate::dburl::{self, DbUrl};
use crate::util::chain;
use report::{Adaptive, Fixed};
use workload::Phase;

/// Prints a line on stdout, or on stderr when stdout carries the JSON,
/// with the progress bar out of the way.
macro_rules! say {
    ($plan:expr, $($arg:tt)*) => {
        $plan.bar.suspend(|| {
            if $plan.json {
                eprintln!($($arg)*)
            } else {
                println!($($arg)*)
            }
        })
    };
}

/// Prints text without a newline, like [`say!`].
fn say_text(plan: &Plan, text: &str) {
    plan.bar.suspend(|| {
        if plan.json {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    });
}

/// The progress bar on stderr (hidden when stderr is not a terminal), moved
/// by the clock: the run's length is known up front.
fn progress(phases: usize, sizes: usize, per_size: Duration, per_phase: Duration) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let total = phases as u128 * (sizes as u128 * per_size.as_millis() + per_phase.as_millis());
    let bar = crate::bench::runner::styled_bar(u64::try_from(total).unwrap_or(u64::MAX));
    let ticking = bar.clone();
    tokio::spawn(async move {
        let start = std::time::Instant::now();
        while !ticking.is_finished() {
            ticking.set_position(u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    bar
}

/// What the comparison runs.
struct Plan {
    config: PgConfig,
    phases: Vec<Phase>,
    sizes: Vec<usize>,
    tasks: usize,
    warmup: Duration,
    duration: Duration,
    phase_duration: Duration,
    interval: Duration,
    /// `--json`: the document on stdout, everything else on stderr.
    json: bool,
    /// Progress on stderr.
    bar: ProgressBar,
}

fn plan(args: &BenchArgs) -> Result<Plan, String> {
    let config = match dburl::parse(args.url.as_deref())? {
        DbUrl::Postgres(cfg) => *cfg,
        _ => {
            return Err(
                "--adaptive needs a PostgreSQL database: pass --url postgres://... (its phases use pg_sleep and advisory locks)"
                    .into(),
            )
        }
    };
    if args.chart.is_some() {
        return Err(
            "--chart draws the plain sweep; with --adaptive use --json for the numbers".into(),
        );
    }
    let phases = args
        .phases
        .iter()
        .map(|p| Phase::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sizes = args.adaptive_sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    if phases.is_empty() || sizes.is_empty() || sizes[0] == 0 {
        return Err("--adaptive needs one or more phases and sizes of at least 1".into());
    }
    if args.phase_duration < Duration::from_secs(2) || args.duration.is_zero() {
        return Err("--phase-duration must be at least 2s and --duration above zero".into());
    }
    if args.tasks == 0 {
        return Err("--tasks must be at least 1".into());
    }
    let bar = progress(
        phases.len(),
        sizes.len(),
        args.warmup.unwrap_or(args.duration / 5) + args.duration,
        args.phase_duration,
    );
    Ok(Plan {
        config,
        phases,
        sizes,
        tasks: args.tasks,
        warmup: args.warmup.unwrap_or(args.duration / 5),
        duration: args.duration,
        phase_duration: args.phase_duration,
        interval: args.adaptive_interval,
        json: args.json,
        bar,
    })
}

fn pool_config(plan: &Plan, size: usize, adaptive: bool) -> Config {
    Config {
        max_size: size,
        min_idle: if adaptive { 0 } else { size },
        acquire_timeout: Duration::from_secs(30),
        adaptive: adaptive.then(|| AdaptiveConfig {
            min: 1,
            max: size,
            interval: plan.interval,
            ..AdaptiveConfig::default()
        }),
        ..Config::default()
    }
}

async fn open(plan: &Plan, size: usize, adaptive: bool) -> Result<PgPool, String> {
    PgPool::builder(plan.config.clone())
        .application_name("lido bench")
        .pool_config(pool_config(plan, size, adaptive))
        .build()
        .await
        .map_err(|e| format!("opening a pool of {size} on {}: {}", plan.config, chain(&e)))
}

/// Every fixed size in `phase`.
async fn curve(plan: &Plan, phase: Phase) -> Result<Vec<Fixed>, String> {
    let mut out = Vec::with_capacity(plan.sizes.len());
    for &size in &plan.sizes {
        plan.bar
            .set_message(format!("{} size {size}", phase.name()));
        let pool = open(plan, size, false).await?;
        let rec = drive::drive(&pool, plan.tasks, &[(phase, plan.warmup + plan.duration)]).await;
        pool.close(Duration::from_secs(5)).await;
        let from = plan.warmup.as_secs_f64();
        let stats = rec.window(from, from + plan.duration.as_secs_f64());
        if let Some(e) = rec.first_error.filter(|_| stats.errors > 0) {
            say!(plan, "  size {size}: {} errors, first: {e}", stats.errors);
        }
        out.push(Fixed { size, stats });
    }
    Ok(out)
}

/// The adaptive pool through every phase, back to back.
async fn adaptive_run(plan: &Plan) -> Result<Vec<Adaptive>, String> {
    let max = *plan.sizes.last().unwrap_or(&1);
    plan.bar.set_message("adaptive pool");
    let pool = open(plan, max, true).await?;
    let schedule: Vec<_> = plan
        .phases
        .iter()
        .map(|p| (*p, plan.phase_duration))
        .collect();
    let rec = drive::drive(&pool, plan.tasks, &schedule).await;
    pool.close(Duration::from_secs(5)).await;
    if let Some(e) = &rec.first_error {
        say!(plan, "adaptive run: first error: {e}");
    }
    let len = plan.phase_duration.as_secs_f64();
    let out = (0..plan.phases.len())
        .map(|i| {
            let (start, end) = (i as f64 * len, (i + 1) as f64 * len);
            let trace: Vec<(f64, usize)> = rec
                .targets
                .iter()
                .filter(|(t, _)| *t >= start && *t < end)
                .map(|(t, n)| (t - start, *n))
                .collect();
            let probe = plan.interval.as_secs_f64() * report::PROBE_INTERVALS;
            let (converged_after, settled) = report::convergence(&trace, probe);
            // Not converged: measure the last third, and say so.
            let from = start + converged_after.unwrap_or(len * 2.0 / 3.0);
            Adaptive {
                converged_after,
                settled,
                path: report::path(&trace),
                stats: rec.window(from, end),
            }
        })
        .collect();
    Ok(out)
}

/// Runs `lido bench --adaptive`.
pub async fn run(args: &BenchArgs) -> Result<ExitCode, String> {
    let plan = plan(args)?;
    let sizes: Vec<String> = plan.sizes.iter().map(ToString::to_string).collect();
    say!(
        plan,
        "lido bench --adaptive: PostgreSQL {} — {} tasks; fixed sizes {} for {:?} each after {:?} warm-up; \
         adaptive (min 1, max {}, interval {:?}) {:?} per phase",
        plan.config,
        plan.tasks,
        sizes.join(","),
        plan.duration,
        plan.warmup,
        plan.sizes.last().unwrap_or(&1),
        plan.interval,
        plan.phase_duration
    );
    let mut curves = Vec::with_capacity(plan.phases.len());
    for &phase in &plan.phases {
        say!(plan, "\nphase {}: {}", phase.name(), phase.describe());
        let c = curve(&plan, phase).await?;
        say_text(&plan, &report::curve_table(&c));
        curves.push(c);
    }
    say!(
        plan,
        "\nadaptive run: one pool through {} back to back",
        names(&plan.phases)
    );
    let runs = adaptive_run(&plan).await?;
    plan.bar.finish_and_clear();
    for (phase, a) in plan.phases.iter().zip(&runs) {
        let path: Vec<String> = a.path.iter().map(ToString::to_string).collect();
        say!(plan, "  {:<6} target {}", phase.name(), path.join(" -> "));
    }
    if plan.json {
        print_json(&plan, &curves, &runs)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<_> = plan
        .phases
        .iter()
        .zip(curves.iter().zip(runs))
        .map(|(p, (c, a))| (p.name(), report::best(c), a))
        .collect();
    println!("\nbest fixed size vs adaptive (after convergence):");
    print!("{}", report::side_by_side(&rows));
    println!(
        "goal: adaptive ops/s >= {:.0}% of the best fixed size's, p99 <= {:.1}x, converged within {:?} of the phase change",
        report::OPS_GOAL * 100.0,
        report::P99_GOAL,
        report::CONVERGE_GOAL
    );
    Ok(ExitCode::SUCCESS)
}

/// The `--json` document on stdout.
fn print_json(plan: &Plan, curves: &[Vec<Fixed>], runs: &[Adaptive]) -> Result<(), String> {
    let doc = json::AdaptiveReport {
        format: 1,
        mode: "adaptive",
        target: format!("PostgreSQL {}", plan.config),
        tasks: plan.tasks,
        warmup_ms: plan.warmup.as_millis(),
        duration_ms: plan.duration.as_millis(),
        phase_duration_ms: plan.phase_duration.as_millis(),
        interval_ms: plan.interval.as_millis(),
        sizes: plan.sizes.clone(),
        latency_unit: "microseconds",
        goals: json::goals(),
        phases: plan
            .phases
            .iter()
            .zip(curves.iter().zip(runs))
            .map(|(p, (c, a))| json::PhaseJson::new(p.name(), p.describe(), c, a))
            .collect(),
    };
    let text = serde_json::to_string_pretty(&doc).map_err(|e| format!("encoding JSON: {e}"))?;
    println!("{text}");
    Ok(())
}

fn names(phases: &[Phase]) -> String {
    phases
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(" -> ")
}

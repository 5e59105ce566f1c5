//! `lido bench`: sweep pool sizes, measure, recommend.

pub mod adaptive;
pub mod chart;
pub mod chart_svg;
pub mod chart_term;
pub mod report;
pub mod runner;
pub mod target;
mod targets;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use serde::Serialize;

use crate::args::BenchArgs;
use chart::ChartData;
use report::{Recommendation, SizeResult};
use target::BenchTarget;

/// The `--json` document (format 1). Latencies are in microseconds.
#[derive(Serialize)]
struct JsonReport<'a> {
    format: u32,
    /// The target, with any password left out.
    target: String,
    tasks: usize,
    warmup_ms: u128,
    duration_ms: u128,
    write_ratio: f64,
    sizes: &'a [usize],
    tolerance: f64,
    custom_query: bool,
    /// Unit of p50, p95, p99 and acquire_wait_p99 in `results`.
    latency_unit: &'static str,
    /// What the `acquire_wait_p99` figures cover.
    acquire_wait_means: &'static str,
    /// What a size means, when not plain connections.
    size_means: Option<&'static str>,
    results: &'a [SizeResult],
    recommendation: Option<Recommendation>,
    /// The SVG chart written, if --chart was given.
    chart: Option<String>,
}

/// Runs `lido bench`.
pub async fn run(args: BenchArgs) -> Result<ExitCode, String> {
    if args.adaptive {
        return adaptive::run(&args).await;
    }
    validate(&args)?;
    let target = targets::for_url(args.url.as_deref(), args.query.clone())?;
    let plan = runner::Plan {
        sizes: args.sizes.clone(),
        tasks: args.tasks,
        warmup: args.warmup.unwrap_or(args.duration / 5),
        duration: args.duration,
        write_ratio: if args.query.is_some() {
            0.0
        } else {
            args.write_ratio
        },
        progress: std::io::stderr().is_terminal(),
    };
    if !args.json {
        println!(
            "lido bench: {} — {} tasks, {:?} per size after {:?} warm-up, {:.0}% writes",
            target.describe(),
            plan.tasks,
            plan.duration,
            plan.warmup,
            plan.write_ratio * 100.0
        );
    }
    let results = runner::sweep(target.as_ref(), &plan).await?;
    let recommendation = report::recommend(&results, args.tolerance);
    let chart = chart_data(target.as_ref(), &plan, &results, recommendation.as_ref());
    if let Some(path) = &args.chart {
        chart_svg::write(path, &chart)?;
    }
    if args.json {
        let json = JsonReport {
            format: 1,
            target: target.describe(),
            tasks: plan.tasks,
            warmup_ms: plan.warmup.as_millis(),
            duration_ms: plan.duration.as_millis(),
            write_ratio: plan.write_ratio,
            sizes: &plan.sizes,
            tolerance: args.tolerance,
            custom_query: args.query.is_some(),
            latency_unit: "microseconds",
            acquire_wait_means: target.wait_means(),
            size_means: target.size_means(),
            results: &results,
            recommendation,
            chart: args.chart.as_ref().map(|p| p.display().to_string()),
        };
        let text =
            serde_json::to_string_pretty(&json).map_err(|e| format!("encoding JSON: {e}"))?;
        println!("{text}");
    } else {
        print_human(&args, target.as_ref(), &results, recommendation, &chart);
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether to draw the terminal chart: forced on or off by flag, else when
/// stdout is a terminal.
fn term_chart_wanted(args: &BenchArgs) -> bool {
    if args.no_chart {
        return false;
    }
    args.chart_term || std::io::stdout().is_terminal()
}

fn chart_data(
    target: &dyn BenchTarget,
    plan: &runner::Plan,
    results: &[SizeResult],
    recommendation: Option<&Recommendation>,
) -> ChartData {
    let workload = format!(
        "{} tasks, {:.0}% writes, {:?} per size after {:?} warm-up",
        plan.tasks,
        plan.write_ratio * 100.0,
        plan.duration,
        plan.warmup
    );
    let unit = if target.size_means().is_some() {
        "read connections"
    } else {
        "connections"
    };
    ChartData::from_results(target.describe(), workload, unit, results, recommendation)
}

fn print_human(
    args: &BenchArgs,
    target: &dyn BenchTarget,
    results: &[SizeResult],
    recommendation: Option<Recommendation>,
    chart: &ChartData,
) {
    print!("{}", report::table(results));
    println!("acq p99 ms: {}", target.wait_means());
    print_errors(results);
    if term_chart_wanted(args) {
        print!("{}", chart_term::render(chart, chart_term::colour_wanted()));
    }
    match recommendation {
        Some(r) => println!(
            "\nrecommendation: max_size = {}\n  why: {}",
            r.size, r.reason
        ),
        None => {
            println!("\nrecommendation: none — every size had errors or timeouts (see above)")
        }
    }
    if let Some(means) = target.size_means() {
        println!("  note: {means}");
    }
    if let Some(path) = &args.chart {
        println!("chart: {}", path.display());
    }
}

fn print_errors(results: &[SizeResult]) {
    for r in results {
        if let Some(e) = &r.first_error {
            println!("size {}: {} errors, first: {e}", r.size, r.errors);
        }
    }
}

fn validate(args: &BenchArgs) -> Result<(), String> {
    if args.sizes.is_empty() || args.sizes.contains(&0) {
        return Err(
            "--sizes needs one or more pool sizes of at least 1, e.g. --sizes 1,2,4,8".into(),
        );
    }
    if args.duration.is_zero() {
        return Err("--duration must be greater than zero, e.g. --duration 5s".into());
    }
    if args.tasks == 0 {
        return Err("--tasks must be at least 1".into());
    }
    check_chart_path(args)?;
    if !(0.0..=1.0).contains(&args.write_ratio) {
        return Err(format!(
            "--write-ratio {} is out of range: use 0.0 to 1.0",
            args.write_ratio
        ));
    }
    if !(0.0..1.0).contains(&args.tolerance) {
        return Err(format!(
            "--tolerance {} is out of range: use 0.0 to below 1.0",
            args.tolerance
        ));
    }
    Ok(())
}

/// Fails before the sweep, not after it, when `--chart` names a file in a
/// folder that does not exist.
fn check_chart_path(args: &BenchArgs) -> Result<(), String> {
    let Some(path) = &args.chart else {
        return Ok(());
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if path.as_os_str().is_empty() || dir.is_some_and(|d| !d.is_dir()) {
        return Err(format!(
            "--chart {}: its folder does not exist (give a file path such as bench.svg)",
            path.display()
        ));
    }
    Ok(())
}

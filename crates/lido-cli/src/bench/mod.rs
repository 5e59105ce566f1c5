//! `lido bench`: sweep pool sizes, measure, recommend.

pub mod adaptive;
pub mod report;
pub mod runner;
pub mod target;
mod targets;

use std::process::ExitCode;

use serde::Serialize;

use crate::args::BenchArgs;
use report::{Recommendation, SizeResult};

#[derive(Serialize)]
struct JsonReport<'a> {
    target: String,
    tasks: usize,
    warmup_ms: u128,
    duration_ms: u128,
    write_ratio: f64,
    /// What the `acquire_wait_p99` figures cover.
    acquire_wait_means: &'static str,
    /// What a size means, when not plain connections.
    size_means: Option<&'static str>,
    results: &'a [SizeResult],
    recommendation: Option<Recommendation>,
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
        progress: !args.json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
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
    if args.json {
        let json = JsonReport {
            target: target.describe(),
            tasks: plan.tasks,
            warmup_ms: plan.warmup.as_millis(),
            duration_ms: plan.duration.as_millis(),
            write_ratio: plan.write_ratio,
            acquire_wait_means: target.wait_means(),
            size_means: target.size_means(),
            results: &results,
            recommendation,
        };
        let text =
            serde_json::to_string_pretty(&json).map_err(|e| format!("encoding JSON: {e}"))?;
        println!("{text}");
    } else {
        print!("{}", report::table(&results));
        println!("acq p99 ms: {}", target.wait_means());
        print_errors(&results);
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
    }
    Ok(ExitCode::SUCCESS)
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

//! Command line arguments (flags, with `DATABASE_URL` and `LIDO_*` environment fallbacks).

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// lido: a database connection pool that keeps serving when the database misbehaves.
#[derive(Debug, Parser)]
#[command(name = "lido", version, about, long_about = None)]
pub struct Cli {
    /// More log output on stderr (-v, -vv); or set LIDO_LOG=<filter>.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Benchmark pool sizes on a database and recommend one.
    ///
    /// With no URL, runs on an embedded SQLite database in a temporary
    /// directory, seeded with a realistic table and a mixed read/write workload.
    Bench(BenchArgs),
}

/// `lido bench` options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Database URL (postgres://… or sqlite:PATH). Default: embedded SQLite in a temp dir.
    #[arg(long, env = "DATABASE_URL")]
    pub url: Option<String>,
    /// Pool sizes to try, comma-separated.
    #[arg(
        long,
        env = "LIDO_BENCH_SIZES",
        value_delimiter = ',',
        default_value = "1,2,4,8,16,32"
    )]
    pub sizes: Vec<usize>,
    /// Measured time per pool size (e.g. 5s, 500ms).
    #[arg(long, env = "LIDO_BENCH_DURATION", default_value = "5s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Concurrent client tasks.
    #[arg(long, env = "LIDO_BENCH_TASKS", default_value_t = 64)]
    pub tasks: usize,
    /// Fraction of operations that write, 0.0–1.0.
    #[arg(long, env = "LIDO_BENCH_WRITE_RATIO", default_value_t = 0.1)]
    pub write_ratio: f64,
    /// A custom read statement instead of the built-in workload (no parameters).
    #[arg(long)]
    pub query: Option<String>,
    /// Throughput tolerance for the recommendation (0.05 = within 5% of the best).
    #[arg(long, default_value_t = 0.05)]
    pub tolerance: f64,
    /// Print machine-readable JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Parses `5s`, `500ms`, `1m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 5s, 500ms, 1m)"))
}

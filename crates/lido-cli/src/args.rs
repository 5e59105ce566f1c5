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
    /// Recommend indexes from the workload; list unused and duplicate ones.
    ///
    /// Reads the current database's statements from pg_stat_statements (it
    /// must be preloaded and created: if not, says what to change and exits
    /// 4), lido's own statement statistics when --statements is given, and
    /// the slow-query table lido.slow_queries when it exists. Parses the top
    /// statements (sqlparser), builds candidate indexes from their filter,
    /// join and ORDER BY columns (equality columns most selective first by
    /// pg_stats.n_distinct, then one range column), leaves out those an
    /// existing index serves, verifies each with HypoPG (planner cost of the
    /// generic plan before and with a hypothetical index, in a transaction
    /// that is rolled back) and ranks them by time saved (calls x mean x
    /// cost drop), penalized for write-heavy tables. Changes nothing unless
    /// --apply.
    #[command(after_help = ADVISE_AFTER_HELP)]
    Advise(AdviseArgs),
    /// Benchmark pool sizes on a database and recommend one.
    ///
    /// Runs a mixed read/write workload (90% indexed reads of a customer's
    /// latest orders, 10% inserts) at each pool size for a fixed time, then
    /// prints throughput, latency percentiles, acquire wait p99 and timeouts,
    /// and recommends the smallest size within --tolerance of the best.
    ///
    /// With no URL it runs on an embedded SQLite database in a temporary
    /// directory. With a PostgreSQL URL or sqlite:PATH (--url or
    /// DATABASE_URL) it creates and seeds a `lido_bench_orders` table (20,000
    /// rows, indexed on customer_id) in that database if missing, and touches
    /// no other table; --query runs your own read statement instead and
    /// creates nothing. Each size is warmed up (--warmup) before its
    /// measured window; only operations that finish inside the window count.
    ///
    /// Every flag can also come from the environment variable shown with it.
    Bench(BenchArgs),
    /// Connect to a PostgreSQL database once and report every step.
    ///
    /// Resolves the host, opens TCP, negotiates TLS (version, cipher, what was
    /// verified and against which CA), authenticates, then reports the server
    /// version, the round-trip latency (median of a few `SELECT 1`) and
    /// max_connections against the connections in use. Stops at the first
    /// failing step with one error line that says what to fix.
    #[command(after_help = CHECK_AFTER_HELP)]
    Check(CheckArgs),
    /// Serve health checks, Prometheus metrics and a live dashboard for a pool.
    ///
    /// Keeps a pool to the database (PostgreSQL by URL; with no URL an embedded
    /// SQLite database in a temporary directory, or sqlite:PATH) and serves
    /// /health (application/health+json), /health/live, /health/ready,
    /// /metrics (OpenMetrics) and a dashboard at /. Stops gracefully on
    /// Ctrl-C or SIGTERM.
    #[command(after_help = SERVE_AFTER_HELP)]
    Serve(ServeArgs),
}

const CHECK_AFTER_HELP: &str = "\
Connection settings, first found wins: the URL argument, --url, DATABASE_URL;
with none of them the libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD,
PGDATABASE, PGSSLMODE, PGSSLROOTCERT, ...). PG* variables also fill in what
a URL leaves out, as in libpq.

The check dials the way a lido pool does: its first step prints the plan
(every server the pool would try, in order: libpq's host, hostaddr and port
lists; no host means the default Unix socket directory), then each attempt
(resolve, connect, tls, auth) until one succeeds, then the server, latency
and connections steps. A failed attempt that moves on to the next address,
server or sslmode retry is shown as FAIL and the check goes on.

With several hosts (postgres://u@h1:5432,h2:5433/db or host=h1,h2), the
check then watches every node for a few monitor rounds (about 0.3 s) and
prints one node line each: primary, replica (in or out of the read
rotation, lag in WAL bytes and in time) or down. Lag in time counts from
the check's first look, so one shown as >= is at least that. A replica
that is down or out of rotation is a WARN line (exit code 0); no node
accepting writes fails the cluster step.

Exit codes:
  0  every step passed
  1  internal error
  2  unusable arguments or connection settings (malformed URL, bad sslmode)
  3  resolve: the host name could not be resolved
  4  connect: no TCP (or Unix socket) connection
  5  tls: TLS refused, handshake failed or the certificate did not verify
  6  auth: authentication or session startup refused (password, pg_hba.conf,
     unknown database, too many connections)
  7  server: target_session_attrs not met, or a check query failed after login;
     cluster (several hosts): no node accepts writes, or the primary is down

Examples:
  lido check postgres://app@db.internal/orders?sslmode=verify-full
  PGHOST=db PGUSER=app lido check --json";

const ADVISE_AFTER_HELP: &str = "\
Connection settings, first found wins: the URL argument, --url, DATABASE_URL;
with none of them the libpq environment (PGHOST, PGUSER, ...).

Without HypoPG (Debian package postgresql-15-hypopg; CREATE EXTENSION needs
a superuser) the recommendations are marked unverified. The write penalty
is half of the table's share of rows written (n_tup_ins + n_tup_upd +
n_tup_del) against its scans (seq_scan + idx_scan).

Exit codes:
  0  report printed
  1  internal error
  2  unusable arguments, connection settings or --statements input
  3  no connection, or a query failed
  4  pg_stat_statements is not preloaded or not created (the message says how)
  5  --apply: creating an index failed

Examples:
  lido advise postgres://app@db/orders
  lido advise postgres://app@db/orders --statements http://127.0.0.1:9187/statements --json
  lido advise postgres://admin@db/orders --apply";

const SERVE_AFTER_HELP: &str = "\
Endpoints:
  /               live dashboard (polls /health and /metrics every second)
  /health         full health report, application/health+json
  /health/live    liveness probe (never fails because the database is down)
  /health/ready   readiness probe
  /metrics        Prometheus / OpenMetrics text

Examples:
  lido serve                                  # embedded SQLite, port 9187
  lido serve postgres://app@db/orders --listen 0.0.0.0:9187 --max-size 8";

/// The database URL, as an argument or `--url` (or DATABASE_URL).
#[derive(Debug, Args)]
pub struct DbUrl {
    /// Database URL: postgres://…, a key=value connection string, or (lido serve) sqlite:PATH; default: --url, DATABASE_URL, then PG* variables (lido serve: embedded SQLite).
    #[arg(value_name = "URL")]
    pub url: Option<String>,
    /// The same as the URL argument.
    #[arg(
        long = "url",
        env = "DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub url_flag: Option<String>,
}

impl DbUrl {
    /// The URL given, by argument, flag or DATABASE_URL.
    pub fn get(&self) -> Option<&str> {
        self.url.as_deref().or(self.url_flag.as_deref())
    }
}

/// `lido check` options.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub db: DbUrl,
    /// Time limit for each step (connect_timeout in the URL overrides it for connecting).
    #[arg(long, env = "LIDO_CHECK_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// How many `SELECT 1` round trips to time.
    #[arg(long, env = "LIDO_CHECK_SAMPLES", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub samples: u32,
    /// Print one JSON document instead of lines.
    #[arg(long, env = "LIDO_CHECK_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    pub json: bool,
}

impl CheckArgs {
    /// The URL given, by argument, flag or DATABASE_URL.
    pub fn url(&self) -> Option<&str> {
        self.db.get()
    }
}

/// `lido advise` options.
#[derive(Debug, Args)]
pub struct AdviseArgs {
    #[command(flatten)]
    pub db: DbUrl,
    /// How many top statements to show and draw candidates from.
    #[arg(long, env = "LIDO_ADVISE_TOP", default_value_t = 20,
          value_parser = clap::value_parser!(u16).range(1..=500))]
    pub top: u16,
    /// Order of the top statements: total, mean, calls, rows or hit (worst cache hit ratio first).
    #[arg(long, env = "LIDO_ADVISE_ORDER", default_value = "total",
          value_parser = clap::builder::PossibleValuesParser::new(["total", "mean", "calls", "rows", "hit"]))]
    pub order: String,
    /// lido's statement statistics: a JSON file, or lido serve's http://HOST:PORT/statements.
    #[arg(long, env = "LIDO_ADVISE_STATEMENTS", value_name = "FILE_OR_URL")]
    pub statements: Option<String>,
    /// Least planner cost drop (fraction) for a recommendation.
    #[arg(long, env = "LIDO_ADVISE_MIN_COST_DROP", default_value_t = 0.5)]
    pub min_cost_drop: f64,
    /// Time limit for connecting (connect_timeout in the URL overrides it).
    #[arg(long, env = "LIDO_ADVISE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Print one JSON document instead of the report.
    #[arg(long, env = "LIDO_ADVISE_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    pub json: bool,
    /// Create the recommended indexes, one at a time, CONCURRENTLY, each after a confirmation.
    #[arg(long)]
    pub apply: bool,
    /// With --apply: do not ask.
    #[arg(long, requires = "apply")]
    pub yes: bool,
}

impl AdviseArgs {
    /// The URL given, by argument, flag or DATABASE_URL.
    pub fn url(&self) -> Option<&str> {
        self.db.get()
    }
}

/// `lido serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbUrl,
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, env = "LIDO_LISTEN", default_value = "127.0.0.1:9187")]
    pub listen: String,
    /// Most connections the pool opens (for SQLite: read connections).
    #[arg(long, env = "LIDO_POOL_MAX_SIZE", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=10000))]
    pub max_size: u16,
    /// Idle connections the pool keeps ready.
    #[arg(long, env = "LIDO_POOL_MIN_IDLE", default_value_t = 1)]
    pub min_idle: u16,
    /// How long a caller waits for a connection.
    #[arg(long, env = "LIDO_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub acquire_timeout: Duration,
    /// How often the health checks run.
    #[arg(long, env = "LIDO_HEALTH_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub health_interval: Duration,
    /// The pool's name (the `pool` metric label and the health componentId).
    #[arg(long, env = "LIDO_POOL_NAME", default_value = "primary")]
    pub name: String,
    /// Demo load for the dashboard: this many tasks of small, varied
    /// queries through the pool (0: off; never on a production database).
    #[arg(long, env = "LIDO_SERVE_DEMO_LOAD", default_value_t = 0,
          value_parser = clap::value_parser!(u16).range(0..=64))]
    pub demo_load: u16,
}

impl ServeArgs {
    /// The URL given, by argument, flag or DATABASE_URL.
    pub fn url(&self) -> Option<&str> {
        self.db.get()
    }
}

/// `lido bench` options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Database URL (postgres://… or sqlite:PATH). Default: embedded SQLite in a temp dir.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
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
    /// Unmeasured warm-up per pool size before its window (default: a fifth of --duration).
    #[arg(long, env = "LIDO_BENCH_WARMUP", value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Concurrent client tasks.
    #[arg(long, env = "LIDO_BENCH_TASKS", default_value_t = 64)]
    pub tasks: usize,
    /// Fraction of operations that write, 0.0–1.0.
    #[arg(long, env = "LIDO_BENCH_WRITE_RATIO", default_value_t = 0.1)]
    pub write_ratio: f64,
    /// A custom read statement instead of the built-in workload (no parameters).
    #[arg(long, env = "LIDO_BENCH_QUERY")]
    pub query: Option<String>,
    /// Throughput tolerance for the recommendation (0.05 = within 5% of the best).
    #[arg(long, env = "LIDO_BENCH_TOLERANCE", default_value_t = 0.05)]
    pub tolerance: f64,
    /// Print machine-readable JSON instead of the table (stdout holds only the JSON).
    #[arg(long, env = "LIDO_BENCH_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    pub json: bool,
    /// Also write an SVG chart of throughput and p99 latency by pool size to FILE.
    #[arg(long, env = "LIDO_BENCH_CHART", value_name = "FILE")]
    pub chart: Option<std::path::PathBuf>,
    /// Never draw the terminal chart (drawn by default when stdout is a terminal).
    #[arg(long, env = "LIDO_BENCH_NO_CHART", conflicts_with = "chart_term",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub no_chart: bool,
    /// Draw the terminal chart even when stdout is not a terminal (no colours then).
    #[arg(long, env = "LIDO_BENCH_CHART_TERM", value_parser = clap::builder::BoolishValueParser::new())]
    pub chart_term: bool,
    /// Compare fixed sizes with adaptive sizing through workload phases (PostgreSQL only).
    ///
    /// For each phase (--phases: cpu = short CPU-bound queries, sleep =
    /// `pg_sleep(0.01)` IO-like waits, locks = `pg_advisory_xact_lock` on
    /// 4 keys held 2 ms in a transaction) it runs every --adaptive-sizes
    /// size for --duration after --warmup, then one adaptive pool (min 1,
    /// max the largest size) through all phases back to back for
    /// --phase-duration each, and prints per phase the best fixed size,
    /// the adaptive pool's throughput and p99 after it converged, the
    /// ratios and the time it took to converge.
    #[arg(long, env = "LIDO_BENCH_ADAPTIVE", value_parser = clap::builder::BoolishValueParser::new())]
    pub adaptive: bool,
    /// Fixed sizes for the --adaptive comparison curve.
    #[arg(
        long,
        env = "LIDO_BENCH_ADAPTIVE_SIZES",
        value_delimiter = ',',
        default_value = "1,2,4,8,16,32,64"
    )]
    pub adaptive_sizes: Vec<usize>,
    /// Phases for --adaptive, in order (cpu, sleep, locks).
    #[arg(
        long,
        env = "LIDO_BENCH_PHASES",
        value_delimiter = ',',
        default_value = "cpu,sleep,locks"
    )]
    pub phases: Vec<String>,
    /// How long the adaptive pool runs each phase (--adaptive).
    #[arg(long, env = "LIDO_BENCH_PHASE_DURATION", default_value = "40s", value_parser = parse_duration)]
    pub phase_duration: Duration,
    /// How often adaptive sizing samples the pool (--adaptive).
    #[arg(long, env = "LIDO_BENCH_ADAPTIVE_INTERVAL", default_value = "250ms", value_parser = parse_duration)]
    pub adaptive_interval: Duration,
}

/// Parses `5s`, `500ms`, `1m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 5s, 500ms, 1m)"))
}

//! `lido check`: connect once, the way the pool does, and report every step,
//! stopping at the first that fails with one line that says what to fix.
//!
//! The connection plan (which servers, in which order, with which TLS mode
//! and session check) and the dialing come from lido-postgres itself
//! ([`lido_postgres::ConnectPlan`], [`lido_postgres::connect_traced`]), so
//! the check reports on the sockets the application would use; this module
//! only words the steps and adds the queries after login. With several
//! hosts it then reports every node (role, read rotation, replica lag) as
//! lido-postgres's cluster monitor sees them (`cluster.rs`).

mod cluster;
mod failure;
mod report;
mod steps;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use lido_postgres::tokio_postgres::{Client, SimpleQueryMessage};
use lido_postgres::PgConfig;
use serde_json::json;

use crate::args::CheckArgs;
use crate::dburl;
use report::{ms, Failure, Reporter, Step};
use steps::Steps;

/// Runs `lido check`.
pub async fn run(args: CheckArgs) -> ExitCode {
    let cfg = match load_config(args.url()) {
        Ok(cfg) => cfg,
        Err(f) => {
            let target = args
                .url()
                .map_or_else(|| "(PG* environment)".to_owned(), dburl::redact);
            return Reporter::new(args.json, target).finish(Err(f));
        }
    };
    let mut rep = Reporter::new(args.json, cfg.to_string());
    let cfg = with_check_defaults(cfg, args.timeout);
    let outcome = check(&cfg, &args, &mut rep).await;
    rep.finish(outcome)
}

/// The settings to check, as given.
fn load_config(url: Option<&str>) -> Result<PgConfig, Failure> {
    let usage = |msg: String| {
        Failure::new(Step::Config, msg).hint(
            "use postgres://user:password@host:port/dbname?sslmode=verify-full or key=value pairs (host=… dbname=…)",
        )
    };
    let cfg = match url {
        Some(u) if u.trim_start().starts_with("sqlite:") => {
            return Err(Failure::new(
                Step::Config,
                "lido check checks PostgreSQL servers; a sqlite: URL was given",
            )
            .hint("give a postgres:// URL"));
        }
        Some(u) if dburl::is_postgres(u) => dburl::postgres(u).map_err(usage)?,
        Some(u) => {
            return Err(usage(format!(
                "{:?} is not a PostgreSQL connection string",
                dburl::redact(u)
            )))
        }
        None => PgConfig::from_env()
            .map_err(|e| usage(format!("invalid PG* environment setting: {e}")))?,
    };
    cfg.validate()
        .map_err(|e| usage(format!("invalid connection settings: {e}")))?;
    Ok(cfg)
}

/// What the check adds to the settings: `connect_timeout` defaults to
/// `--timeout` (each attempt is bounded), and the session is named `lido
/// check` in `pg_stat_activity` unless the settings name it.
fn with_check_defaults(mut cfg: PgConfig, timeout: Duration) -> PgConfig {
    cfg.connect_timeout.get_or_insert(timeout);
    cfg.fallback_application_name
        .get_or_insert_with(|| "lido check".to_owned());
    cfg
}

async fn check(cfg: &PgConfig, args: &CheckArgs, rep: &mut Reporter) -> Result<(), Failure> {
    let plan = cfg.plan();
    let several_hosts = plan.targets().len() > 1;
    steps::report_plan(&plan, rep);
    let mut steps = Steps::new(cfg, rep);
    let dialed = lido_postgres::connect_traced(cfg, &mut steps).await;
    let client = steps.finish(dialed)?;
    let q = Queries {
        client: &client,
        timeout: args.timeout,
    };
    q.server(rep).await?;
    q.latency(args.samples, rep).await?;
    q.connections(rep).await?;
    if several_hosts {
        cluster::report(cfg, args.timeout, rep).await?;
    }
    Ok(())
}

struct Queries<'a> {
    client: &'a Client,
    timeout: Duration,
}

impl Queries<'_> {
    async fn server(&self, rep: &mut Reporter) -> Result<(), Failure> {
        let sql = "SELECT current_setting('server_version'), pg_is_in_recovery()::text, current_setting('transaction_read_only')";
        let row = self.first_row(sql, Step::Server).await?;
        let col = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let (version, recovery, read_only) = (col(0), col(1) == "true", col(2) == "on");
        let role = match (recovery, read_only) {
            (true, _) => "standby (read-only)",
            (false, true) => "primary, read-only session (default_transaction_read_only)",
            (false, false) => "primary (read-write)",
        };
        let data = json!({ "version": version, "in_recovery": recovery, "read_only": read_only });
        rep.ok(
            Step::Server,
            format!("PostgreSQL {version}, {role}"),
            None,
            data,
        );
        Ok(())
    }

    async fn latency(&self, samples: u32, rep: &mut Reporter) -> Result<(), Failure> {
        let mut times = Vec::with_capacity(samples.max(1) as usize);
        for _ in 0..samples.max(1) {
            let started = Instant::now();
            self.first_row("SELECT 1", Step::Latency).await?;
            times.push(started.elapsed());
        }
        times.sort();
        let median = times[times.len() / 2];
        let (min, max) = (times[0], times[times.len() - 1]);
        let line = format!(
            "median {:.2} ms over {} × SELECT 1 (min {:.2}, max {:.2})",
            ms(median),
            times.len(),
            ms(min),
            ms(max)
        );
        let data = json!({ "median_ms": ms(median), "min_ms": ms(min), "max_ms": ms(max), "samples": times.len() });
        rep.ok(Step::Latency, line, None, data);
        Ok(())
    }

    async fn connections(&self, rep: &mut Reporter) -> Result<(), Failure> {
        let sql = "SELECT current_setting('max_connections'), current_setting('superuser_reserved_connections'), \
                   (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')";
        let row = self.first_row(sql, Step::Connections).await?;
        let num = |i: usize| -> i64 {
            row.get(i)
                .cloned()
                .flatten()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let (max, reserved, in_use) = (num(0), num(1), num(2));
        let free = (max - reserved - in_use).max(0);
        let line = format!(
            "{in_use} in use of max_connections {max} ({reserved} reserved for superusers, {free} free for others)"
        );
        let data = json!({ "in_use": in_use, "max_connections": max, "superuser_reserved": reserved, "free": free });
        rep.ok(Step::Connections, line, None, data);
        Ok(())
    }

    /// Runs `sql` (simple protocol, so it works through PgBouncer too) and
    /// returns the first row's text columns.
    async fn first_row(&self, sql: &str, step: Step) -> Result<Vec<Option<String>>, Failure> {
        let limit = self.timeout;
        let msgs = match tokio::time::timeout(limit, self.client.simple_query(sql)).await {
            Err(_) => {
                return Err(
                    Failure::new(step, format!("`{sql}` did not answer within {limit:?}")).hint(
                        "the server is overloaded or blocked; check pg_stat_activity and its log",
                    ),
                )
            }
            Ok(Err(e)) => {
                let e = lido_postgres::PgError::from(e);
                return Err(Failure::new(step, format!("`{sql}` failed: {e}")));
            }
            Ok(Ok(m)) => m,
        };
        msgs.iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
                }
                _ => None,
            })
            .ok_or_else(|| Failure::new(step, format!("`{sql}` returned no row")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_urls_are_config_errors_without_the_password() {
        let f = load_config(Some("postgres://u:hunter2@h:notaport/db")).expect_err("fails");
        assert_eq!(f.step, Step::Config);
        assert!(!f.line().contains("hunter2"), "{}", f.line());
        let f = load_config(Some("mysql://u:hunter2@h/db")).expect_err("fails");
        assert!(!f.line().contains("hunter2"), "{}", f.line());
        let f = load_config(Some("postgres://h/db?sslmode=sometimes")).expect_err("fails");
        assert!(f.line().contains("sslmode"), "{}", f.line());
    }

    #[test]
    fn the_timeout_bounds_each_connect_attempt() {
        let t = Duration::from_secs(3);
        let given = |s: &str| with_check_defaults(load_config(Some(s)).expect("valid"), t);
        assert_eq!(given("postgres://u@h/db").connect_timeout, Some(t));
        let cfg = given("postgres://u@h/db?connect_timeout=7&application_name=app");
        assert_eq!(cfg.connect_timeout, Some(Duration::from_secs(7)));
        assert_eq!(cfg.application_name.as_deref(), Some("app"));
    }
}

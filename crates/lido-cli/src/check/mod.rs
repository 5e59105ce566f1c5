//! `lido check`: connect once and report every step, stopping at the first
//! that fails with one line that says what to fix.

mod net;
mod report;
mod session;
mod tls;
mod tls_stream;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use lido_postgres::{PgConfig, SslMode, TargetSessionAttrs};
use serde_json::json;

use crate::args::CheckArgs;
use crate::dburl;
use net::Endpoint;
use report::{ms, Failure, Reporter, Step};
use session::{Session, Wanted};
use tls::TlsPolicy;
use tls_stream::TlsState;

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
    let outcome = Check::new(&cfg, &args).all_hosts(&mut rep).await;
    rep.finish(outcome)
}

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

struct Check<'a> {
    cfg: &'a PgConfig,
    timeout: Duration,
    connect_timeout: Duration,
    samples: u32,
    tls: Option<Result<TlsPolicy, Failure>>,
}

impl<'a> Check<'a> {
    fn new(cfg: &'a PgConfig, args: &CheckArgs) -> Self {
        Self {
            cfg,
            timeout: args.timeout,
            connect_timeout: cfg.connect_timeout.unwrap_or(args.timeout),
            samples: args.samples,
            tls: (cfg.sslmode != SslMode::Disable).then(|| tls::policy(cfg)),
        }
    }

    async fn all_hosts(&self, rep: &mut Reporter) -> Result<(), Failure> {
        let eps = net::endpoints(self.cfg);
        let mut last = None;
        for (i, ep) in eps.iter().enumerate() {
            let more = i + 1 < eps.len();
            match self.host(ep, rep).await {
                Ok(()) => return Ok(()),
                Err(f) => {
                    rep.failed(&f, if more { " (trying the next host)" } else { "" });
                    last = Some(f);
                }
            }
        }
        Err(last.unwrap_or_else(|| Failure::new(Step::Config, "no host to check")))
    }

    async fn host(&self, ep: &Endpoint, rep: &mut Reporter) -> Result<(), Failure> {
        let session = self.login(ep, rep).await?;
        self.server(&session, rep).await?;
        self.latency(&session, rep).await?;
        self.connections(&session, rep).await
    }

    /// resolve, connect, tls, auth (with sslmode=allow's retry over TLS).
    async fn login(&self, ep: &Endpoint, rep: &mut Reporter) -> Result<Session, Failure> {
        let (addrs, line) = net::resolve(ep, self.connect_timeout).await?;
        let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        rep.ok(Step::Resolve, line, None, json!({ "addresses": list }));
        let first = self.wanted(ep);
        let session = match self.attempt(ep, &addrs, first, rep).await {
            Err(f)
                if first == Wanted::Off
                    && self.cfg.sslmode == SslMode::Allow
                    && session::is_hba_rejection(&f) =>
            {
                rep.failed(&f, " (sslmode=allow: trying again over TLS)");
                self.attempt(ep, &addrs, Wanted::Require, rep).await?
            }
            other => other?,
        };
        self.report_tls(ep, &session.tls, rep);
        let user = session::user_of(self.cfg);
        let db = self.cfg.dbname.clone().unwrap_or_else(|| user.clone());
        rep.ok(
            Step::Auth,
            format!("logged in as user \"{user}\" to database \"{db}\""),
            Some(session.auth_elapsed),
            json!({ "user": user, "database": db }),
        );
        Ok(session)
    }

    fn wanted(&self, ep: &Endpoint) -> Wanted {
        match (ep, self.cfg.sslmode) {
            (Endpoint::Unix { .. }, _) | (_, SslMode::Disable | SslMode::Allow) => Wanted::Off,
            (_, SslMode::Prefer) => Wanted::Prefer,
            _ => Wanted::Require,
        }
    }

    async fn attempt(
        &self,
        ep: &Endpoint,
        addrs: &[std::net::SocketAddr],
        wanted: Wanted,
        rep: &mut Reporter,
    ) -> Result<Session, Failure> {
        let (conn, line, took) = net::connect(ep, addrs, self.connect_timeout).await?;
        rep.ok(
            Step::Connect,
            line,
            Some(took),
            json!({ "endpoint": ep.label() }),
        );
        let policy = match (&self.tls, wanted) {
            (_, Wanted::Off) | (None, _) => None,
            (Some(Err(f)), _) => return Err(f.clone()),
            (Some(Ok(p)), _) => Some((p.config.clone(), tls::server_name(ep.host())?)),
        };
        session::start(
            conn,
            self.cfg,
            policy,
            ep.host(),
            wanted,
            self.connect_timeout,
        )
        .await
    }

    fn report_tls(&self, ep: &Endpoint, state: &TlsState, rep: &mut Reporter) {
        let mode = self.cfg.sslmode.as_str();
        let (line, took, data) = match (state, ep) {
            (TlsState::Done(i), _) => {
                let verified = self.tls.as_ref().and_then(|p| p.as_ref().ok());
                let text = verified.map_or_else(String::new, |p| p.verified_text.clone());
                let cert = match (&i.subject, &i.not_after) {
                    (Some(s), Some(t)) => format!("; server certificate {s}, valid until {t}"),
                    _ => String::new(),
                };
                let data = json!({
                    "used": true, "version": i.version, "cipher": i.cipher, "sslmode": mode,
                    "verification": verified.map(|p| format!("{:?}", p.verification).to_lowercase()),
                    "verified": text, "subject": i.subject, "not_after": i.not_after,
                });
                (
                    format!("{} {}, {text}{cert}", i.version, i.cipher),
                    Some(i.elapsed),
                    data,
                )
            }
            (_, Endpoint::Unix { .. }) => (
                "not used (Unix socket)".to_owned(),
                None,
                json!({"used": false}),
            ),
            _ => {
                let why = match self.cfg.sslmode {
                    SslMode::Prefer => {
                        "the server does not offer TLS; sslmode=prefer fell back to plain text"
                            .to_owned()
                    }
                    SslMode::Allow => "sslmode=allow: the server accepted plain text".to_owned(),
                    _ => format!("sslmode={mode}"),
                };
                (
                    format!("not used ({why})"),
                    None,
                    json!({"used": false, "sslmode": mode}),
                )
            }
        };
        rep.ok(Step::Tls, line, took, data);
    }

    async fn server(&self, s: &Session, rep: &mut Reporter) -> Result<(), Failure> {
        let sql = "SELECT current_setting('server_version'), pg_is_in_recovery()::text, current_setting('transaction_read_only')";
        let row = session::first_row(&s.client, sql, Step::Server, self.timeout).await?;
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
        match (self.cfg.target_session_attrs, read_only) {
            (TargetSessionAttrs::ReadWrite, true) => Err(Failure::new(
                Step::Server,
                "the server is read-only, but target_session_attrs=read-write",
            )
            .hint("point the URL at the primary, or drop target_session_attrs")),
            (TargetSessionAttrs::ReadOnly, false) => Err(Failure::new(
                Step::Server,
                "the server accepts writes, but target_session_attrs=read-only",
            )
            .hint("point the URL at a standby, or drop target_session_attrs")),
            _ => Ok(()),
        }
    }

    async fn latency(&self, s: &Session, rep: &mut Reporter) -> Result<(), Failure> {
        let mut times = Vec::with_capacity(self.samples as usize);
        for _ in 0..self.samples {
            let started = Instant::now();
            session::first_row(&s.client, "SELECT 1", Step::Latency, self.timeout).await?;
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

    async fn connections(&self, s: &Session, rep: &mut Reporter) -> Result<(), Failure> {
        let sql = "SELECT current_setting('max_connections'), current_setting('superuser_reserved_connections'), \
                   (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')";
        let row = session::first_row(&s.client, sql, Step::Connections, self.timeout).await?;
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
}

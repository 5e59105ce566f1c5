//! The connect steps of `lido check`, worded from lido-postgres's own dial
//! events: the plan, then resolve, connect, tls and auth for each attempt,
//! with a failed attempt shown as such before the next one is tried.

use lido_postgres::tokio_postgres::Client;
use lido_postgres::{
    verification, ConnectPlan, DialEvent, DialObserver, Dialed, Lookup, Next, PgConfig, PgError,
    RootCert, SslMode, Target, TlsOutcome, Verification,
};
use serde_json::json;

use super::failure;
use super::report::{Failure, Reporter, Step};

/// The plan line: every server the pool would try, in order.
pub fn report_plan(plan: &ConnectPlan, rep: &mut Reporter) {
    let targets: Vec<String> = plan.targets().iter().map(ToString::to_string).collect();
    let servers = match (targets.len(), plan.load_balance_hosts()) {
        (1, _) => "1 server".to_owned(),
        (n, false) => format!("{n} servers, tried in this order"),
        (n, true) => format!("{n} servers, tried in random order (load_balance_hosts=random)"),
    };
    let line = format!(
        "{servers}: {} (sslmode={}, target_session_attrs={})",
        targets.join(", "),
        plan.sslmode().as_str(),
        plan.target_session_attrs().as_str(),
    );
    let data = json!({
        "targets": plan.targets().iter().map(target_json).collect::<Vec<_>>(),
        "sslmode": plan.sslmode().as_str(),
        "target_session_attrs": plan.target_session_attrs().as_str(),
        "load_balance_hosts": plan.load_balance_hosts(),
        "connect_timeout_ms": plan.connect_timeout().map(|t| t.as_millis() as u64),
    });
    rep.ok(Step::Plan, line, None, data);
}

fn target_json(t: &Target) -> serde_json::Value {
    json!({
        "target": t.to_string(),
        "host": t.host(),
        "hostaddr": t.hostaddr().map(|a| a.to_string()),
        "port": t.port(),
        "unix_socket": t.socket_path().map(|p| p.display().to_string()),
        "sslmode": t.sslmode().as_str(),
    })
}

/// Turns dial events into report lines as they come.
pub struct Steps<'a> {
    cfg: &'a PgConfig,
    rep: &'a mut Reporter,
    /// The last failed attempt, worded (the final error if nothing succeeds).
    last: Option<Failure>,
}

impl<'a> Steps<'a> {
    /// Steps of a check of `cfg`, reported to `rep`.
    pub fn new(cfg: &'a PgConfig, rep: &'a mut Reporter) -> Self {
        Self {
            cfg,
            rep,
            last: None,
        }
    }

    /// The logged-in client, or the failure of the last attempt.
    pub fn finish(self, dialed: Result<Dialed, PgError>) -> Result<Client, Failure> {
        match dialed {
            Ok(d) => Ok(d.client),
            Err(e) => Err(self.last.unwrap_or_else(|| failure::of(&e, None, self.cfg))),
        }
    }

    fn resolved(&mut self, target: &Target, addresses: &[std::net::SocketAddr], lookup: Lookup) {
        let list: Vec<String> = addresses.iter().map(|a| a.ip().to_string()).collect();
        let line = match lookup {
            Lookup::UnixSocket => format!(
                "Unix socket {}",
                target.socket_path().unwrap_or_default().display()
            ),
            Lookup::Hostaddr => format!("hostaddr {} (no lookup)", list.join(", ")),
            Lookup::IpAddress => format!("{} is an IP address (no lookup)", target.host()),
            _ => format!("{} → {}", target.host(), list.join(", ")),
        };
        self.rep.ok(
            Step::Resolve,
            line,
            None,
            json!({ "target": target.to_string(), "addresses": list }),
        );
    }

    fn tls(&mut self, outcome: &TlsOutcome) {
        let mode = self.cfg.sslmode.as_str();
        let (line, took, data) = match outcome {
            TlsOutcome::Negotiated(i) => {
                let v = verification(self.cfg).unwrap_or(Verification::None);
                let text = verified_text(self.cfg, v);
                let cert = match (&i.subject, &i.not_after) {
                    (Some(s), Some(t)) => format!("; server certificate {s}, valid until {t}"),
                    _ => String::new(),
                };
                let data = json!({
                    "used": true, "version": i.version, "cipher": i.cipher, "sslmode": mode,
                    "verification": format!("{v:?}").to_lowercase(),
                    "verified": text, "subject": i.subject, "not_after": i.not_after,
                });
                (
                    format!("{} {}, {text}{cert}", i.version, i.cipher),
                    Some(i.elapsed),
                    data,
                )
            }
            TlsOutcome::UnixSocket => (
                "not used (Unix socket)".to_owned(),
                None,
                json!({ "used": false }),
            ),
            other => {
                let why = match (other, self.cfg.sslmode) {
                    (TlsOutcome::Declined, SslMode::Prefer) => {
                        "the server does not offer TLS; sslmode=prefer fell back to plain text"
                            .to_owned()
                    }
                    (_, SslMode::Allow) => {
                        "sslmode=allow: the server accepted plain text".to_owned()
                    }
                    _ => format!("sslmode={mode}"),
                };
                (
                    format!("not used ({why})"),
                    None,
                    json!({ "used": false, "sslmode": mode }),
                )
            }
        };
        self.rep.ok(Step::Tls, line, took, data);
    }

    fn failed(&mut self, target: &Target, f: Failure, next: Next) {
        let note = match next {
            Next::Address => " (trying the next address)",
            Next::RetryWithTls => " (sslmode=allow: trying again over TLS)",
            Next::RetryWithoutTls => " (sslmode=prefer: trying again without TLS)",
            Next::Target => " (trying the next host)",
            Next::AnyServer => " (no standby found: trying any server)",
            _ => "",
        };
        if !note.is_empty() {
            let data = json!({ "target": target.to_string(), "next": format!("{next:?}") });
            self.rep.failed(&f, note, data);
        }
        self.last = Some(f);
    }
}

impl DialObserver for Steps<'_> {
    fn event(&mut self, event: &DialEvent<'_>) {
        match event {
            DialEvent::Resolved {
                target,
                addresses,
                lookup,
                ..
            } => self.resolved(target, addresses, *lookup),
            DialEvent::Connected {
                target,
                address,
                took,
            } => {
                let line = if target.is_unix() {
                    format!("Unix socket {address}")
                } else {
                    format!("TCP to {address}")
                };
                self.rep.ok(
                    Step::Connect,
                    line,
                    Some(*took),
                    json!({ "endpoint": target.to_string(), "address": address }),
                );
            }
            DialEvent::Tls { outcome, .. } => self.tls(outcome),
            DialEvent::Authenticated { took, .. } => {
                let user = self
                    .cfg
                    .user
                    .clone()
                    .unwrap_or_else(lido_postgres::default_user);
                let db = self.cfg.dbname.clone().unwrap_or_else(|| user.clone());
                self.rep.ok(
                    Step::Auth,
                    format!("logged in as user \"{user}\" to database \"{db}\""),
                    Some(*took),
                    json!({ "user": user, "database": db }),
                );
            }
            DialEvent::Failed {
                target,
                stage,
                error,
                next,
            } => {
                let f = failure::of(error, Some((*stage, target)), self.cfg);
                self.failed(target, f, *next);
            }
            _ => {}
        }
    }
}

fn roots_text(cfg: &PgConfig) -> String {
    match &cfg.sslrootcert {
        Some(RootCert::File(p)) => format!("CA from sslrootcert {}", p.display()),
        Some(RootCert::System) => "CA from the system store (sslrootcert=system)".to_owned(),
        None => "CA from the system store".to_owned(),
    }
}

/// What a successful handshake under `cfg` proved.
pub fn verified_text(cfg: &PgConfig, v: Verification) -> String {
    let mode = cfg.sslmode.as_str();
    match v {
        Verification::None => format!(
            "not verified (sslmode={mode}: encrypted, but the server's identity is not checked; use sslmode=verify-full to check it)"
        ),
        Verification::Chain if cfg.sslmode == SslMode::VerifyCa => format!(
            "chain verified, host name not checked (verify-ca, {})",
            roots_text(cfg)
        ),
        Verification::Chain => format!(
            "chain verified, host name not checked (sslmode={mode} with sslrootcert acts as verify-ca, {})",
            roots_text(cfg)
        ),
        Verification::Full => format!("verified (verify-full, {})", roots_text(cfg)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_what_each_mode_verifies() {
        let text = |s: &str| {
            let cfg = PgConfig::parse(s).expect("valid");
            verified_text(&cfg, verification(&cfg).expect("verification"))
        };
        assert!(text("host=h sslmode=require").starts_with("not verified (sslmode=require"));
        assert!(
            text("host=h sslmode=verify-ca sslrootcert=/x/ca.pem").contains(
                "chain verified, host name not checked (verify-ca, CA from sslrootcert /x/ca.pem"
            )
        );
        assert!(text("host=h sslmode=require sslrootcert=/x/ca.pem").contains("acts as verify-ca"));
        assert!(text("host=h sslmode=verify-full").starts_with("verified (verify-full"));
    }
}

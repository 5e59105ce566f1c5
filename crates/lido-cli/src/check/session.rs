//! The TLS and auth steps (tokio-postgres's `connect_raw` over the stream the
//! connect step opened) and the queries that follow them. Queries use the
//! simple protocol, so `lido check` also works through PgBouncer.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lido_postgres::tokio_postgres::config::{ChannelBinding, SslMode as TpSslMode};
use lido_postgres::tokio_postgres::error::SqlState;
use lido_postgres::tokio_postgres::{self as tp, Client, SimpleQueryMessage};
use lido_postgres::PgConfig;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};

use super::net::Conn;
use super::report::{Failure, Step};
use super::tls_stream::{CheckTls, Probe, TlsState};
use crate::util::chain;

/// Whether TLS is asked for on this attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// No SSLRequest.
    Off,
    /// SSLRequest; plain text if refused.
    Prefer,
    /// SSLRequest; fail if refused.
    Require,
}

/// A logged-in session.
pub struct Session {
    /// The client (its connection runs on a task).
    pub client: Client,
    /// What TLS did.
    pub tls: TlsState,
    /// Startup time after TLS (authentication and parameter exchange).
    pub auth_elapsed: Duration,
}

/// The user name libpq would use.
pub fn user_of(cfg: &PgConfig) -> String {
    cfg.user.clone().unwrap_or_else(|| {
        std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "postgres".to_owned())
    })
}

fn startup_config(cfg: &PgConfig, wanted: Wanted) -> tp::Config {
    let mut c = tp::Config::new();
    let user = user_of(cfg);
    c.dbname(cfg.dbname.as_deref().unwrap_or(&user));
    c.user(&user);
    if let Some(p) = &cfg.password {
        c.password(p.expose());
    }
    let app = cfg.application_name.as_deref().unwrap_or("lido check");
    c.application_name(app);
    if let Some(o) = &cfg.options {
        c.options(o);
    }
    c.channel_binding(match cfg.channel_binding_required {
        Some(true) => ChannelBinding::Require,
        Some(false) => ChannelBinding::Disable,
        None => ChannelBinding::Prefer,
    });
    c.ssl_mode(match wanted {
        Wanted::Off => TpSslMode::Disable,
        Wanted::Prefer => TpSslMode::Prefer,
        Wanted::Require => TpSslMode::Require,
    });
    c
}

/// TLS negotiation and authentication over `conn`, within `limit`.
pub async fn start(
    conn: Conn,
    cfg: &PgConfig,
    policy: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    host: &str,
    wanted: Wanted,
    limit: Duration,
) -> Result<Session, Failure> {
    let probe: Probe = Arc::new(Mutex::new(TlsState::NotStarted));
    let tls = CheckTls {
        policy,
        host: host.to_owned(),
        probe: Arc::clone(&probe),
    };
    let tpc = startup_config(cfg, wanted);
    let started = Instant::now();
    let result = match conn {
        Conn::Tcp(s) => connect_raw(s, &tpc, tls, limit).await,
        #[cfg(unix)]
        Conn::Unix(s) => connect_raw(s, &tpc, tls, limit).await,
    };
    let state = probe
        .lock()
        .map(|mut g| std::mem::take(&mut *g))
        .unwrap_or_default();
    let total = started.elapsed();
    match result {
        Ok(client) => {
            let tls_time = match &state {
                TlsState::Done(i) => i.elapsed,
                _ => Duration::ZERO,
            };
            Ok(Session {
                client,
                tls: state,
                auth_elapsed: total.saturating_sub(tls_time),
            })
        }
        Err(Fail::Timeout) => Err(timeout_failure(state, wanted, limit)),
        Err(Fail::Postgres(e)) => Err(startup_failure(&e, state, cfg, wanted)),
    }
}

enum Fail {
    Timeout,
    Postgres(tp::Error),
}

async fn connect_raw<S>(
    stream: S,
    tpc: &tp::Config,
    tls: CheckTls,
    limit: Duration,
) -> Result<Client, Fail>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match tokio::time::timeout(limit, tpc.connect_raw(stream, tls)).await {
        Err(_) => Err(Fail::Timeout),
        Ok(Err(e)) => Err(Fail::Postgres(e)),
        Ok(Ok((client, connection))) => {
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "lido check: connection ended");
                }
            });
            Ok(client)
        }
    }
}

fn timeout_failure(state: TlsState, wanted: Wanted, limit: Duration) -> Failure {
    match state {
        TlsState::Handshaking => {
            Failure::new(Step::Tls, format!("the TLS handshake did not finish within {limit:?}"))
                .hint("a proxy or firewall may be interfering; check the server log")
        }
        TlsState::NotStarted if wanted != Wanted::Off => Failure::new(
            Step::Tls,
            format!("no answer to the SSLRequest within {limit:?}"),
        )
        .hint("is a PostgreSQL server (or PgBouncer) listening on this port?"),
        _ => Failure::new(
            Step::Auth,
            format!("no answer during authentication within {limit:?}"),
        )
        .hint("the server may be overloaded or waiting on an authentication backend; check the server log"),
    }
}

fn startup_failure(e: &tp::Error, state: TlsState, cfg: &PgConfig, wanted: Wanted) -> Failure {
    match state {
        TlsState::Failed(f) => return f,
        TlsState::Handshaking => {
            return Failure::new(Step::Tls, format!("TLS handshake failed: {}", chain(e)))
        }
        _ => {}
    }
    let text = chain(e);
    if wanted == Wanted::Require && text.contains("server does not support TLS") {
        return Failure::new(
            Step::Tls,
            format!(
                "the server does not support TLS, but sslmode={} requires it",
                cfg.sslmode.as_str()
            ),
        )
        .hint("enable ssl on the server, or lower sslmode (prefer or disable) if plain text is acceptable");
    }
    auth_failure(e, &text, cfg)
}

/// Whether the server refused the login in a way that TLS might change (pg_hba.conf).
pub fn is_hba_rejection(f: &Failure) -> bool {
    f.step == Step::Auth && f.message.contains("pg_hba.conf")
}

fn auth_failure(e: &tp::Error, text: &str, cfg: &PgConfig) -> Failure {
    let user = user_of(cfg);
    if let Some(db) = e.as_db_error() {
        let f = Failure::new(
            Step::Auth,
            format!("the server refused the login: {}", db.message()),
        );
        let code = db.code();
        return if *code == SqlState::INVALID_PASSWORD {
            f.hint(format!(
                "check the password for user \"{user}\" (in the URL or PGPASSWORD)"
            ))
        } else if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
            f.hint("the server's pg_hba.conf has no rule for this user, database, client address and encryption: ask its admin, or try another sslmode")
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            let db_name = cfg.dbname.clone().unwrap_or(user);
            f.hint(format!(
                "create database \"{db_name}\" or name an existing one (the path of the URL, or PGDATABASE)"
            ))
        } else if *code == SqlState::TOO_MANY_CONNECTIONS {
            f.hint("the server has no free connection slots (max_connections): close idle sessions or make pools smaller")
        } else if *code == SqlState::CANNOT_CONNECT_NOW {
            f.hint("the server is starting up or shutting down; try again shortly")
        } else {
            f
        };
    }
    if text.contains("password missing") {
        return Failure::new(
            Step::Auth,
            "the server asks for a password and none was given",
        )
        .hint("put it in the URL (postgres://user:PASSWORD@host/db) or set PGPASSWORD");
    }
    if text.contains("channel binding") {
        return Failure::new(Step::Auth, text.to_owned())
            .hint("channel binding needs SCRAM over TLS: use TLS (sslmode=require or stricter) or channel_binding=prefer");
    }
    Failure::new(
        Step::Auth,
        format!("the connection failed during startup: {text}"),
    )
    .hint("the server (or a proxy in front of it) closed the connection; check its log")
}

/// Runs `sql` (simple protocol) and returns the first row's text columns.
pub async fn first_row(
    client: &Client,
    sql: &str,
    step: Step,
    limit: Duration,
) -> Result<Vec<Option<String>>, Failure> {
    let msgs = match tokio::time::timeout(limit, client.simple_query(sql)).await {
        Err(_) => {
            return Err(
                Failure::new(step, format!("`{sql}` did not answer within {limit:?}")).hint(
                    "the server is overloaded or blocked; check pg_stat_activity and its log",
                ),
            )
        }
        Ok(Err(e)) => return Err(Failure::new(step, format!("`{sql}` failed: {}", chain(&e)))),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_config_follows_the_settings() {
        let cfg = PgConfig::parse(
            "postgres://app:pw@h/orders?application_name=x&channel_binding=require",
        )
        .expect("valid");
        let c = startup_config(&cfg, Wanted::Require);
        assert_eq!(c.get_user(), Some("app"));
        assert_eq!(c.get_dbname(), Some("orders"));
        assert_eq!(c.get_application_name(), Some("x"));
        assert_eq!(c.get_ssl_mode(), TpSslMode::Require);
        assert_eq!(c.get_channel_binding(), ChannelBinding::Require);
    }
}

//! A failed connect attempt as one `lido check` line and what to fix,
//! from lido-postgres's typed error and the stage it failed in.

use std::io::ErrorKind;

use lido_postgres::tokio_postgres::error::SqlState;
use lido_postgres::{PgConfig, PgError, Stage, TlsError};

use super::report::{Failure, Step};

/// The failure for `e`, met at `stage` (if known) of a connect under `cfg`.
pub fn of(e: &PgError, stage: Option<Stage>, cfg: &PgConfig) -> Failure {
    if let PgError::Tls(t) = e {
        return tls(t);
    }
    match stage {
        Some(Stage::Resolve) => resolve(e),
        Some(Stage::Connect) => connect(e),
        Some(Stage::SessionCheck) => session(e, cfg),
        Some(Stage::Tls) => Failure::new(Step::Tls, format!("TLS negotiation failed: {e}"))
            .hint("the server or a proxy in between closed it; check the server log"),
        _ => match e {
            PgError::Connect { .. } => connect(e),
            PgError::WrongSession { .. } => session(e, cfg),
            _ => auth(e, cfg),
        },
    }
}

fn resolve(e: &PgError) -> Failure {
    let (host, why) = match e {
        PgError::Connect { address, source } => (host_of(address), source.to_string()),
        other => (String::new(), other.to_string()),
    };
    Failure::new(
        Step::Resolve,
        format!("cannot resolve host \"{host}\": {why}"),
    )
    .hint("check the host name in the URL (or PGHOST) and this machine's DNS")
}

/// `host` of `host:port` / `[v6]:port`.
fn host_of(address: &str) -> String {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_matches(['[', ']']).to_owned()
}

fn connect(e: &PgError) -> Failure {
    let PgError::Connect { address, source } = e else {
        return Failure::new(Step::Connect, e.to_string());
    };
    if address.starts_with('/') {
        return Failure::new(Step::Connect, format!("Unix socket {address}: {source}")).hint(
            "is the server running, with unix_socket_directories and port matching host and port?",
        );
    }
    let f = Failure::new(Step::Connect, format!("TCP connect to {address}: {source}"));
    match source.kind() {
        ErrorKind::ConnectionRefused => f.hint(format!(
            "nothing listens on port {}: is PostgreSQL running there, with this port and listen_addresses covering this address?",
            address.rsplit_once(':').map_or("", |(_, p)| p)
        )),
        ErrorKind::TimedOut => f.hint(
            "the host may be down or a firewall drops the packets; check host, port and network path",
        ),
        _ => f.hint("check the host, the port and the network path (firewalls, security groups)"),
    }
}

fn tls(t: &TlsError) -> Failure {
    let f = Failure::new(Step::Tls, t.to_string());
    match t {
        TlsError::ServerRefusedTls { .. } => f.hint(
            "enable ssl on the server, or lower sslmode (prefer or disable) if plain text is acceptable",
        ),
        TlsError::UnknownCa => Failure::new(Step::Tls, "the server certificate is not signed by a trusted CA")
            .hint("point sslrootcert at the CA that signed the server certificate"),
        TlsError::HostnameMismatch { host, presented } => Failure::new(
            Step::Tls,
            match presented.as_slice() {
                [] => format!("the server certificate is not valid for host \"{host}\""),
                names => format!(
                    "the server certificate is not valid for host \"{host}\" (it names {})",
                    names.join(", ")
                ),
            },
        )
        .hint("connect with a name the certificate lists, or use sslmode=verify-ca to skip the name check"),
        TlsError::CertificateExpired => {
            f.hint("renew the server certificate (or fix this machine's clock)")
        }
        TlsError::Handshake(_) => f.hint(
            "the server may require a client certificate (sslcert/sslkey) or a TLS version this client lacks; check the server log",
        ),
        _ => f,
    }
}

fn session(e: &PgError, cfg: &PgConfig) -> Failure {
    let wanted = cfg.target_session_attrs.as_str();
    let f = Failure::new(Step::Server, format!("{e}"));
    match cfg.target_session_attrs {
        lido_postgres::TargetSessionAttrs::ReadWrite
        | lido_postgres::TargetSessionAttrs::Primary => f.hint(format!(
            "point the URL at the primary, or drop target_session_attrs={wanted}"
        )),
        _ => f.hint(format!(
            "point the URL at a standby, or drop target_session_attrs={wanted}"
        )),
    }
}

fn auth(e: &PgError, cfg: &PgConfig) -> Failure {
    let user = cfg.user.clone().unwrap_or_else(lido_postgres::default_user);
    let Some(db) = e.as_db_error() else {
        let text = e.to_string();
        if text.contains("password missing") {
            return Failure::new(
                Step::Auth,
                "the server asks for a password and none was given",
            )
            .hint("put it in the URL (postgres://user:PASSWORD@host/db) or set PGPASSWORD");
        }
        if text.contains("channel binding") {
            return Failure::new(Step::Auth, text).hint(
                "channel binding needs SCRAM over TLS: use TLS (sslmode=require or stricter) or channel_binding=prefer",
            );
        }
        return Failure::new(
            Step::Auth,
            format!("the connection failed during startup: {text}"),
        )
        .hint("the server (or a proxy in front of it) closed the connection; check its log");
    };
    let f = Failure::new(
        Step::Auth,
        format!("the server refused the login: {}", db.message()),
    );
    let code = db.code();
    if *code == SqlState::INVALID_PASSWORD {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_come_out_of_addresses() {
        assert_eq!(host_of("db.example:5432"), "db.example");
        assert_eq!(host_of("[::1]:5432"), "::1");
    }

    #[test]
    fn certificate_errors_say_what_to_fix() {
        let f = tls(&TlsError::UnknownCa);
        assert!(f.line().contains("sslrootcert"), "{}", f.line());
        let f = tls(&TlsError::HostnameMismatch {
            host: "db".into(),
            presented: vec!["localhost".into()],
        });
        assert!(
            f.line().contains("not valid for host \"db\""),
            "{}",
            f.line()
        );
        assert_eq!(f.step, Step::Tls);
    }
}

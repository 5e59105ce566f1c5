//! A failed connect attempt as one `lido check` line and what to fix,
//! from lido-postgres's typed error and the stage it failed in.

use std::io::ErrorKind;

use lido_postgres::tokio_postgres::error::SqlState;
use lido_postgres::{PgConfig, PgError, Stage, Target, TlsError};

use super::report::{Failure, Step};

/// The failure for `e`, met at a stage of connecting to a server (when
/// known) under `cfg`; it names the server.
pub fn of(e: &PgError, at: Option<(Stage, &Target)>, cfg: &PgConfig) -> Failure {
    let f = worded(e, at, cfg);
    match at {
        Some((_, target)) => f.on(target),
        None => f,
    }
}

fn worded(e: &PgError, at: Option<(Stage, &Target)>, cfg: &PgConfig) -> Failure {
    if let PgError::Tls(t) = e {
        return tls(t);
    }
    match at {
        Some((Stage::Resolve, target)) => resolve(e, target),
        Some((Stage::Connect, _)) => connect(e),
        Some((Stage::SessionCheck, _)) => session(e, cfg),
        Some((Stage::Tls, _)) => Failure::new(Step::Tls, format!("TLS negotiation failed: {e}"))
            .hint("the server or a proxy in between closed it; check the server log"),
        _ => match e {
            PgError::Connect { .. } => connect(e),
            PgError::WrongSession { .. } => session(e, cfg),
            _ => auth(e, cfg),
        },
    }
}

fn resolve(e: &PgError, target: &Target) -> Failure {
    let host = target.host();
    let why = match e {
        PgError::Connect { source, .. } => source.to_string(),
        other => other.to_string(),
    };
    Failure::new(
        Step::Resolve,
        format!("cannot resolve host \"{host}\": {why}"),
    )
    .hint("check the host name in the URL (or PGHOST) and this machine's DNS")
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
    fn a_lookup_failure_names_the_host_and_the_server() {
        let cfg = PgConfig::parse("host=db.example port=6543").expect("valid");
        let plan = cfg.plan();
        let target = &plan.targets()[0];
        let e = PgError::Connect {
            address: "db.example:6543".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such host"),
        };
        let f = of(&e, Some((Stage::Resolve, target)), &cfg);
        assert_eq!(f.step, Step::Resolve);
        assert!(
            f.line()
                .contains("cannot resolve host \"db.example\": no such host"),
            "{}",
            f.line()
        );
        assert_eq!(f.target.as_deref(), Some("db.example:6543"));
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

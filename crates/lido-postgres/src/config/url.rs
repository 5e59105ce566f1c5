//! `postgres://` and `postgresql://` URLs, as libpq reads them:
//! `postgres://[user[:password]@][host[:port][,host[:port]...]][/dbname][?key=value&...]`.

use crate::config::percent::dec;
use crate::config::pgconfig::PgConfig;
use crate::config::secret::Secret;
use crate::error::{invalid, ConfigError};

/// Parses `url` into `cfg`. Errors name the part at fault, never echo the URL.
pub(crate) fn parse_into(cfg: &mut PgConfig, url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
        .ok_or_else(|| ConfigError::Syntax("expected postgres:// or postgresql://".into()))?;
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let hostspec = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            userinfo_into(cfg, userinfo)?;
            hosts
        }
        None => authority,
    };
    hosts_into(cfg, hostspec)?;
    if let Some(db) = path.filter(|p| !p.is_empty()) {
        cfg.dbname = Some(dec("the database name", db)?);
    }
    if let Some(q) = query {
        query_into(cfg, q)?;
    }
    Ok(())
}

fn userinfo_into(cfg: &mut PgConfig, userinfo: &str) -> Result<(), ConfigError> {
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (userinfo, None),
    };
    if !user.is_empty() {
        cfg.user = Some(dec("the user name", user)?);
    }
    if let Some(p) = password {
        cfg.password = Some(Secret::new(dec("the password", p)?));
    }
    Ok(())
}

fn hosts_into(cfg: &mut PgConfig, spec: &str) -> Result<(), ConfigError> {
    if spec.is_empty() {
        return Ok(());
    }
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    for part in spec.split(',') {
        let (host, port) = split_host_port(part)?;
        hosts.push(dec("a host name", host)?);
        ports.push(port);
    }
    if hosts.iter().any(|h| !h.is_empty()) {
        cfg.hosts = hosts;
    }
    // A port given for some hosts only: the others get libpq's compiled-in
    // default (5432), not PGPORT (psql 15 does the same).
    if ports.iter().any(Option::is_some) {
        cfg.ports = ports.into_iter().map(|p| p.unwrap_or(5432)).collect();
    }
    Ok(())
}

fn split_host_port(part: &str) -> Result<(&str, Option<u16>), ConfigError> {
    let (host, port) = if let Some(v6) = part.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| ConfigError::Syntax("unterminated [ in an IPv6 host".into()))?;
        (h, after.strip_prefix(':'))
    } else {
        match part.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (part, None),
        }
    };
    let port = match port.filter(|p| !p.is_empty()) {
        Some(p) => Some(
            p.parse()
                .map_err(|_| invalid("port", "expected a number from 1 to 65535"))?,
        ),
        None => None,
    };
    Ok((host, port))
}

fn query_into(cfg: &mut PgConfig, query: &str) -> Result<(), ConfigError> {
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| ConfigError::Syntax("a URL parameter has no `=`".into()))?;
        // As libpq: only %XX is decoded; '+' stays a plus sign.
        let key = dec("a parameter name", k)?;
        let value = dec("a parameter value", v)?;
        // libpq's URL-only alias.
        let key = if key == "ssl" && value == "true" {
            cfg.set("sslmode", "require")?;
            continue;
        } else {
            key
        };
        cfg.set(&key, &value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::pgconfig::{PgConfig, RootCert, SslMode, TargetSessionAttrs};
    use crate::error::ConfigError;

    #[test]
    fn full_url() {
        let c = PgConfig::parse(
            "postgresql://al%40ice:p%3Ass@db.example:6543/my%20db?sslmode=verify-ca&sslrootcert=/ca.pem&application_name=svc&connect_timeout=5",
        )
        .unwrap();
        assert_eq!(c.user.as_deref(), Some("al@ice"));
        assert_eq!(c.password.as_ref().map(|p| p.expose()), Some("p:ss"));
        assert_eq!(c.hosts, ["db.example"]);
        assert_eq!(c.ports, [6543]);
        assert_eq!(c.dbname.as_deref(), Some("my db"));
        assert_eq!(c.sslmode, SslMode::VerifyCa);
        assert_eq!(c.sslrootcert, Some(RootCert::File("/ca.pem".into())));
        assert_eq!(c.application_name.as_deref(), Some("svc"));
        assert_eq!(c.connect_timeout, Some(std::time::Duration::from_secs(5)));
    }

    #[test]
    fn multi_host_ipv6_and_defaults() {
        let c = PgConfig::parse("postgres://h1:1,[::1]:2,h3/db?target_session_attrs=read-write")
            .unwrap();
        assert_eq!(c.hosts, ["h1", "::1", "h3"]);
        assert_eq!(c.ports, [1, 2, 5432]);
        assert_eq!(c.target_session_attrs, TargetSessionAttrs::ReadWrite);
        let bare = PgConfig::parse("postgres://").unwrap();
        assert!(bare.hosts.is_empty() && bare.user.is_none() && bare.dbname.is_none());
    }

    #[test]
    fn socket_dir_in_query() {
        let c = PgConfig::parse("postgresql:///mydb?host=/var/run/postgresql&port=5433").unwrap();
        assert_eq!(c.hosts, ["/var/run/postgresql"]);
        assert_eq!(c.ports, [5433]);
        assert_eq!(c.dbname.as_deref(), Some("mydb"));
    }

    #[test]
    fn plus_is_not_a_space_in_query_values() {
        let c = PgConfig::parse("postgres:///db?application_name=a+b%20c").unwrap();
        assert_eq!(c.application_name.as_deref(), Some("a+b c"));
        assert!(PgConfig::parse("postgres:///db?sslmode=disable+x").is_err());
    }

    #[test]
    fn ports_missing_from_a_host_list_are_5432_not_pgport() {
        let env = |url: &'static str| {
            move |k: &str| match k {
                "PGPORT" => Some("6000".to_owned()),
                "DATABASE_URL" => Some(url.to_owned()),
                _ => None,
            }
        };
        let some = PgConfig::from_env_with(env("postgres://h1:1,h2/db")).unwrap();
        assert_eq!(
            some.ports,
            [1, 5432],
            "libpq: an empty list entry is DEF_PGPORT"
        );
        let none = PgConfig::from_env_with(env("postgres://h1,h2/db")).unwrap();
        assert_eq!(none.ports, [6000], "no port at all: PGPORT for every host");
        let kv = PgConfig::parse("host=h1,h2 port=1,").unwrap();
        assert_eq!(kv.ports, [1, 5432]);
    }

    #[test]
    fn errors_never_echo_the_password() {
        for bad in [
            "postgres://u:topsecret@h:notaport/db",
            "postgres://u:topsecret@h/db?nonsense=1",
            "postgres://u:topsecret@h/db?novalue",
            "postgres://u:topsecret@[::1/db",
        ] {
            let e = PgConfig::parse(bad).unwrap_err();
            assert!(!format!("{e} {e:?}").contains("topsecret"), "{e}");
        }
        assert!(matches!(
            PgConfig::parse("postgres://h/db?nonsense=1"),
            Err(ConfigError::UnknownParameter(_))
        ));
    }
}

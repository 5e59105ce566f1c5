//! [`PgConfig`]: libpq-compatible connection settings.
//!
//! Parse a URL or `key=value` string with [`PgConfig::parse`] (see `url.rs`
//! and `conninfo.rs`), read the libpq environment with
//! [`PgConfig::from_env`] (see `env.rs`), or fill the fields by hand.
//! `Debug` and `Display` never show the password.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::percent::enc;
use crate::config::secret::Secret;
use crate::error::{invalid, ConfigError};

/// libpq's `sslmode`, with libpq's meaning for each value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain text only.
    Disable,
    /// Plain text first; TLS only if the server refuses plain text.
    Allow,
    /// TLS if the server offers it, else plain text (libpq's default).
    #[default]
    Prefer,
    /// TLS, no certificate check, unless `sslrootcert` is set: then as `VerifyCa`.
    Require,
    /// TLS, the certificate chain must reach a trusted root; the name is not checked.
    VerifyCa,
    /// TLS, chain and host name checked.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    fn parse(s: &str) -> Result<Self, ConfigError> {
        Ok(match s {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => {
                return Err(invalid(
                    "sslmode",
                    "use disable, allow, prefer, require, verify-ca or verify-full",
                ))
            }
        })
    }
}

/// Where trusted CA certificates come from (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file with one or more CA certificates.
    File(PathBuf),
    /// The operating system's store (`sslrootcert=system`, as in libpq 16;
    /// like libpq it implies `verify-full` checking).
    System,
}

/// Which server of a multi-host list is acceptable (`target_session_attrs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetSessionAttrs {
    /// Any server.
    #[default]
    Any,
    /// A server that accepts writes (`transaction_read_only = off`).
    ReadWrite,
    /// A read-only session (`transaction_read_only = on`: a standby, or
    /// `default_transaction_read_only = on`).
    ReadOnly,
    /// A server not in recovery (`pg_is_in_recovery()` false).
    Primary,
    /// A server in recovery (a hot standby).
    Standby,
    /// A standby if any host is one, else any server (two passes, as libpq).
    PreferStandby,
}

impl TargetSessionAttrs {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "any",
            Self::ReadWrite => "read-write",
            Self::ReadOnly => "read-only",
            Self::Primary => "primary",
            Self::Standby => "standby",
            Self::PreferStandby => "prefer-standby",
        }
    }
}

/// Connection settings with libpq's names and meaning.
///
/// ```
/// use lido_postgres::{PgConfig, SslMode};
/// let cfg = PgConfig::parse("postgres://app:s3cret@db1:5433,db2/orders?sslmode=verify-full").unwrap();
/// assert_eq!(cfg.hosts, ["db1", "db2"]);
/// assert_eq!(cfg.sslmode, SslMode::VerifyFull);
/// assert!(!format!("{cfg:?} {cfg}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Default)]
pub struct PgConfig {
    /// Host names, IP addresses, or Unix socket directories (starting with `/`).
    pub hosts: Vec<String>,
    /// Numeric addresses to connect to instead of resolving `hosts`
    /// (the host name is still used for TLS checks).
    pub hostaddrs: Vec<IpAddr>,
    /// One port for all hosts, or one per host. Empty means 5432.
    pub ports: Vec<u16>,
    /// Role name.
    pub user: Option<String>,
    /// Password (SCRAM or md5 as the server asks).
    pub password: Option<Secret>,
    /// Database name (defaults to the user name).
    pub dbname: Option<String>,
    /// TLS policy.
    pub sslmode: SslMode,
    /// Trusted CA certificates.
    pub sslrootcert: Option<RootCert>,
    /// Client certificate chain (PEM).
    pub sslcert: Option<PathBuf>,
    /// Client private key (PEM).
    pub sslkey: Option<PathBuf>,
    /// `application_name` reported to the server.
    pub application_name: Option<String>,
    /// Used when `application_name` is not set.
    pub fallback_application_name: Option<String>,
    /// Per-host connect timeout.
    pub connect_timeout: Option<Duration>,
    /// Raw libpq `options` (command-line options for the server, `-c name=value`).
    pub options: Option<String>,
    /// Which host of a multi-host list is acceptable.
    pub target_session_attrs: TargetSessionAttrs,
    /// Try hosts in random order (`load_balance_hosts=random`).
    pub load_balance_hosts: bool,
    /// TCP keepalives (on unless `keepalives=0`).
    pub keepalives: Option<bool>,
    /// Idle time before the first keepalive probe.
    pub keepalives_idle: Option<Duration>,
    /// Time between keepalive probes.
    pub keepalives_interval: Option<Duration>,
    /// Unanswered probes before the connection is considered dead.
    pub keepalives_count: Option<u32>,
    /// TCP_USER_TIMEOUT.
    pub tcp_user_timeout: Option<Duration>,
    /// SCRAM channel binding: `None` = prefer.
    pub channel_binding_required: Option<bool>,
}

fn seconds(key: &'static str, v: &str) -> Result<Option<Duration>, ConfigError> {
    let n: i64 = v
        .trim()
        .parse()
        .map_err(|_| invalid(key, "expected a whole number of seconds"))?;
    // libpq: zero or negative means "wait forever"; values 1 are raised to 2.
    Ok((n > 0).then(|| Duration::from_secs(n.max(2).unsigned_abs())))
}

/// A socket setting in seconds: 0 (or less) means the system's setting,
/// kept as zero so lido's own default does not replace it.
fn socket_seconds(key: &'static str, v: &str) -> Result<Option<Duration>, ConfigError> {
    let n: i64 = v
        .trim()
        .parse()
        .map_err(|_| invalid(key, "expected a whole number of seconds"))?;
    Ok(Some(Duration::from_secs(n.max(0).unsigned_abs())))
}

fn flag(key: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err(invalid(key, "expected 0 or 1")),
    }
}

fn list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim)
}

impl PgConfig {
    /// An empty configuration (every field unset; libpq defaults apply at connect).
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a `postgres://` / `postgresql://` URL or a libpq
    /// `key=value` string. The environment is not consulted.
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        let mut cfg = Self::new();
        cfg.apply_str(s)?;
        Ok(cfg)
    }

    /// Sets the password.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(Secret::new(password));
        self
    }

    /// Applies one libpq parameter by its libpq name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            "host" => self.hosts = list(value).map(str::to_owned).collect(),
            "hostaddr" => self.set_hostaddrs(value)?,
            "port" => self.set_ports(value)?,
            "user" => self.user = Some(value.to_owned()),
            "password" => self.password = Some(Secret::new(value)),
            "dbname" => self.dbname = Some(value.to_owned()),
            "sslmode" => self.sslmode = SslMode::parse(value)?,
            "sslrootcert" => {
                self.sslrootcert = Some(match value {
                    "system" => RootCert::System,
                    path => RootCert::File(path.into()),
                });
            }
            "sslcert" => self.sslcert = Some(value.into()),
            "sslkey" => self.sslkey = Some(value.into()),
            "application_name" => self.application_name = Some(value.to_owned()),
            "fallback_application_name" => self.fallback_application_name = Some(value.to_owned()),
            "connect_timeout" => self.connect_timeout = seconds("connect_timeout", value)?,
            "options" => self.options = Some(value.to_owned()),
            "target_session_attrs" => self.set_target(value)?,
            "load_balance_hosts" => {
                self.load_balance_hosts = match value {
                    "disable" => false,
                    "random" => true,
                    _ => return Err(invalid("load_balance_hosts", "use disable or random")),
                }
            }
            "keepalives" => self.keepalives = Some(flag("keepalives", value)?),
            "keepalives_idle" => self.keepalives_idle = socket_seconds("keepalives_idle", value)?,
            "keepalives_interval" => {
                self.keepalives_interval = socket_seconds("keepalives_interval", value)?;
            }
            "keepalives_count" => {
                let n = value
                    .parse()
                    .map_err(|_| invalid("keepalives_count", "expected a number"))?;
                self.keepalives_count = Some(n);
            }
            "tcp_user_timeout" => {
                let ms: u64 = value
                    .parse()
                    .map_err(|_| invalid("tcp_user_timeout", "expected milliseconds"))?;
                // 0: the system's setting, as libpq (left unset, lido's default does not apply).
                self.tcp_user_timeout = Some(Duration::from_millis(ms));
            }
            "channel_binding" => {
                self.channel_binding_required = match value {
                    "disable" => Some(false),
                    "prefer" => None,
                    "require" => Some(true),
                    _ => return Err(invalid("channel_binding", "use disable, prefer or require")),
                }
            }
            // Accepted for compatibility; they change nothing here.
            "sslcompression" | "gssencmode" | "sslsni" | "client_encoding" | "requiressl" => {
                self.set_legacy(key, value)?;
            }
            other => return Err(ConfigError::UnknownParameter(other.to_owned())),
        }
        Ok(())
    }

    fn set_legacy(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match (key, value) {
            ("requiressl", "1") => self.sslmode = SslMode::Require,
            ("client_encoding", v)
                if !v.eq_ignore_ascii_case("utf8") && !v.eq_ignore_ascii_case("utf-8") =>
            {
                return Err(invalid("client_encoding", "only UTF8 is supported"));
            }
            ("gssencmode", "require") => {
                return Err(invalid("gssencmode", "GSSAPI encryption is not supported"));
            }
            _ => {}
        }
        Ok(())
    }

    fn set_hostaddrs(&mut self, value: &str) -> Result<(), ConfigError> {
        self.hostaddrs = list(value)
            .map(|a| {
                a.parse()
                    .map_err(|_| invalid("hostaddr", "expected numeric IP addresses"))
            })
            .collect::<Result<_, _>>()?;
        Ok(())
    }

    fn set_ports(&mut self, value: &str) -> Result<(), ConfigError> {
        self.ports = list(value)
            .map(|p| {
                if p.is_empty() {
                    return Ok(5432);
                }
                p.parse()
                    .map_err(|_| invalid("port", "expected a number from 1 to 65535"))
            })
            .collect::<Result<_, _>>()?;
        Ok(())
    }

    fn set_target(&mut self, value: &str) -> Result<(), ConfigError> {
        self.target_session_attrs = match value {
            "any" => TargetSessionAttrs::Any,
            "read-write" => TargetSessionAttrs::ReadWrite,
            "read-only" => TargetSessionAttrs::ReadOnly,
            "primary" => TargetSessionAttrs::Primary,
            "standby" => TargetSessionAttrs::Standby,
            "prefer-standby" => TargetSessionAttrs::PreferStandby,
            _ => {
                return Err(invalid(
                    "target_session_attrs",
                    "use any, read-write, read-only, primary, standby or prefer-standby",
                ))
            }
        };
        Ok(())
    }

    /// Checks host, hostaddr and port lists line up (as libpq does).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let n = self.hosts.len().max(self.hostaddrs.len()).max(1);
        if !self.hosts.is_empty()
            && !self.hostaddrs.is_empty()
            && self.hosts.len() != self.hostaddrs.len()
        {
            return Err(ConfigError::HostList(format!(
                "{} hosts but {} hostaddrs: give one hostaddr per host",
                self.hosts.len(),
                self.hostaddrs.len()
            )));
        }
        if self.ports.len() > 1 && self.ports.len() != n {
            return Err(ConfigError::HostList(format!(
                "{} ports for {n} hosts: give one port, or one per host",
                self.ports.len()
            )));
        }
        if self.sslcert.is_some() != self.sslkey.is_some() {
            return Err(invalid(
                "sslcert",
                "sslcert and sslkey must be given together",
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("hosts", &self.hosts)
            .field("hostaddrs", &self.hostaddrs)
            .field("ports", &self.ports)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .field("dbname", &self.dbname)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("sslcert", &self.sslcert)
            .field("sslkey", &self.sslkey)
            .field("application_name", &self.application_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("options", &self.options)
            .field("target_session_attrs", &self.target_session_attrs)
            .field("load_balance_hosts", &self.load_balance_hosts)
            .finish_non_exhaustive()
    }
}

/// A URL with the password shown as `********`.
impl fmt::Display for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("postgres://")?;
        if let Some(user) = &self.user {
            f.write_str(&enc(user))?;
            if self.password.is_some() {
                f.write_str(":********")?;
            }
            f.write_str("@")?;
        }
        let n = self.hosts.len().max(1);
        for i in 0..n {
            if i > 0 {
                f.write_str(",")?;
            }
            match self.hosts.get(i) {
                Some(h) if h.starts_with('/') => {}
                Some(h) if h.contains(':') => write!(f, "[{h}]")?,
                Some(h) => f.write_str(&enc(h))?,
                None => {}
            }
            if let Some(p) = self.ports.get(i).or(self.ports.first()) {
                write!(f, ":{p}")?;
            }
        }
        write!(f, "/{}", enc(self.dbname.as_deref().unwrap_or("")))?;
        let mut sep = '?';
        let mut q = |f: &mut fmt::Formatter<'_>, k: &str, v: &str| {
            let r = write!(f, "{sep}{k}={}", enc(v));
            sep = '&';
            r
        };
        let sockets: Vec<&str> = self
            .hosts
            .iter()
            .filter(|h| h.starts_with('/'))
            .map(String::as_str)
            .collect();
        if !sockets.is_empty() {
            q(f, "host", &sockets.join(","))?;
        }
        q(f, "sslmode", self.sslmode.as_str())?;
        if let Some(RootCert::File(p)) = &self.sslrootcert {
            q(f, "sslrootcert", &p.display().to_string())?;
        }
        if self.sslrootcert == Some(RootCert::System) {
            q(f, "sslrootcert", "system")?;
        }
        if let Some(a) = &self.application_name {
            q(f, "application_name", a)?;
        }
        if self.target_session_attrs != TargetSessionAttrs::Any {
            q(
                f,
                "target_session_attrs",
                self.target_session_attrs.as_str(),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_known_and_unknown_keys() {
        let mut c = PgConfig::new();
        c.set("sslmode", "verify-ca").unwrap();
        c.set("connect_timeout", "1").unwrap();
        assert_eq!(c.sslmode, SslMode::VerifyCa);
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(2)));
        assert!(
            matches!(c.set("bogus", "1"), Err(ConfigError::UnknownParameter(k)) if k == "bogus")
        );
        assert!(c.set("sslmode", "maybe").is_err());
        c.set("connect_timeout", "0").unwrap();
        assert_eq!(c.connect_timeout, None);
    }

    #[test]
    fn validate_lists() {
        let mut c = PgConfig::parse("host=a,b,c port=1,2").unwrap();
        assert!(matches!(c.validate(), Err(ConfigError::HostList(_))));
        c.ports = vec![1];
        assert!(c.validate().is_ok());
        c.sslcert = Some("c.pem".into());
        assert!(c.validate().is_err());
    }

    #[test]
    fn debug_and_display_redact_the_password() {
        let c = PgConfig::parse("host=h user=u password=hunter2 dbname=d").unwrap();
        let shown = format!("{c:?} {c} {c:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("********"));
        assert_eq!(c.password.as_ref().map(Secret::expose), Some("hunter2"));
        assert_eq!(format!("{:?}", Secret::new("x")), "********");
    }

    #[test]
    fn display_round_trips() {
        let c = PgConfig::parse(
            "postgresql://u@h1:5433,[::1]:5434/db?sslmode=require&application_name=a%20b",
        )
        .unwrap();
        let again = PgConfig::parse(&c.to_string()).unwrap();
        assert_eq!(again, c);
    }
}

//! The servers a configuration names: libpq's `host`, `hostaddr` and `port`
//! lists paired up, the default host (the Unix socket directory) and port,
//! and the TLS mode each is tried with. The one place this pairing lives:
//! the pool's dialer and `lido check` both take their targets from here.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::config::defaults::default_host;
use crate::config::pgconfig::{PgConfig, SslMode};
use crate::net::endpoint::Endpoint;

/// One server of a [`ConnectPlan`](crate::ConnectPlan): a Unix socket
/// directory, or a TCP host (and `hostaddr`) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    host: String,
    hostaddr: Option<IpAddr>,
    port: u16,
    sslmode: SslMode,
}

impl Target {
    /// The host as given; `hostaddr` when only that was given; the default
    /// socket directory when neither was. It is the name TLS checks.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `hostaddr`: the address connected to without a name lookup.
    pub fn hostaddr(&self) -> Option<IpAddr> {
        self.hostaddr
    }

    /// The port (for a Unix socket, the number in the socket file's name).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS mode this server is tried with: the configuration's, except
    /// `disable` over a Unix socket (as libpq).
    pub fn sslmode(&self) -> SslMode {
        self.sslmode
    }

    /// Whether this is a Unix socket directory.
    pub fn is_unix(&self) -> bool {
        self.hostaddr.is_none() && self.host.starts_with('/')
    }

    /// The socket file (`DIR/.s.PGSQL.PORT`) of a Unix socket target.
    pub fn socket_path(&self) -> Option<PathBuf> {
        self.is_unix().then(|| {
            let dir = self.host.trim_end_matches('/');
            format!("{dir}/.s.PGSQL.{}", self.port).into()
        })
    }

    /// Where cancel requests for a session on this server go.
    pub(crate) fn endpoint(&self) -> Endpoint {
        Endpoint {
            connect_to: self
                .hostaddr
                .map_or_else(|| self.host.clone(), |a| a.to_string()),
            port: self.port,
            tls_name: self.host.clone(),
        }
    }
}

impl fmt::Display for Target {
    /// `host:port`, `[v6]:port`, `host:port (hostaddr a)` or the socket file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = self.socket_path() {
            return write!(f, "{}", path.display());
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{}:{}", self.host, self.port)?;
        }
        match self.hostaddr {
            Some(a) if a.to_string() != self.host => write!(f, " (hostaddr {a})"),
            _ => Ok(()),
        }
    }
}

/// The targets of `cfg`, in libpq's order.
pub(crate) fn list(cfg: &PgConfig) -> Vec<Target> {
    let hosts: Vec<String> = match (cfg.hosts.is_empty(), cfg.hostaddrs.is_empty()) {
        (false, _) => cfg.hosts.clone(),
        // hostaddr alone: it names the host (for TLS) too, as libpq does.
        (true, false) => cfg.hostaddrs.iter().map(ToString::to_string).collect(),
        (true, true) => vec![default_host()],
    };
    hosts
        .into_iter()
        .enumerate()
        .map(|(i, host)| {
            let port = cfg.ports.get(i).or(cfg.ports.first()).copied();
            let hostaddr = cfg.hostaddrs.get(i).copied();
            let unix = hostaddr.is_none() && host.starts_with('/');
            Target {
                sslmode: if unix { SslMode::Disable } else { cfg.sslmode },
                host,
                hostaddr,
                port: port.unwrap_or(5432),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &str) -> Vec<String> {
        let cfg = PgConfig::parse(s).expect("valid settings");
        list(&cfg).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn libpq_lists_pair_up() {
        assert_eq!(
            names("host=a,/run/pg port=6000"),
            ["a:6000", "/run/pg/.s.PGSQL.6000"]
        );
        assert_eq!(names("host=a,b port=1,2"), ["a:1", "b:2"]);
        assert_eq!(names("hostaddr=127.0.0.1"), ["127.0.0.1:5432"]);
        assert_eq!(
            names("host=db.example hostaddr=10.0.0.1 port=6000"),
            ["db.example:6000 (hostaddr 10.0.0.1)"]
        );
        assert_eq!(names("host=::1 port=7"), ["[::1]:7"]);
        let default = format!("{}/.s.PGSQL.5432", default_host());
        assert_eq!(names("user=u"), [default]);
    }

    #[test]
    fn unix_sockets_never_use_tls_but_hostaddr_does() {
        let cfg = PgConfig::parse("host=/run/pg,db sslmode=require").expect("valid");
        let t = list(&cfg);
        assert_eq!(t[0].sslmode(), SslMode::Disable);
        assert_eq!(t[1].sslmode(), SslMode::Require);
        let cfg =
            PgConfig::parse("host=/run/pg hostaddr=127.0.0.1 sslmode=require").expect("valid");
        let t = &list(&cfg)[0];
        assert!(!t.is_unix());
        assert_eq!(t.endpoint().connect_to, "127.0.0.1");
    }
}

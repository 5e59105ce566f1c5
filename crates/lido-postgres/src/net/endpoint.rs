//! The target list: one tokio-postgres configuration and one [`Endpoint`]
//! per host, in libpq's order, with libpq's host/hostaddr pairing, default
//! host (the Unix socket directory) and default port.

use tokio_postgres::config::{ChannelBinding, SslMode as TpSslMode};

use crate::config::defaults::{default_host, default_user};
use crate::config::pgconfig::PgConfig;

/// Where one connection went: used to send it cancel requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `hostaddr`, else the host name, else a Unix socket directory.
    pub(crate) connect_to: String,
    pub(crate) port: u16,
    /// The host name checked by TLS.
    pub(crate) tls_name: String,
}

impl Endpoint {
    pub(crate) fn is_unix(&self) -> bool {
        self.connect_to.starts_with('/')
    }

    /// `host:port` (the address connected to), or the Unix socket path.
    pub(crate) fn address(&self) -> String {
        if self.is_unix() {
            self.unix_socket().display().to_string()
        } else if self.connect_to.contains(':') {
            format!("[{}]:{}", self.connect_to, self.port)
        } else {
            format!("{}:{}", self.connect_to, self.port)
        }
    }

    /// The socket file in a Unix socket directory (libpq's `.s.PGSQL.{port}`).
    pub(crate) fn unix_socket(&self) -> std::path::PathBuf {
        let dir = self.connect_to.trim_end_matches('/');
        format!("{dir}/.s.PGSQL.{}", self.port).into()
    }
}

/// One tokio-postgres configuration per host, in libpq's order, with TLS
/// mode `mode` (never TLS over Unix sockets, as libpq).
pub(crate) fn targets(
    cfg: &PgConfig,
    options: Option<String>,
    mode: TpSslMode,
) -> Vec<(tokio_postgres::Config, Endpoint)> {
    let hosts: Vec<String> = match (cfg.hosts.is_empty(), cfg.hostaddrs.is_empty()) {
        (false, _) => cfg.hosts.clone(),
        // hostaddr alone: use it as the TLS name too, as libpq does.
        (true, false) => cfg.hostaddrs.iter().map(ToString::to_string).collect(),
        (true, true) => vec![default_host()],
    };
    let base = base_config(cfg, options);
    hosts
        .into_iter()
        .enumerate()
        .map(|(i, host)| {
            let addr = cfg.hostaddrs.get(i);
            let port = cfg
                .ports
                .get(i)
                .or(cfg.ports.first())
                .copied()
                .unwrap_or(5432);
            let mut c = base.clone();
            c.host(&host).port(port);
            if let Some(a) = addr {
                c.hostaddr(*a);
            }
            c.ssl_mode(if host.starts_with('/') {
                TpSslMode::Disable
            } else {
                mode
            });
            let endpoint = Endpoint {
                connect_to: addr.map_or_else(|| host.clone(), ToString::to_string),
                port,
                tls_name: host,
            };
            (c, endpoint)
        })
        .collect()
}

/// Everything but the host list.
fn base_config(cfg: &PgConfig, options: Option<String>) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    let user = cfg.user.clone().unwrap_or_else(default_user);
    c.dbname(cfg.dbname.as_deref().unwrap_or(&user));
    c.user(&user);
    if let Some(p) = &cfg.password {
        c.password(p.expose());
    }
    if let Some(name) = cfg
        .application_name
        .as_ref()
        .or(cfg.fallback_application_name.as_ref())
    {
        c.application_name(name);
    }
    if let Some(o) = options {
        c.options(o);
    }
    c.channel_binding(match cfg.channel_binding_required {
        Some(true) => ChannelBinding::Require,
        Some(false) => ChannelBinding::Disable,
        None => ChannelBinding::Prefer,
    });
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokio_config_maps_libpq_settings() {
        let cfg = PgConfig::parse(
            "host=h1,h2 port=1,2 user=u password=pw dbname=d target_session_attrs=read-write application_name=a",
        )
        .unwrap();
        let t = targets(&cfg, Some("-c x=1".into()), TpSslMode::Require);
        assert_eq!(t.len(), 2);
        assert_eq!(
            t[1].1,
            Endpoint {
                connect_to: "h2".into(),
                port: 2,
                tls_name: "h2".into()
            }
        );
        let c = &t[0].0;
        assert_eq!(c.get_ports(), &[1]);
        assert_eq!(c.get_hosts().len(), 1);
        assert_eq!(c.get_user(), Some("u"));
        assert_eq!(c.get_dbname(), Some("d"));
        assert_eq!(c.get_options(), Some("-c x=1"));
        assert_eq!(c.get_application_name(), Some("a"));
        assert_eq!(c.get_ssl_mode(), TpSslMode::Require);
    }

    #[test]
    fn hostaddr_alone_names_the_host_and_sockets_skip_tls() {
        let cfg = PgConfig::parse("hostaddr=127.0.0.1 user=u").unwrap();
        let t = targets(&cfg, None, TpSslMode::Require);
        assert_eq!(t[0].1.tls_name, "127.0.0.1");
        assert_eq!(
            t[0].0.get_dbname(),
            Some("u"),
            "dbname defaults to the user"
        );
        let named = PgConfig::parse("host=db.example hostaddr=10.0.0.1 port=6000").unwrap();
        let e = &targets(&named, None, TpSslMode::Require)[0].1;
        assert_eq!(
            (e.connect_to.as_str(), e.tls_name.as_str(), e.port),
            ("10.0.0.1", "db.example", 6000)
        );
        // No host at all: libpq's default socket directory, so no TLS.
        let none = targets(
            &PgConfig::parse("user=u").unwrap(),
            None,
            TpSslMode::Require,
        );
        let expected = if std::path::Path::new("/var/run/postgresql").is_dir() {
            "/var/run/postgresql"
        } else {
            "/tmp"
        };
        assert_eq!(none[0].1.connect_to, expected);
        assert!(none[0].1.is_unix());
        assert_eq!(none[0].0.get_ssl_mode(), TpSslMode::Disable);
        assert_eq!(none[0].1.port, 5432);
        let sock = PgConfig::parse("host=/var/run/postgresql user=u sslmode=require").unwrap();
        let t = targets(&sock, None, TpSslMode::Require);
        assert_eq!(t[0].0.get_ssl_mode(), TpSslMode::Disable);
        assert!(t[0].1.is_unix());
    }
}

//! The tokio-postgres startup configuration for each [`Target`] of a
//! configuration: user, database, password, application name, startup
//! options, channel binding and the TLS mode of the first attempt.

use tokio_postgres::config::{ChannelBinding, SslMode as TpSslMode};

use crate::config::defaults::default_user;
use crate::config::pgconfig::{PgConfig, SslMode};
use crate::net::target::{self, Target};

/// One tokio-postgres configuration per target, in libpq's order, with
/// TLS mode `mode` (never TLS over Unix sockets, as libpq).
pub(crate) fn targets(
    cfg: &PgConfig,
    options: Option<String>,
    mode: TpSslMode,
) -> Vec<(tokio_postgres::Config, Target)> {
    let base = base_config(cfg, options);
    target::list(cfg)
        .into_iter()
        .map(|t| {
            let mut c = base.clone();
            c.host(t.host()).port(t.port());
            if let Some(a) = t.hostaddr() {
                c.hostaddr(a);
            }
            c.ssl_mode(if t.sslmode() == SslMode::Disable {
                TpSslMode::Disable
            } else {
                mode
            });
            (c, t)
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
        let e = t[1].1.endpoint();
        assert_eq!(
            (e.connect_to.as_str(), e.port, e.tls_name.as_str()),
            ("h2", 2, "h2")
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
        assert_eq!(t[0].1.endpoint().tls_name, "127.0.0.1");
        assert_eq!(
            t[0].0.get_dbname(),
            Some("u"),
            "dbname defaults to the user"
        );
        let named = PgConfig::parse("host=db.example hostaddr=10.0.0.1 port=6000").unwrap();
        let e = &targets(&named, None, TpSslMode::Require)[0].1.endpoint();
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
        assert_eq!(none[0].1.endpoint().connect_to, expected);
        assert!(none[0].1.is_unix());
        assert_eq!(none[0].0.get_ssl_mode(), TpSslMode::Disable);
        assert_eq!(none[0].1.port(), 5432);
        let sock = PgConfig::parse("host=/var/run/postgresql user=u sslmode=require").unwrap();
        let t = targets(&sock, None, TpSslMode::Require);
        assert_eq!(t[0].0.get_ssl_mode(), TpSslMode::Disable);
        assert!(t[0].1.is_unix());
    }
}

//! [`PgManager`]: lido-core's [`Manager`] for PostgreSQL.

use std::sync::Arc;

use futures::future::BoxFuture;
use lido_core::{ErrorClass, Manager};
use tokio_postgres::config::{ChannelBinding, SslMode as TpSslMode};
use tracing::Instrument;

use crate::config::{PgConfig, SslMode, TargetSessionAttrs};
use crate::conn::{ConnContext, PgConn};
use crate::connect::Dialer;
use crate::error::PgError;
use crate::session::SessionSettings;
use crate::stats::{bump, PgStats};

/// An async hook run on a connection: `|conn| Box::pin(async move { ... })`.
pub type Hook =
    Arc<dyn for<'a> Fn(&'a mut PgConn) -> BoxFuture<'a, Result<(), PgError>> + Send + Sync>;

/// Opens, checks and cleans PostgreSQL connections for a lido pool.
pub struct PgManager {
    targets: Vec<(tokio_postgres::Config, Endpoint)>,
    dialer: Dialer,
    attrs: TargetSessionAttrs,
    load_balance: bool,
    sslmode: SslMode,
    host_label: String,
    pub(crate) ctx: Arc<ConnContext>,
    after_connect: Option<Hook>,
    on_startup: Option<Hook>,
    started: tokio::sync::OnceCell<()>,
}

impl std::fmt::Debug for PgManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgManager")
            .field("hosts", &self.host_label)
            .field("sslmode", &self.sslmode)
            .field("pgbouncer", &self.ctx.pgbouncer)
            .finish_non_exhaustive()
    }
}

/// What the builder hands the manager.
pub(crate) struct ManagerParts {
    pub(crate) config: PgConfig,
    pub(crate) session: SessionSettings,
    pub(crate) ctx: Arc<ConnContext>,
    pub(crate) after_connect: Option<Hook>,
    pub(crate) on_startup: Option<Hook>,
}

pub(crate) fn default_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "postgres".to_owned())
}

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

    /// The socket file in a Unix socket directory (libpq's `.s.PGSQL.{port}`).
    pub(crate) fn unix_socket(&self) -> std::path::PathBuf {
        let dir = self.connect_to.trim_end_matches('/');
        format!("{dir}/.s.PGSQL.{}", self.port).into()
    }
}

/// libpq's host when none is given: the default Unix socket directory
/// (Debian's libpq: `/var/run/postgresql`; upstream's: `/tmp`), or
/// `localhost` where there are no Unix sockets.
pub(crate) fn default_host() -> String {
    if cfg!(unix) {
        let debian = std::path::Path::new("/var/run/postgresql");
        if debian.is_dir() {
            "/var/run/postgresql"
        } else {
            "/tmp"
        }
        .to_owned()
    } else {
        "localhost".to_owned()
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

impl PgManager {
    pub(crate) fn new(parts: ManagerParts) -> Self {
        let ManagerParts {
            config,
            session,
            ctx,
            after_connect,
            on_startup,
        } = parts;
        // PgBouncer rejects startup options; settings go in per transaction.
        let options = if ctx.pgbouncer {
            config.options.clone()
        } else {
            session.startup_options(config.options.as_deref())
        };
        // `allow` starts in plain text; the dialer makes libpq's second attempt.
        let first = match config.sslmode {
            SslMode::Disable | SslMode::Allow => TpSslMode::Disable,
            SslMode::Prefer => TpSslMode::Prefer,
            _ => TpSslMode::Require,
        };
        Self {
            targets: targets(&config, options, first),
            dialer: Dialer::new(&config),
            attrs: config.target_session_attrs,
            load_balance: config.load_balance_hosts,
            sslmode: config.sslmode,
            host_label: config.hosts.first().cloned().unwrap_or_else(default_host),
            ctx,
            after_connect,
            on_startup,
            started: tokio::sync::OnceCell::new(),
        }
    }

    /// PostgreSQL-level counters for this pool.
    pub fn stats(&self) -> &PgStats {
        &self.ctx.stats
    }

    /// Per-statement statistics of this pool.
    pub fn statement_stats(&self) -> &crate::StatementStats {
        &self.ctx.obs.statements
    }

    /// Whether this manager runs in PgBouncer transaction mode.
    pub fn pgbouncer(&self) -> bool {
        self.ctx.pgbouncer
    }

    /// Opens a connection and runs the hooks on it.
    async fn connect_inner(&self) -> Result<PgConn, PgError> {
        bump(&self.ctx.stats.connect_attempts);
        let mut conn = self.open_any().await?;
        if let Some(hook) = &self.on_startup {
            self.started
                .get_or_try_init(|| async { hook(&mut conn).await })
                .await?;
        }
        if let Some(hook) = &self.after_connect {
            hook(&mut conn).await?;
        }
        Ok(conn)
    }

    /// Tries each host in turn (shuffled with `load_balance_hosts=random`)
    /// for a session matching `attrs`; the last failure is reported.
    async fn open(&self, attrs: TargetSessionAttrs) -> Result<PgConn, PgError> {
        let mut order: Vec<usize> = (0..self.targets.len()).collect();
        if self.load_balance {
            fastrand::shuffle(&mut order);
        }
        let mut last = None;
        for i in order {
            let (config, endpoint) = &self.targets[i];
            match self
                .dialer
                .dial(config, endpoint, &self.ctx.tls, attrs)
                .await
            {
                Ok(o) => {
                    return Ok(PgConn::new(
                        o.client,
                        o.wire,
                        Arc::clone(&self.ctx),
                        endpoint.clone(),
                    ))
                }
                Err(e) => {
                    tracing::debug!(host = %endpoint.tls_name, port = endpoint.port, error = %e, "lido-postgres: host failed");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(PgError::Unsupported("no hosts configured")))
    }

    /// `prefer-standby`: a standby if any host is one, else any (libpq's two passes).
    async fn open_any(&self) -> Result<PgConn, PgError> {
        match self.attrs {
            TargetSessionAttrs::PreferStandby => match self.open(self.attrs).await {
                Ok(conn) => Ok(conn),
                Err(e) => {
                    tracing::debug!(error = %e, "lido-postgres: no standby found; taking any server");
                    self.open(TargetSessionAttrs::Any).await
                }
            },
            attrs => self.open(attrs).await,
        }
    }
}

impl Manager for PgManager {
    type Connection = PgConn;
    type Error = PgError;

    async fn connect(&self) -> Result<PgConn, PgError> {
        let span = crate::obs::spans::connect(&self.ctx.obs.db);
        let guard = crate::obs::spans::Unfinished::new(&span);
        let result = self.connect_inner().instrument(span.clone()).await;
        guard.finish(&result);
        result
    }

    async fn check(&self, conn: &mut PgConn) -> Result<(), PgError> {
        conn.client.simple_query("SELECT 1").await?;
        Ok(())
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.is_broken()
    }

    fn needs_reset(&self, conn: &mut PgConn) -> bool {
        conn.needs_reset()
    }

    async fn reset(&self, conn: &mut PgConn) -> Result<(), PgError> {
        conn.reset().await
    }

    fn classify(&self, err: &PgError) -> ErrorClass {
        err.class()
    }
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

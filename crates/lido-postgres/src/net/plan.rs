//! The connection plan: the [`Target`]s a configuration names, in libpq's
//! order, and how one connection is opened from them (each target in turn,
//! shuffled with `load_balance_hosts=random`; `prefer-standby` in libpq's
//! two passes). The pool's manager opens every connection through
//! [`ConnectPlan::open`]; `lido check` walks the same plan through
//! [`connect_traced`].

use std::time::Duration;

use tokio_postgres::config::SslMode as TpSslMode;
use tokio_postgres::Client;

use crate::config::pgconfig::{PgConfig, SslMode, TargetSessionAttrs};
use crate::error::{ConfigError, PgError};
use crate::net::dial::{Dialer, Opened};
use crate::net::events::{DialEvent, DialObserver, Next, Stage};
use crate::net::startup::targets;
use crate::net::target::Target;
use crate::net::tls::{connector, Tls};
use crate::net::tls_stream::TlsInfo;

/// The servers a pool tries and how: libpq's host, hostaddr and port lists
/// paired up ([`targets`](Self::targets)), with `sslmode`,
/// `target_session_attrs`, `load_balance_hosts` and `connect_timeout`.
///
/// ```
/// use lido_postgres::PgConfig;
///
/// let cfg = PgConfig::parse("postgres://app@db1,db2:6432/orders?target_session_attrs=read-write")?;
/// let plan = cfg.plan();
/// let names: Vec<String> = plan.targets().iter().map(ToString::to_string).collect();
/// assert_eq!(names, ["db1:5432", "db2:6432"]);
/// # Ok::<(), lido_postgres::ConfigError>(())
/// ```
pub struct ConnectPlan {
    targets: Vec<Target>,
    configs: Vec<tokio_postgres::Config>,
    dialer: Dialer,
    sslmode: SslMode,
    attrs: TargetSessionAttrs,
    load_balance: bool,
    connect_timeout: Option<Duration>,
}

impl std::fmt::Debug for ConnectPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let targets: Vec<String> = self.targets.iter().map(ToString::to_string).collect();
        f.debug_struct("ConnectPlan")
            .field("targets", &targets)
            .field("sslmode", &self.sslmode)
            .field("target_session_attrs", &self.attrs)
            .field("load_balance_hosts", &self.load_balance)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl ConnectPlan {
    /// The plan for `config`, with `options` as the startup `options`.
    pub(crate) fn new(config: &PgConfig, options: Option<String>) -> Self {
        // `allow` starts in plain text; the dialer makes libpq's second attempt.
        let first = match config.sslmode {
            SslMode::Disable | SslMode::Allow => TpSslMode::Disable,
            SslMode::Prefer => TpSslMode::Prefer,
            _ => TpSslMode::Require,
        };
        let (configs, targets) = targets(config, options, first).into_iter().unzip();
        Self {
            targets,
            configs,
            dialer: Dialer::new(config),
            sslmode: config.sslmode,
            attrs: config.target_session_attrs,
            load_balance: config.load_balance_hosts,
            connect_timeout: config.connect_timeout,
        }
    }

    /// The servers, in the order they are tried (`load_balance_hosts=random`
    /// shuffles them for each connect).
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// The `sslmode` asked for (each [`Target::sslmode`] says what it gets).
    pub fn sslmode(&self) -> SslMode {
        self.sslmode
    }

    /// What a session must be to be kept.
    pub fn target_session_attrs(&self) -> TargetSessionAttrs {
        self.attrs
    }

    /// Whether each connect tries the servers in a random order.
    pub fn load_balance_hosts(&self) -> bool {
        self.load_balance
    }

    /// The limit on one attempt (socket, TLS and startup), if any.
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// Opens one session that matches `target_session_attrs`; with
    /// `prefer-standby`, a standby if any host is one, else any server.
    pub(crate) async fn open(
        &self,
        tls: &Tls,
        obs: &mut dyn DialObserver,
    ) -> Result<Opened, PgError> {
        match self.attrs {
            TargetSessionAttrs::PreferStandby => {
                match self.open_with(tls, self.attrs, obs, Next::AnyServer).await {
                    Ok(opened) => Ok(opened),
                    Err(e) => {
                        tracing::debug!(error = %e, "lido-postgres: no standby found; taking any server");
                        let any = TargetSessionAttrs::Any;
                        self.open_with(tls, any, obs, Next::GiveUp).await
                    }
                }
            }
            attrs => self.open_with(tls, attrs, obs, Next::GiveUp).await,
        }
    }

    /// Whether `target`'s server answers at all (see [`Dialer::knock`]).
    pub(crate) async fn knock(&self, target: &Target) -> Result<(), PgError> {
        self.dialer.knock(target).await
    }

    /// Tries each target in turn for a session matching `attrs`; the last
    /// failure is reported. `then` follows the last target's failure.
    async fn open_with(
        &self,
        tls: &Tls,
        attrs: TargetSessionAttrs,
        obs: &mut dyn DialObserver,
        then: Next,
    ) -> Result<Opened, PgError> {
        let mut order: Vec<usize> = (0..self.targets.len()).collect();
        if self.load_balance {
            fastrand::shuffle(&mut order);
        }
        let mut last = None;
        for (n, &i) in order.iter().enumerate() {
            let (config, target) = (&self.configs[i], &self.targets[i]);
            let next = if n + 1 < order.len() {
                Next::Target
            } else {
                then
            };
            match self
                .dialer
                .dial(config, target, tls, attrs, obs, next)
                .await
            {
                Ok(opened) => return Ok(opened),
                Err(e) => {
                    tracing::debug!(server = %target, error = %e, "lido-postgres: host failed");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(PgError::Config(ConfigError::NoHosts)))
    }
}

impl PgConfig {
    /// The servers a pool built from these settings tries, and how (the
    /// pool adds its session settings to the startup options; the targets
    /// and their order are the same).
    pub fn plan(&self) -> ConnectPlan {
        ConnectPlan::new(self, self.options.clone())
    }
}

/// A session opened by [`connect_traced`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Dialed {
    /// The session (its connection runs on a spawned task).
    pub client: Client,
    /// The server it is on.
    pub target: Target,
    /// `ip:port` or the socket file it is connected to.
    pub address: String,
    /// What TLS negotiated, when it was used.
    pub tls: Option<TlsInfo>,
}

/// Opens one session the way a pool built from `cfg` does (the same plan,
/// dialer, TLS and `target_session_attrs` rules), telling `observer` each
/// step: what `lido check` reports.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use lido_postgres::{connect_traced, describe, DialEvent, DialObserver, PgConfig};
///
/// struct Print;
/// impl DialObserver for Print {
///     fn event(&mut self, e: &DialEvent<'_>) {
///         println!("{}", describe(e));
///     }
/// }
/// let cfg = PgConfig::parse("postgres://app@db1,db2/orders?target_session_attrs=read-write")?;
/// let session = connect_traced(&cfg, &mut Print).await?;
/// println!("on {} ({})", session.target, session.address);
/// # Ok(()) }
/// ```
pub async fn connect_traced(
    cfg: &PgConfig,
    observer: &mut dyn DialObserver,
) -> Result<Dialed, PgError> {
    let plan = cfg.plan();
    let tls = match connector(cfg) {
        Ok(tls) => tls,
        Err(e) => {
            let e = PgError::Tls(e);
            if let Some(target) = plan.targets.first() {
                observer.event(&DialEvent::Failed {
                    target,
                    stage: Stage::TlsSetup,
                    error: &e,
                    next: Next::GiveUp,
                });
            }
            return Err(e);
        }
    };
    let opened = plan.open(&tls, observer).await?;
    Ok(Dialed {
        client: opened.client,
        target: opened.target,
        address: opened.address,
        tls: opened.tls,
    })
}

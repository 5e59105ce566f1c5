//! The connection plan: the targets a configuration names, in libpq's
//! order, and how one connection is opened from them (each host in turn,
//! shuffled with `load_balance_hosts=random`; `prefer-standby` in libpq's
//! two passes). The pool's manager opens every connection through
//! [`Plan::open`].

use tokio_postgres::config::SslMode as TpSslMode;

use crate::config::pgconfig::{PgConfig, SslMode, TargetSessionAttrs};
use crate::error::{ConfigError, PgError};
use crate::net::dial::{Dialer, Opened};
use crate::net::endpoint::{targets, Endpoint};
use crate::net::tls::Tls;

/// Every target of one configuration and the dialer that opens them.
#[derive(Debug)]
pub(crate) struct Plan {
    targets: Vec<(tokio_postgres::Config, Endpoint)>,
    dialer: Dialer,
    attrs: TargetSessionAttrs,
    load_balance: bool,
}

impl Plan {
    /// The plan for `config`, with `options` as the startup `options`.
    pub(crate) fn new(config: &PgConfig, options: Option<String>) -> Self {
        // `allow` starts in plain text; the dialer makes libpq's second attempt.
        let first = match config.sslmode {
            SslMode::Disable | SslMode::Allow => TpSslMode::Disable,
            SslMode::Prefer => TpSslMode::Prefer,
            _ => TpSslMode::Require,
        };
        Self {
            targets: targets(config, options, first),
            dialer: Dialer::new(config),
            attrs: config.target_session_attrs,
            load_balance: config.load_balance_hosts,
        }
    }

    /// Opens one session that matches `target_session_attrs`; with
    /// `prefer-standby`, a standby if any host is one, else any server.
    pub(crate) async fn open(&self, tls: &Tls) -> Result<Opened, PgError> {
        match self.attrs {
            TargetSessionAttrs::PreferStandby => match self.open_with(tls, self.attrs).await {
                Ok(opened) => Ok(opened),
                Err(e) => {
                    tracing::debug!(error = %e, "lido-postgres: no standby found; taking any server");
                    self.open_with(tls, TargetSessionAttrs::Any).await
                }
            },
            attrs => self.open_with(tls, attrs).await,
        }
    }

    /// Whether the server at `endpoint` answers at all (see [`Dialer::knock`]).
    pub(crate) async fn knock(&self, endpoint: &Endpoint) -> Result<(), PgError> {
        self.dialer.knock(endpoint).await
    }

    /// Tries each host in turn for a session matching `attrs`; the last
    /// failure is reported.
    async fn open_with(&self, tls: &Tls, attrs: TargetSessionAttrs) -> Result<Opened, PgError> {
        let mut order: Vec<usize> = (0..self.targets.len()).collect();
        if self.load_balance {
            fastrand::shuffle(&mut order);
        }
        let mut last = None;
        for i in order {
            let (config, endpoint) = &self.targets[i];
            match self.dialer.dial(config, endpoint, tls, attrs).await {
                Ok(opened) => return Ok(opened),
                Err(e) => {
                    tracing::debug!(host = %endpoint.tls_name, port = endpoint.port, error = %e, "lido-postgres: host failed");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(PgError::Config(ConfigError::NoHosts)))
    }
}

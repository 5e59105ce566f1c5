//! [`PgServerBuilder`] and [`StopMode`].

use crate::error::TestkitError;
use crate::server::PgServer;

/// How [`PgServer::restart`] (or [`PgServer::stop_with`]) stops the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// `pg_ctl stop -m fast`: roll back open transactions, close client
    /// connections cleanly, checkpoint.
    Fast,
    /// `pg_ctl stop -m immediate`: kill every process at once, as a crash
    /// would; the next start runs crash recovery.
    Immediate,
}

impl StopMode {
    pub(crate) fn as_arg(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// Options for a [`PgServer`]; made by [`PgServer::builder`].
#[derive(Debug, Clone)]
pub struct PgServerBuilder {
    pub(crate) tls: bool,
    pub(crate) max_connections: u32,
    pub(crate) settings: Vec<(String, String)>,
}

impl Default for PgServerBuilder {
    fn default() -> Self {
        PgServerBuilder {
            tls: true,
            max_connections: 100,
            settings: Vec::new(),
        }
    }
}

impl PgServerBuilder {
    /// Whether the server offers TLS (`ssl = on`); on by default. Plain TCP
    /// connections are accepted either way.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// `max_connections` (100 by default).
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// Any other `postgresql.conf` setting; the value is written quoted
    /// (`key = 'value'`) after the testkit's own, so it wins.
    pub fn setting(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((key.into(), value.into()));
        self
    }

    /// Creates and starts the server.
    pub fn start(self) -> Result<PgServer, TestkitError> {
        PgServer::start_with(self)
    }
}

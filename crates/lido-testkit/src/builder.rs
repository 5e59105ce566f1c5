//! [`PgServerBuilder`] and [`StopMode`].

/// How [`PgServer::restart`](crate::PgServer::restart) (or
/// [`PgServer::stop_with`](crate::PgServer::stop_with)) stops the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// `pg_ctl stop -m fast`: roll back open transactions, close client
    /// connections cleanly, checkpoint.
    Fast,
    /// `pg_ctl stop -m immediate`: kill every process at once, as a crash
    /// would; the next start runs crash recovery.
    Immediate,
    /// `pg_ctl stop -m smart`: refuse new connections (57P03
    /// cannot_connect_now) and stop once the last session has ended. Use it
    /// with [`PgServer::begin_stop`](crate::PgServer::begin_stop) while
    /// sessions are open.
    Smart,
}

impl StopMode {
    pub(crate) fn as_arg(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
            StopMode::Smart => "smart",
        }
    }
}

/// The `postgresql.conf` settings of every node of a
/// [`PgReplicaSet`](crate::PgReplicaSet),
/// written after the testkit's own and before the builder's.
pub(crate) const REPLICATION_SETTINGS: [(&str, &str); 8] = [
    ("wal_level", "replica"),
    ("max_wal_senders", "10"),
    ("max_replication_slots", "10"),
    // A replica stopped for a while can still catch up from the primary's WAL.
    ("wal_keep_size", "64MB"),
    ("hot_standby", "on"),
    ("hot_standby_feedback", "off"),
    // A replica reconnects soon after its primary comes back.
    ("wal_retrieve_retry_interval", "200ms"),
    // PostgreSQL's default, unlike the testkit's single servers: a commit
    // flushes its WAL, and so streams it to the replicas at once (with
    // `off` they get it only when the WAL writer flushes, every 200 ms).
    // `fsync = off` keeps the flush cheap.
    ("synchronous_commit", "on"),
];

/// Options for a [`PgServer`](crate::PgServer); made by
/// [`PgServer::builder`](crate::PgServer::builder); finish with
/// [`start`](Self::start).
#[derive(Debug, Clone)]
pub struct PgServerBuilder {
    pub(crate) tls: bool,
    pub(crate) max_connections: u32,
    pub(crate) settings: Vec<(String, String)>,
    pub(crate) hba: Vec<String>,
    pub(crate) socket_dirs: Vec<String>,
    /// Streaming-replication settings and `pg_hba.conf` lines, set by
    /// [`PgReplicaSet`](crate::PgReplicaSet).
    pub(crate) replication: bool,
}

impl Default for PgServerBuilder {
    fn default() -> Self {
        PgServerBuilder {
            tls: true,
            max_connections: 100,
            settings: Vec::new(),
            hba: Vec::new(),
            socket_dirs: Vec::new(),
            replication: false,
        }
    }
}

impl PgServerBuilder {
    /// Also listens on a Unix socket in `dir` (besides the server's own
    /// directory), for example libpq's default socket directory to test
    /// connection strings that name no host. `dir` must be writable by the
    /// `postgres` OS user and hold no comma; the socket file is
    /// `.s.PGSQL.<port>`.
    pub fn socket_dir(mut self, dir: impl Into<String>) -> Self {
        self.socket_dirs.push(dir.into());
        self
    }

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

    /// Adds a TCP line to `pg_hba.conf`. Given any, they replace the
    /// testkit's own TCP lines (`host all all 127.0.0.1/32 scram-sha-256`
    /// and the same for `::1`); the Unix-socket line the testkit's `psql`
    /// uses stays first. For example
    /// `"hostssl all all 127.0.0.1/32 cert"` (client certificates, see
    /// [`PgServer::client_cert`](crate::PgServer::client_cert)) or
    /// `"hostnossl all all 127.0.0.1/32 scram-sha-256"`.
    /// In a [`PgReplicaSet`](crate::PgReplicaSet) the replication lines
    /// (`replication` over the socket and for `lido` over 127.0.0.1) are
    /// added either way.
    pub fn hba_line(mut self, line: impl Into<String>) -> Self {
        self.hba.push(line.into());
        self
    }
}

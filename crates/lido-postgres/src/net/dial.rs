//! Opening one connection, as libpq does: the socket (each resolved
//! address of a host in turn, or a Unix socket), the startup over
//! tokio-postgres' `connect_raw` on a [`Tracked`] stream, the second
//! attempt of `sslmode=allow` / `prefer`, and `target_session_attrs`.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_postgres::config::SslMode as TpSslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::config::pgconfig::{PgConfig, SslMode, TargetSessionAttrs};
use crate::error::{PgError, SessionMismatch};
use crate::net::endpoint::Endpoint;
use crate::net::socket::Socket;
use crate::net::tls::{Target, Tls};
use crate::net::wire::{Tracked, TrackingTls, WireState};

/// Where one attempt goes.
#[derive(Debug, Clone)]
enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "{a}"),
            Self::Unix(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A started session and its wire state.
pub(crate) struct Opened {
    pub(crate) client: Client,
    pub(crate) wire: Arc<WireState>,
    /// Where it is connected (for cancel requests and spans).
    pub(crate) endpoint: Endpoint,
    /// The task that runs the session's I/O: aborting it closes the socket.
    pub(crate) io: tokio::task::AbortHandle,
}

/// A failed startup, and whether TLS had been agreed when it failed.
struct Failed {
    error: PgError,
    tls_agreed: bool,
}

/// TCP keepalive and `TCP_USER_TIMEOUT` when the settings name none (libpq
/// would leave the system's, two hours on Linux): a server behind a network
/// black hole is found in about 10 s by the kernel. A server whose processes
/// stopped still has its kernel answer, so the pool's watchdog finds that
/// one (see `PgPoolBuilder::not_answering_after`).
pub(crate) mod keepalive_defaults {
    use std::time::Duration;

    /// Idle time before the first keepalive probe.
    pub(crate) const IDLE: Duration = Duration::from_secs(5);
    /// Time between keepalive probes.
    pub(crate) const INTERVAL: Duration = Duration::from_secs(2);
    /// Unanswered probes before the connection is dropped.
    pub(crate) const COUNT: u32 = 3;
    /// Longest sent data may stay unacknowledged.
    pub(crate) const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);
}

/// Opens sockets and sessions with libpq's socket settings.
#[derive(Debug)]
pub(crate) struct Dialer {
    connect_timeout: Option<Duration>,
    keepalives: bool,
    keepalives_idle: Option<Duration>,
    keepalives_interval: Option<Duration>,
    keepalives_count: Option<u32>,
    tcp_user_timeout: Option<Duration>,
    sslmode: SslMode,
}

impl Dialer {
    pub(crate) fn new(cfg: &PgConfig) -> Self {
        Self {
            connect_timeout: cfg.connect_timeout,
            keepalives: cfg.keepalives.unwrap_or(true),
            keepalives_idle: cfg.keepalives_idle.or(Some(keepalive_defaults::IDLE)),
            keepalives_interval: cfg
                .keepalives_interval
                .or(Some(keepalive_defaults::INTERVAL)),
            keepalives_count: cfg.keepalives_count.or(Some(keepalive_defaults::COUNT)),
            tcp_user_timeout: cfg
                .tcp_user_timeout
                .or(Some(keepalive_defaults::TCP_USER_TIMEOUT)),
            sslmode: cfg.sslmode,
        }
    }

    /// Connects to `endpoint` (each resolved address in turn) and checks
    /// `attrs`. `config` carries the user, database, options and TLS mode.
    pub(crate) async fn dial(
        &self,
        config: &tokio_postgres::Config,
        endpoint: &Endpoint,
        tls: &Tls,
        attrs: TargetSessionAttrs,
    ) -> Result<Opened, PgError> {
        let mut last = None;
        for addr in resolve(endpoint).await? {
            let result = match self
                .startup_with_fallback(config, endpoint, &addr, tls)
                .await
            {
                Ok(opened) => check_session(&opened.client, attrs)
                    .await
                    .map(|()| opened)
                    .map_err(|reason| wrong_session(reason, &addr, attrs)),
                Err(e) => Err(e),
            };
            match result {
                Ok(opened) => return Ok(opened),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| PgError::Connect {
            address: endpoint.address(),
            source: io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address"),
        }))
    }

    /// One startup, and libpq's second one: `allow` retries with TLS when
    /// the server refused the plain-text session; `prefer` retries in plain
    /// text when TLS was agreed but the handshake or the session failed.
    async fn startup_with_fallback(
        &self,
        config: &tokio_postgres::Config,
        endpoint: &Endpoint,
        addr: &Addr,
        tls: &Tls,
    ) -> Result<Opened, PgError> {
        let failed = match self.startup(config, endpoint, addr, tls).await {
            Ok(opened) => return Ok(opened),
            Err(failed) => failed,
        };
        let tcp = matches!(addr, Addr::Tcp(_));
        let retry = match self.sslmode {
            SslMode::Allow if tcp && failed.error.as_db_error().is_some() => TpSslMode::Require,
            SslMode::Prefer
                if failed.tls_agreed
                    && (matches!(failed.error, PgError::Tls(_))
                        || failed.error.as_db_error().is_some()) =>
            {
                TpSslMode::Disable
            }
            _ => return Err(failed.error),
        };
        tracing::debug!(error = %failed.error, sslmode = self.sslmode.as_str(), "lido-postgres: startup failed; trying again with TLS {}", if retry == TpSslMode::Disable { "off" } else { "on" });
        let mut again = config.clone();
        again.ssl_mode(retry);
        self.startup(&again, endpoint, addr, tls)
            .await
            .map_err(|f| f.error)
    }

    /// Socket, TLS (as `config`'s mode says) and startup, within `connect_timeout`.
    async fn startup(
        &self,
        config: &tokio_postgres::Config,
        endpoint: &Endpoint,
        addr: &Addr,
        tls: &Tls,
    ) -> Result<Opened, Failed> {
        let wire = Arc::new(WireState::default());
        let attempt = self.startup_on(config, endpoint, addr, tls, Arc::clone(&wire));
        let result = match self.connect_timeout {
            None => attempt.await,
            Some(limit) => match tokio::time::timeout(limit, attempt).await {
                Ok(r) => r,
                Err(_) => Err(PgError::Connect {
                    address: addr.to_string(),
                    source: io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connect_timeout ({}s) passed", limit.as_secs()),
                    ),
                }),
            },
        };
        result.map_err(|error| Failed {
            error,
            tls_agreed: wire.tls_answer() == Some(true),
        })
    }

    async fn startup_on(
        &self,
        config: &tokio_postgres::Config,
        endpoint: &Endpoint,
        addr: &Addr,
        tls: &Tls,
        wire: Arc<WireState>,
    ) -> Result<Opened, PgError> {
        let socket = self.socket(addr).await.map_err(|source| PgError::Connect {
            address: addr.to_string(),
            source,
        })?;
        let mut make = tls.clone();
        let Ok(connector) =
            MakeTlsConnect::<Tracked<Socket>>::make_tls_connect(&mut make, &endpoint.tls_name);
        let stream = Tracked::new(socket, Arc::clone(&wire));
        let (client, connection) = config
            .connect_raw(stream, TrackingTls(connector))
            .await
            .map_err(|e| {
                let refused =
                    wire.tls_answer() == Some(false) && config.get_ssl_mode() == TpSslMode::Require;
                let target = Target {
                    sslmode: self.sslmode,
                    host: &endpoint.tls_name,
                    address: addr.to_string(),
                };
                crate::net::tls::connect_error(e, &target, refused)
            })?;
        let io = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "lido-postgres: connection ended with an error");
            }
        });
        Ok(Opened {
            client,
            wire,
            endpoint: endpoint.clone(),
            io: io.abort_handle(),
        })
    }

    /// Asks the server at `endpoint` the one question it answers without a
    /// session: an SSLRequest, answered with one byte by the process the
    /// postmaster starts for it (no authentication, no session, nothing in
    /// `pg_stat_activity`). `Ok` once the byte arrives; an error when the
    /// server or the network refused. A server whose processes are stopped
    /// never answers (its kernel still accepts the socket).
    pub(crate) async fn knock(&self, endpoint: &Endpoint) -> Result<(), PgError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = resolve(endpoint).await?.into_iter().next();
        let addr = addr.ok_or_else(|| PgError::Connect {
            address: endpoint.address(),
            source: io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address"),
        })?;
        let failed = |source| PgError::Connect {
            address: addr.to_string(),
            source,
        };
        let mut socket = self.socket(&addr).await.map_err(failed)?;
        let mut request = [0u8; 8];
        request[..4].copy_from_slice(&8u32.to_be_bytes());
        request[4..].copy_from_slice(&crate::net::wire::SSL_REQUEST.to_be_bytes());
        socket.write_all(&request).await.map_err(failed)?;
        let mut answer = [0u8; 1];
        socket.read_exact(&mut answer).await.map_err(failed)?;
        Ok(())
    }

    async fn socket(&self, addr: &Addr) -> io::Result<Socket> {
        match addr {
            Addr::Tcp(a) => {
                let tcp = TcpStream::connect(a).await?;
                tcp.set_nodelay(true)?;
                self.tune(&tcp)?;
                Ok(Socket::Tcp(tcp))
            }
            #[cfg(unix)]
            Addr::Unix(path) => Ok(Socket::Unix(tokio::net::UnixStream::connect(path).await?)),
            #[cfg(not(unix))]
            Addr::Unix(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "Unix sockets need a Unix platform",
            )),
        }
    }

    /// Keepalives and TCP_USER_TIMEOUT: what was set, else
    /// [`keepalive_defaults`].
    fn tune(&self, tcp: &TcpStream) -> io::Result<()> {
        let sock = socket2::SockRef::from(tcp);
        if !self.keepalives {
            return sock.set_keepalive(false);
        }
        let mut ka = socket2::TcpKeepalive::new();
        if let Some(idle) = self.keepalives_idle {
            ka = ka.with_time(idle);
        }
        #[cfg(target_os = "linux")]
        {
            if let Some(every) = self.keepalives_interval {
                ka = ka.with_interval(every);
            }
            if let Some(n) = self.keepalives_count {
                ka = ka.with_retries(n);
            }
            if let Some(t) = self.tcp_user_timeout {
                sock.set_tcp_user_timeout(Some(t))?;
            }
        }
        sock.set_tcp_keepalive(&ka)
    }
}

/// The addresses of `endpoint`: its Unix socket, its numeric address, or
/// what its name resolves to.
async fn resolve(endpoint: &Endpoint) -> Result<Vec<Addr>, PgError> {
    if endpoint.is_unix() {
        return Ok(vec![Addr::Unix(endpoint.unix_socket())]);
    }
    let host = endpoint.connect_to.as_str();
    let found = tokio::net::lookup_host((host, endpoint.port))
        .await
        .map_err(|source| PgError::Connect {
            address: format!("{host}:{}", endpoint.port),
            source,
        })?;
    Ok(found.map(Addr::Tcp).collect())
}

/// libpq's `target_session_attrs` check, one round trip (none for `any`).
/// `Err` names what the server is.
async fn check_session(client: &Client, attrs: TargetSessionAttrs) -> Result<(), SessionMismatch> {
    use TargetSessionAttrs as T;
    if matches!(attrs, T::Any) {
        return Ok(());
    }
    let rows = client
        .simple_query(
            "SELECT pg_catalog.pg_is_in_recovery(), pg_catalog.current_setting('transaction_read_only')",
        )
        .await
        .map_err(|_| SessionMismatch::CheckFailed)?;
    let Some((recovery, read_only)) = rows.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some((r.get(0) == Some("t"), r.get(1) == Some("on"))),
        _ => None,
    }) else {
        return Err(SessionMismatch::CheckReturnedNoRow);
    };
    session_matches(attrs, recovery, read_only)
}

/// Whether a server in recovery `recovery` whose session is `read_only` matches `attrs`.
fn session_matches(
    attrs: TargetSessionAttrs,
    recovery: bool,
    read_only: bool,
) -> Result<(), SessionMismatch> {
    use SessionMismatch as M;
    use TargetSessionAttrs as T;
    match attrs {
        T::ReadWrite if read_only => Err(M::ReadOnly),
        T::ReadOnly if !read_only => Err(M::NotReadOnly),
        T::Primary if recovery => Err(M::InHotStandby),
        T::Standby | T::PreferStandby if !recovery => Err(M::NotInHotStandby),
        _ => Ok(()),
    }
}

fn wrong_session(reason: SessionMismatch, addr: &Addr, attrs: TargetSessionAttrs) -> PgError {
    PgError::WrongSession {
        address: addr.to_string(),
        reason,
        wanted: attrs.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TargetSessionAttrs as T;

    #[test]
    fn session_attrs_follow_libpq() {
        // (in recovery, read-only) for a primary, a read-only primary, a standby.
        let servers = [(false, false), (false, true), (true, true)];
        let want = |attrs, expect: [bool; 3]| {
            for (i, (rec, ro)) in servers.into_iter().enumerate() {
                assert_eq!(
                    session_matches(attrs, rec, ro).is_ok(),
                    expect[i],
                    "{attrs:?} on server {i}"
                );
            }
        };
        want(T::Any, [true, true, true]);
        want(T::ReadWrite, [true, false, false]);
        want(T::ReadOnly, [false, true, true]);
        want(T::Primary, [true, true, false]);
        want(T::Standby, [false, false, true]);
        want(T::PreferStandby, [false, false, true]);
    }

    #[tokio::test]
    async fn unix_endpoints_resolve_to_the_socket_file() {
        let e = Endpoint {
            connect_to: "/run/pg/".into(),
            port: 5433,
            tls_name: "/run/pg/".into(),
        };
        let addrs = resolve(&e).await.unwrap();
        assert_eq!(addrs.len(), 1);
        assert_eq!(addrs[0].to_string(), "/run/pg/.s.PGSQL.5433");
    }
}

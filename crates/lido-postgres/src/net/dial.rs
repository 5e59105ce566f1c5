//! Opening one connection to one [`Target`], as libpq does: each resolved
//! address in turn (or the Unix socket), the startup over tokio-postgres'
//! `connect_raw` on a [`Tracked`] stream, the second attempt of
//! `sslmode=allow` / `prefer`, and the `target_session_attrs` check. Each
//! step is told to a [`DialObserver`].

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::config::SslMode as TpSslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::Client;

use crate::config::pgconfig::{PgConfig, SslMode, TargetSessionAttrs};
use crate::error::{PgError, SessionMismatch};
use crate::net::events::{DialEvent, DialObserver, Lookup, Next, Stage, TlsOutcome};
use crate::net::notifications::{drive, NotifySink};
use crate::net::session_attrs::check_session;
use crate::net::socket::{Socket, SocketOptions};
use crate::net::target::Target;
use crate::net::tls::{Attempted, Tls};
use crate::net::tls_stream::{TlsInfo, TlsProbe};
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
    /// The server it is on (its endpoint gets cancel requests).
    pub(crate) target: Target,
    /// `ip:port` or the socket file.
    pub(crate) address: String,
    /// What TLS negotiated, when it was used.
    pub(crate) tls: Option<TlsInfo>,
    /// The task that runs the session's I/O: aborting it closes the socket.
    pub(crate) io: tokio::task::AbortHandle,
    /// Where the session's `NOTIFY` messages go.
    pub(crate) notify: Arc<NotifySink>,
}

/// A failed startup: the error, the stage it failed in, and whether TLS had
/// been agreed when it failed.
struct Failed {
    error: PgError,
    stage: Stage,
    tls_agreed: bool,
}

/// One attempt's target, address, observer and what follows its failure.
struct Attempt<'a> {
    target: &'a Target,
    addr: &'a Addr,
    obs: &'a mut dyn DialObserver,
}

impl Attempt<'_> {
    fn failed(&mut self, stage: Stage, error: &PgError, next: Next) {
        self.obs.event(&DialEvent::Failed {
            target: self.target,
            stage,
            error,
            next,
        });
    }
}

/// Opens sockets and sessions with libpq's socket settings.
#[derive(Debug)]
pub(crate) struct Dialer {
    connect_timeout: Option<Duration>,
    socket: SocketOptions,
    sslmode: SslMode,
}

impl Dialer {
    pub(crate) fn new(cfg: &PgConfig) -> Self {
        Self {
            connect_timeout: cfg.connect_timeout,
            socket: SocketOptions::new(cfg),
            sslmode: cfg.sslmode,
        }
    }

    /// Connects to `target` (each resolved address in turn) and checks
    /// `attrs`. `config` carries the user, database, options and TLS mode;
    /// `then` is what the caller does if this target fails.
    pub(crate) async fn dial(
        &self,
        config: &tokio_postgres::Config,
        target: &Target,
        tls: &Tls,
        attrs: TargetSessionAttrs,
        obs: &mut dyn DialObserver,
        then: Next,
    ) -> Result<Opened, PgError> {
        let started = Instant::now();
        let (addrs, lookup) = match resolve(target).await {
            Ok(found) => found,
            Err(e) => {
                let stage = Stage::Resolve;
                obs.event(&DialEvent::Failed {
                    target,
                    stage,
                    error: &e,
                    next: then,
                });
                return Err(e);
            }
        };
        let sockets: Vec<SocketAddr> = addrs
            .iter()
            .filter_map(|a| match a {
                Addr::Tcp(s) => Some(*s),
                Addr::Unix(_) => None,
            })
            .collect();
        obs.event(&DialEvent::Resolved {
            target,
            addresses: &sockets,
            lookup,
            took: started.elapsed(),
        });
        let mut last = None;
        for (i, addr) in addrs.iter().enumerate() {
            let next = if i + 1 < addrs.len() {
                Next::Address
            } else {
                then
            };
            let mut at = Attempt {
                target,
                addr,
                obs: &mut *obs,
            };
            match self.open(config, tls, attrs, &mut at, next).await {
                Ok(opened) => return Ok(opened),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| no_address(target)))
    }

    /// A session on one address that passes the `target_session_attrs` check.
    async fn open(
        &self,
        config: &tokio_postgres::Config,
        tls: &Tls,
        attrs: TargetSessionAttrs,
        at: &mut Attempt<'_>,
        next: Next,
    ) -> Result<Opened, PgError> {
        let opened = self.startup_with_fallback(config, tls, at, next).await?;
        if let Err(reason) = check_session(&opened.client, attrs).await {
            let e = wrong_session(reason, at.addr, attrs);
            at.failed(Stage::SessionCheck, &e, next);
            return Err(e);
        }
        if attrs != TargetSessionAttrs::Any {
            at.obs.event(&DialEvent::SessionChecked {
                target: at.target,
                wanted: attrs,
            });
        }
        Ok(opened)
    }

    /// One startup, and libpq's second one: `allow` retries with TLS when
    /// the server refused the plain-text session; `prefer` retries in plain
    /// text when TLS was agreed but the handshake or the session failed.
    async fn startup_with_fallback(
        &self,
        config: &tokio_postgres::Config,
        tls: &Tls,
        at: &mut Attempt<'_>,
        next: Next,
    ) -> Result<Opened, PgError> {
        let failed = match self.startup(config, tls, at).await {
            Ok(opened) => return Ok(opened),
            Err(failed) => failed,
        };
        let Some(retry) = self.second_attempt(at.addr, &failed) else {
            at.failed(failed.stage, &failed.error, next);
            return Err(failed.error);
        };
        let (mode, retrying) = retry;
        at.failed(failed.stage, &failed.error, retrying);
        let mut again = config.clone();
        again.ssl_mode(mode);
        self.startup(&again, tls, at).await.map_err(|f| {
            at.failed(f.stage, &f.error, next);
            f.error
        })
    }

    /// libpq's second attempt after `failed`, if its `sslmode` makes one.
    fn second_attempt(&self, addr: &Addr, failed: &Failed) -> Option<(TpSslMode, Next)> {
        let tcp = matches!(addr, Addr::Tcp(_));
        let server_said_no = failed.error.as_db_error().is_some();
        match self.sslmode {
            SslMode::Allow if tcp && server_said_no => {
                Some((TpSslMode::Require, Next::RetryWithTls))
            }
            SslMode::Prefer
                if failed.tls_agreed
                    && (matches!(failed.error, PgError::Tls(_)) || server_said_no) =>
            {
                Some((TpSslMode::Disable, Next::RetryWithoutTls))
            }
            _ => None,
        }
    }

    /// Socket, TLS (as `config`'s mode says) and startup, within `connect_timeout`.
    async fn startup(
        &self,
        config: &tokio_postgres::Config,
        tls: &Tls,
        at: &mut Attempt<'_>,
    ) -> Result<Opened, Failed> {
        let wire = Arc::new(WireState::default());
        let probe = TlsProbe::default();
        let connected = AtomicBool::new(false);
        let tls = tls.recording(Arc::clone(&probe));
        let attempt = self.startup_on(config, &tls, at, Arc::clone(&wire), &connected);
        let result = match self.connect_timeout {
            None => attempt.await,
            Some(limit) => match tokio::time::timeout(limit, attempt).await {
                Ok(r) => r,
                Err(_) => Err(PgError::Connect {
                    address: at.addr.to_string(),
                    source: io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connect_timeout ({}s) passed", limit.as_secs()),
                    ),
                }),
            },
        };
        result.map_err(|error| {
            let tls_agreed = wire.tls_answer() == Some(true);
            let stage = match () {
                () if !connected.load(Ordering::Relaxed) => Stage::Connect,
                () if matches!(error, PgError::Tls(_)) => Stage::Tls,
                () if tls_agreed && probe.lock().is_none() => Stage::Tls,
                () => Stage::Startup,
            };
            Failed {
                error,
                stage,
                tls_agreed,
            }
        })
    }

    async fn startup_on(
        &self,
        config: &tokio_postgres::Config,
        tls: &Tls,
        at: &mut Attempt<'_>,
        wire: Arc<WireState>,
        connected: &AtomicBool,
    ) -> Result<Opened, PgError> {
        let started = Instant::now();
        let address = at.addr.to_string();
        let socket = self
            .socket(at.addr)
            .await
            .map_err(|source| PgError::Connect {
                address: address.clone(),
                source,
            })?;
        connected.store(true, Ordering::Relaxed);
        let opened_at = Instant::now();
        at.obs.event(&DialEvent::Connected {
            target: at.target,
            address: &address,
            took: opened_at.duration_since(started),
        });
        let mut make = tls.clone();
        let name = at.target.host();
        let Ok(connector) = MakeTlsConnect::<Tracked<Socket>>::make_tls_connect(&mut make, name);
        let stream = Tracked::new(socket, Arc::clone(&wire));
        let (client, connection) = config
            .connect_raw(stream, TrackingTls(connector))
            .await
            .map_err(|e| {
                let refused =
                    wire.tls_answer() == Some(false) && config.get_ssl_mode() == TpSslMode::Require;
                let to = Attempted {
                    sslmode: self.sslmode,
                    host: name,
                    address: address.clone(),
                };
                crate::net::tls::connect_error(e, &to, refused)
            })?;
        let notify = Arc::new(NotifySink::default());
        let io = tokio::spawn(drive(connection, Arc::clone(&notify)));
        let info = tls.negotiated();
        let outcome = tls_outcome(at.target, config, &wire, info.clone());
        at.obs.event(&DialEvent::Tls {
            target: at.target,
            outcome: &outcome,
        });
        at.obs.event(&DialEvent::Authenticated {
            target: at.target,
            address: &address,
            took: opened_at.elapsed(),
        });
        Ok(Opened {
            client,
            wire,
            target: at.target.clone(),
            address,
            tls: info,
            io: io.abort_handle(),
            notify,
        })
    }

    /// Asks `target`'s server (its first address) the one question it answers without a
    /// session: an SSLRequest, answered with one byte by the process the
    /// postmaster starts for it (no authentication, no session, nothing in
    /// `pg_stat_activity`). `Ok` once the byte arrives; an error when the
    /// server or the network refused. A server whose processes are stopped
    /// never answers (its kernel still accepts the socket).
    pub(crate) async fn knock(&self, target: &Target) -> Result<(), PgError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (addrs, _) = resolve(target).await?;
        let addr = addrs.into_iter().next().ok_or_else(|| no_address(target))?;
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
            Addr::Tcp(a) => self.socket.tcp(*a).await,
            Addr::Unix(path) => Socket::unix(path).await,
        }
    }
}

/// What became of TLS on a session that started.
fn tls_outcome(
    target: &Target,
    config: &tokio_postgres::Config,
    wire: &WireState,
    info: Option<TlsInfo>,
) -> TlsOutcome {
    match info {
        Some(i) => TlsOutcome::Negotiated(i),
        None if target.is_unix() => TlsOutcome::UnixSocket,
        None if config.get_ssl_mode() == TpSslMode::Disable => TlsOutcome::NotRequested,
        None if wire.tls_answer() == Some(false) => TlsOutcome::Declined,
        None => TlsOutcome::NotRequested,
    }
}

fn no_address(target: &Target) -> PgError {
    PgError::Connect {
        address: target.to_string(),
        source: io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address"),
    }
}

/// The addresses of `target`: its Unix socket, its numeric address, or
/// what its name resolves to.
async fn resolve(target: &Target) -> Result<(Vec<Addr>, Lookup), PgError> {
    if let Some(path) = target.socket_path() {
        return Ok((vec![Addr::Unix(path)], Lookup::UnixSocket));
    }
    let port = target.port();
    if let Some(a) = target.hostaddr() {
        return Ok((vec![Addr::Tcp(SocketAddr::new(a, port))], Lookup::Hostaddr));
    }
    let host = target.host();
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok((
            vec![Addr::Tcp(SocketAddr::new(ip, port))],
            Lookup::IpAddress,
        ));
    }
    let found: Vec<Addr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| PgError::Connect {
            address: format!("{host}:{port}"),
            source,
        })?
        .map(Addr::Tcp)
        .collect();
    if found.is_empty() {
        return Err(no_address(target));
    }
    Ok((found, Lookup::Dns))
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

    fn target(s: &str) -> Target {
        let cfg = PgConfig::parse(s).expect("valid settings");
        crate::net::target::list(&cfg).remove(0)
    }

    #[tokio::test]
    async fn unix_targets_resolve_to_the_socket_file() {
        let (addrs, lookup) = resolve(&target("host=/run/pg/ port=5433")).await.unwrap();
        assert_eq!(addrs.len(), 1);
        assert_eq!(addrs[0].to_string(), "/run/pg/.s.PGSQL.5433");
        assert_eq!(lookup, Lookup::UnixSocket);
    }

    #[tokio::test]
    async fn hostaddr_and_ip_hosts_need_no_lookup() {
        let t = target("host=db.invalid hostaddr=127.0.0.1 port=1");
        let (addrs, lookup) = resolve(&t).await.unwrap();
        assert_eq!(addrs[0].to_string(), "127.0.0.1:1");
        assert_eq!(lookup, Lookup::Hostaddr);
        let (_, lookup) = resolve(&target("host=127.0.0.1")).await.unwrap();
        assert_eq!(lookup, Lookup::IpAddress);
    }
}

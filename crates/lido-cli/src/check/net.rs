//! The resolve and connect steps: which endpoints the settings name, their
//! addresses, and a TCP or Unix socket connection to one of them.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use lido_postgres::PgConfig;
use tokio::net::TcpStream;

use super::report::{Failure, Step};

/// One server of the host list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP server; `hostaddr` skips the lookup (the name still serves TLS).
    Tcp {
        /// Host name or IP (the TLS server name).
        host: String,
        /// Numeric address given with `hostaddr`.
        hostaddr: Option<IpAddr>,
        /// Port.
        port: u16,
    },
    /// A Unix socket directory (`host=/var/run/postgresql`).
    Unix {
        /// The directory.
        dir: String,
        /// Port (names the socket file).
        port: u16,
    },
}

impl Endpoint {
    /// `host:port` or the socket path, for messages.
    pub fn label(&self) -> String {
        match self {
            Self::Tcp { host, port, .. } if host.contains(':') => format!("[{host}]:{port}"),
            Self::Tcp { host, port, .. } => format!("{host}:{port}"),
            Self::Unix { dir, port } => socket_path(dir, *port),
        }
    }

    /// The TLS server name (TCP only).
    pub fn host(&self) -> &str {
        match self {
            Self::Tcp { host, .. } => host,
            Self::Unix { dir, .. } => dir,
        }
    }
}

fn socket_path(dir: &str, port: u16) -> String {
    format!("{}/.s.PGSQL.{port}", dir.trim_end_matches('/'))
}

/// The endpoints the settings name, in order (libpq's host/hostaddr/port lists).
pub fn endpoints(cfg: &PgConfig) -> Vec<Endpoint> {
    let n = cfg.hosts.len().max(cfg.hostaddrs.len()).max(1);
    (0..n)
        .map(|i| {
            let port = cfg
                .ports
                .get(i)
                .or(cfg.ports.first())
                .copied()
                .unwrap_or(5432);
            let hostaddr = cfg.hostaddrs.get(i).copied();
            let host = cfg
                .hosts
                .get(i)
                .cloned()
                .or_else(|| hostaddr.map(|a| a.to_string()))
                .unwrap_or_else(|| "localhost".to_owned());
            if host.starts_with('/') {
                Endpoint::Unix { dir: host, port }
            } else {
                Endpoint::Tcp {
                    host,
                    hostaddr,
                    port,
                }
            }
        })
        .collect()
}

/// The resolve step: the endpoint's socket addresses, and a line describing them.
pub async fn resolve(ep: &Endpoint, limit: Duration) -> Result<(Vec<SocketAddr>, String), Failure> {
    let (host, port) = match ep {
        Endpoint::Unix { dir, port } => {
            return Ok((
                Vec::new(),
                format!("Unix socket {}", socket_path(dir, *port)),
            ));
        }
        Endpoint::Tcp {
            hostaddr: Some(a), ..
        } => {
            let addr = SocketAddr::new(*a, port_of(ep));
            return Ok((vec![addr], format!("hostaddr {addr} (no lookup)")));
        }
        Endpoint::Tcp { host, port, .. } => (host.as_str(), *port),
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        let addr = SocketAddr::new(ip, port);
        return Ok((vec![addr], format!("{ip} is an IP address (no lookup)")));
    }
    let lookup = tokio::net::lookup_host((host, port));
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(limit, lookup).await {
        Ok(Ok(it)) => it.collect(),
        Ok(Err(e)) => return Err(lookup_failed(host, &e.to_string())),
        Err(_) => return Err(lookup_failed(host, &format!("no answer within {limit:?}"))),
    };
    if addrs.is_empty() {
        return Err(lookup_failed(host, "no addresses"));
    }
    let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
    Ok((addrs, format!("{host} → {}", list.join(", "))))
}

fn port_of(ep: &Endpoint) -> u16 {
    match ep {
        Endpoint::Tcp { port, .. } | Endpoint::Unix { port, .. } => *port,
    }
}

fn lookup_failed(host: &str, why: &str) -> Failure {
    Failure::new(
        Step::Resolve,
        format!("cannot resolve host \"{host}\": {why}"),
    )
    .hint("check the host name in the URL (or PGHOST) and this machine's DNS")
}

/// A connected byte stream to the server.
pub enum Conn {
    /// TCP.
    Tcp(TcpStream),
    /// Unix socket.
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

/// The connect step: tries each address in turn; returns the stream and a description.
pub async fn connect(
    ep: &Endpoint,
    addrs: &[SocketAddr],
    limit: Duration,
) -> Result<(Conn, String, Duration), Failure> {
    let started = Instant::now();
    if let Endpoint::Unix { dir, port } = ep {
        return connect_unix(&socket_path(dir, *port), limit, started).await;
    }
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok((Conn::Tcp(s), format!("TCP to {addr}"), started.elapsed()));
            }
            Ok(Err(e)) => last = Some(tcp_failed(*addr, &e)),
            Err(_) => last = Some(tcp_timeout(*addr, limit)),
        }
    }
    Err(last.unwrap_or_else(|| Failure::new(Step::Connect, "no address to connect to")))
}

fn tcp_failed(addr: SocketAddr, e: &io::Error) -> Failure {
    let f = Failure::new(Step::Connect, format!("TCP connect to {addr}: {e}"));
    match e.kind() {
        io::ErrorKind::ConnectionRefused => f.hint(format!(
            "nothing listens on port {}: is PostgreSQL running there, with this port and listen_addresses covering this address?",
            addr.port()
        )),
        _ => f.hint("check the host, the port and the network path (firewalls, security groups)"),
    }
}

fn tcp_timeout(addr: SocketAddr, limit: Duration) -> Failure {
    Failure::new(
        Step::Connect,
        format!("TCP connect to {addr}: no answer within {limit:?}"),
    )
    .hint("the host may be down or a firewall drops the packets; check host, port and network path")
}

#[cfg(unix)]
async fn connect_unix(
    path: &str,
    limit: Duration,
    started: Instant,
) -> Result<(Conn, String, Duration), Failure> {
    let fail = |why: String| {
        Failure::new(Step::Connect, format!("Unix socket {path}: {why}")).hint(
            "is the server running, with unix_socket_directories and port matching host and port?",
        )
    };
    match tokio::time::timeout(limit, tokio::net::UnixStream::connect(path)).await {
        Ok(Ok(s)) => Ok((
            Conn::Unix(s),
            format!("Unix socket {path}"),
            started.elapsed(),
        )),
        Ok(Err(e)) => Err(fail(e.to_string())),
        Err(_) => Err(fail(format!("no answer within {limit:?}"))),
    }
}

#[cfg(not(unix))]
async fn connect_unix(
    path: &str,
    _limit: Duration,
    _started: Instant,
) -> Result<(Conn, String, Duration), Failure> {
    Err(Failure::new(
        Step::Connect,
        format!("Unix socket {path}: not supported on this platform"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(s: &str) -> PgConfig {
        PgConfig::parse(s).expect("valid settings")
    }

    #[test]
    fn endpoints_follow_libpq_lists() {
        let eps = endpoints(&cfg("host=a,/run/pg port=6000"));
        assert_eq!(eps[0].label(), "a:6000");
        assert_eq!(eps[1].label(), "/run/pg/.s.PGSQL.6000");
        assert_eq!(endpoints(&cfg(""))[0].label(), "localhost:5432");
        let eps = endpoints(&cfg("hostaddr=127.0.0.1"));
        assert!(
            matches!(&eps[0], Endpoint::Tcp { host, hostaddr: Some(_), .. } if host == "127.0.0.1")
        );
    }

    #[tokio::test]
    async fn hostaddr_skips_the_lookup() {
        let ep = &endpoints(&cfg("host=db.invalid hostaddr=127.0.0.1 port=1"))[0];
        let (addrs, line) = resolve(ep, Duration::from_secs(1))
            .await
            .expect("no lookup");
        assert_eq!(addrs, [SocketAddr::from(([127, 0, 0, 1], 1))]);
        assert!(line.contains("no lookup"), "{line}");
    }
}

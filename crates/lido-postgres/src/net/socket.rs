//! [`Socket`]: a connected TCP or Unix stream, one type for tokio-postgres,
//! opened with libpq's socket settings ([`SocketOptions`]).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::pgconfig::PgConfig;

/// A connected TCP or Unix socket (a session's, or a cancel request's).
#[derive(Debug)]
pub(crate) enum Socket {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Socket::Tcp($s) => $e,
            #[cfg(unix)]
            Socket::Unix($s) => $e,
        }
    };
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

impl Socket {
    /// A Unix socket connection to `path`.
    pub(crate) async fn unix(path: &std::path::Path) -> io::Result<Self> {
        #[cfg(unix)]
        {
            Ok(Self::Unix(tokio::net::UnixStream::connect(path).await?))
        }
        #[cfg(not(unix))]
        {
            let _ = path;
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "Unix sockets need a Unix platform",
            ))
        }
    }
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

/// libpq's socket settings: keepalives and TCP_USER_TIMEOUT, with
/// [`keepalive_defaults`] for what the settings leave out.
#[derive(Debug, Clone)]
pub(crate) struct SocketOptions {
    keepalives: bool,
    keepalives_idle: Option<Duration>,
    keepalives_interval: Option<Duration>,
    keepalives_count: Option<u32>,
    tcp_user_timeout: Option<Duration>,
}

impl SocketOptions {
    pub(crate) fn new(cfg: &PgConfig) -> Self {
        Self {
            keepalives: cfg.keepalives.unwrap_or(true),
            keepalives_idle: cfg.keepalives_idle.or(Some(keepalive_defaults::IDLE)),
            keepalives_interval: cfg
                .keepalives_interval
                .or(Some(keepalive_defaults::INTERVAL)),
            keepalives_count: cfg.keepalives_count.or(Some(keepalive_defaults::COUNT)),
            tcp_user_timeout: cfg
                .tcp_user_timeout
                .or(Some(keepalive_defaults::TCP_USER_TIMEOUT)),
        }
    }

    /// A TCP connection to `addr`, without Nagle, tuned.
    pub(crate) async fn tcp(&self, addr: SocketAddr) -> io::Result<Socket> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        self.tune(&tcp)?;
        Ok(Socket::Tcp(tcp))
    }

    /// Keepalives and TCP_USER_TIMEOUT: what was set, else
    /// [`keepalive_defaults`].
    fn tune(&self, tcp: &TcpStream) -> io::Result<()> {
        // Zero: the system's setting (libpq's meaning of 0).
        let set = |d: Option<Duration>| d.filter(|d| !d.is_zero());
        let sock = socket2::SockRef::from(tcp);
        if !self.keepalives {
            return sock.set_keepalive(false);
        }
        let mut ka = socket2::TcpKeepalive::new();
        if let Some(idle) = set(self.keepalives_idle) {
            ka = ka.with_time(idle);
        }
        #[cfg(target_os = "linux")]
        {
            if let Some(every) = set(self.keepalives_interval) {
                ka = ka.with_interval(every);
            }
            if let Some(n) = self.keepalives_count.filter(|&n| n > 0) {
                ka = ka.with_retries(n);
            }
            if let Some(t) = set(self.tcp_user_timeout) {
                sock.set_tcp_user_timeout(Some(t))?;
            }
        }
        sock.set_tcp_keepalive(&ka)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(s: &str) -> SocketOptions {
        SocketOptions::new(&PgConfig::parse(s).expect("valid settings"))
    }

    #[test]
    fn lido_defaults_fill_what_the_settings_leave_out() {
        let o = options("host=h");
        assert_eq!(o.keepalives_idle, Some(keepalive_defaults::IDLE));
        assert_eq!(
            o.tcp_user_timeout,
            Some(keepalive_defaults::TCP_USER_TIMEOUT)
        );
        let o = options("host=h keepalives_idle=30 tcp_user_timeout=2500");
        assert_eq!(o.keepalives_idle, Some(Duration::from_secs(30)));
        assert_eq!(o.tcp_user_timeout, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn zero_keeps_the_systems_setting() {
        let o = options("host=h keepalives_idle=0 keepalives_interval=0 tcp_user_timeout=0");
        assert_eq!(o.keepalives_idle, Some(Duration::ZERO));
        assert_eq!(o.keepalives_interval, Some(Duration::ZERO));
        assert_eq!(o.tcp_user_timeout, Some(Duration::ZERO));
    }

    #[tokio::test]
    async fn a_tuned_socket_connects() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        for s in [
            "host=h",
            "host=h keepalives_idle=0 tcp_user_timeout=0",
            "host=h keepalives=0",
        ] {
            let socket = options(s).tcp(addr).await.expect(s);
            assert!(matches!(socket, Socket::Tcp(_)));
        }
    }
}

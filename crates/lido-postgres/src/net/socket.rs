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

/// libpq's socket settings: keepalives and TCP_USER_TIMEOUT.
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
            keepalives_idle: cfg.keepalives_idle,
            keepalives_interval: cfg.keepalives_interval,
            keepalives_count: cfg.keepalives_count,
            tcp_user_timeout: cfg.tcp_user_timeout,
        }
    }

    /// A TCP connection to `addr`, without Nagle, tuned.
    pub(crate) async fn tcp(&self, addr: SocketAddr) -> io::Result<Socket> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        self.tune(&tcp)?;
        Ok(Socket::Tcp(tcp))
    }

    /// Keepalives and TCP_USER_TIMEOUT: only what was set (libpq leaves the
    /// system's defaults otherwise).
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

//! Cancelling a statement that ran past its timeout, and confirming the
//! connection is usable afterwards.
//!
//! The cancel request goes on a separate connection, kept open until the
//! other side closes it (as libpq does); the server then fails
//! the running statement with 57014. An empty query queued behind it comes
//! back only once the server is idle again, which confirms the connection is
//! in step. A cancel that lands on that empty query instead is harmless: it
//! is retried once. If neither answers within `grace`, the caller closes
//! the connection.
//!
//! Everything here takes plain data (the client, where it is connected, the
//! TLS connector, the grace period): the connection layer above keeps the
//! counters and marks connections broken.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{CancelToken, Client};

use crate::error::PgError;
use crate::net::endpoint::Endpoint;
use crate::net::socket::Socket;
use crate::net::tls::Tls;

/// Where a connection's cancel requests go: its endpoint, the TLS
/// connector, and how long to wait for each step.
#[derive(Clone)]
pub(crate) struct CancelTarget<'a> {
    pub(crate) endpoint: &'a Endpoint,
    pub(crate) tls: &'a Tls,
    pub(crate) grace: Duration,
}

/// Sends a cancel request for what `client` runs and waits until the
/// connection answers again. `false`: it could not be confirmed within the
/// grace period (the caller should close the connection).
pub(crate) async fn cancel_and_confirm(client: &Client, to: CancelTarget<'_>) -> bool {
    let grace = to.grace;
    let token = client.cancel_token();
    // Kept open until the confirmation is done: see `send_cancel`.
    let _held = match tokio::time::timeout(grace, send_cancel(&token, &to)).await {
        Ok(Ok(held)) => held,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "lido-postgres: cancel request failed");
            return false;
        }
        Err(_) => return false,
    };
    for _ in 0..2 {
        match tokio::time::timeout(grace, client.simple_query("")).await {
            Ok(Ok(_)) => return true,
            Ok(Err(e)) if e.code() == Some(&SqlState::QUERY_CANCELED) => continue,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "lido-postgres: connection failed after cancel");
                return false;
            }
            Err(_) => return false,
        }
    }
    false
}

/// A stream whose shutdown does nothing, so the socket stays open after
/// tokio-postgres has written the cancel request.
struct NoShutdown<S>(S);

impl<S: AsyncRead + Unpin> AsyncRead for NoShutdown<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for NoShutdown<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Best effort, in the background: cancels what a connection being closed
/// still runs on the server (so the backend does not run on for nothing).
pub(crate) fn cancel_in_background(token: CancelToken, to: CancelTarget<'_>, why: &'static str) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    tracing::debug!(
        why,
        "lido-postgres: cancelling the statement running on a connection"
    );
    let (endpoint, tls, grace) = (to.endpoint.clone(), to.tls.clone(), to.grace);
    runtime.spawn(async move {
        let to = CancelTarget {
            endpoint: &endpoint,
            tls: &tls,
            grace,
        };
        let sent = tokio::time::timeout(grace, send_cancel(&token, &to)).await;
        if let Ok(Err(e)) = sent {
            tracing::debug!(error = %e, "lido-postgres: background cancel failed");
        }
    });
}

/// Sends a cancel request for `token`'s session and, like libpq, waits (up
/// to the grace period) for the other side to close the cancel connection:
/// PostgreSQL has then signalled the backend, and PgBouncer (which drops a
/// cancel whose client left early) has forwarded it. Returns the cancel
/// connection, to keep it open until the cancel is confirmed.
async fn send_cancel(token: &CancelToken, to: &CancelTarget<'_>) -> Result<Socket, PgError> {
    let ep = to.endpoint;
    let sent = if ep.is_unix() {
        unix_cancel(token, ep).await
    } else {
        tcp_cancel(token, ep, to.tls).await
    };
    let mut held = sent.map_err(|source| PgError::Cancel {
        address: ep.address(),
        source,
    })?;
    let mut buf = [0u8; 64];
    let eof = async { while matches!(held.read(&mut buf).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(to.grace, eof).await;
    Ok(held)
}

async fn tcp_cancel(token: &CancelToken, ep: &Endpoint, tls: &Tls) -> io::Result<Socket> {
    let tcp = TcpStream::connect((ep.connect_to.as_str(), ep.port)).await?;
    tcp.set_nodelay(true)?;
    let std = tcp.into_std()?;
    let keep = TcpStream::from_std(std.try_clone()?)?;
    let stream = NoShutdown(TcpStream::from_std(std)?);
    let mut make = tls.clone();
    let tls = MakeTlsConnect::<NoShutdown<TcpStream>>::make_tls_connect(&mut make, &ep.tls_name)
        .map_err(io::Error::other)?;
    token
        .cancel_query_raw(stream, tls)
        .await
        .map_err(io::Error::other)?;
    Ok(Socket::Tcp(keep))
}

#[cfg(unix)]
async fn unix_cancel(token: &CancelToken, ep: &Endpoint) -> io::Result<Socket> {
    let sock = tokio::net::UnixStream::connect(ep.unix_socket()).await?;
    let std = sock.into_std()?;
    let keep = tokio::net::UnixStream::from_std(std.try_clone()?)?;
    let stream = NoShutdown(tokio::net::UnixStream::from_std(std)?);
    token
        .cancel_query_raw(stream, tokio_postgres::NoTls)
        .await
        .map_err(io::Error::other)?;
    Ok(Socket::Unix(keep))
}

#[cfg(not(unix))]
async fn unix_cancel(_: &CancelToken, _: &Endpoint) -> io::Result<Socket> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        crate::error::Unsupported::UnixSockets,
    ))
}

//! What happens while a connection is opened, step by step, for whoever
//! watches: `lido check` words each step; the pool watches nothing (`()`).

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::pgconfig::TargetSessionAttrs;
use crate::error::PgError;
use crate::net::target::Target;
use crate::net::tls_stream::TlsInfo;

/// One step of opening a connection (see [`connect_traced`](crate::connect_traced)).
#[derive(Debug)]
#[non_exhaustive]
pub enum DialEvent<'a> {
    /// The target's addresses are known.
    Resolved {
        /// The server.
        target: &'a Target,
        /// Its addresses (empty for a Unix socket).
        addresses: &'a [SocketAddr],
        /// How they were found.
        lookup: Lookup,
        /// Time the lookup took.
        took: Duration,
    },
    /// A socket is open.
    Connected {
        /// The server.
        target: &'a Target,
        /// `ip:port` or the socket file.
        address: &'a str,
        /// Time the connect took.
        took: Duration,
    },
    /// What became of TLS on the session that started.
    Tls {
        /// The server.
        target: &'a Target,
        /// Negotiated, or why not.
        outcome: &'a TlsOutcome,
    },
    /// Startup and authentication finished: the server accepts the session.
    Authenticated {
        /// The server.
        target: &'a Target,
        /// `ip:port` or the socket file.
        address: &'a str,
        /// Time from the open socket to the session (TLS included).
        took: Duration,
    },
    /// The session is what `target_session_attrs` asks for.
    SessionChecked {
        /// The server.
        target: &'a Target,
        /// What was asked for.
        wanted: TargetSessionAttrs,
    },
    /// An attempt failed; `next` says what is tried next.
    Failed {
        /// The server.
        target: &'a Target,
        /// Where it failed.
        stage: Stage,
        /// Why.
        error: &'a PgError,
        /// What follows.
        next: Next,
    },
}

/// How a target's addresses were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lookup {
    /// A Unix socket: no address.
    UnixSocket,
    /// `hostaddr` was given: no lookup.
    Hostaddr,
    /// The host is an IP address: no lookup.
    IpAddress,
    /// The host name was resolved.
    Dns,
}

/// What became of TLS on a session that started.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsOutcome {
    /// The handshake finished.
    Negotiated(TlsInfo),
    /// Not asked for (`sslmode=disable`, or `allow`'s plain first attempt).
    NotRequested,
    /// A Unix socket: TLS is never used there.
    UnixSocket,
    /// Asked for, but the server does not offer it (`prefer` went on in plain text).
    Declined,
}

/// The step of opening a connection that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// Reading certificate files and building the TLS configuration.
    TlsSetup,
    /// Resolving the host name.
    Resolve,
    /// Opening the socket.
    Connect,
    /// The TLS handshake.
    Tls,
    /// Startup and authentication.
    Startup,
    /// The `target_session_attrs` check.
    SessionCheck,
}

/// What the dialer does after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Next {
    /// The same server's next address.
    Address,
    /// The same address again over TLS (`sslmode=allow`).
    RetryWithTls,
    /// The same address again in plain text (`sslmode=prefer`).
    RetryWithoutTls,
    /// The next server of the plan.
    Target,
    /// No standby answered: every server again, taking any (`prefer-standby`).
    AnyServer,
    /// Nothing: the connect fails with this error.
    GiveUp,
}

/// Watches the steps of opening a connection.
pub trait DialObserver: Send {
    /// Called at each step, in order.
    fn event(&mut self, event: &DialEvent<'_>);
}

/// Watches nothing (the pool's own connects).
impl DialObserver for () {
    fn event(&mut self, _: &DialEvent<'_>) {}
}

/// Records every event as one line (`{event:?}`-like), for tests and logs.
impl DialObserver for Vec<String> {
    fn event(&mut self, event: &DialEvent<'_>) {
        self.push(describe(event));
    }
}

/// One line for `event`: `resolved db:5432`, `failed 127.0.0.1:1 at
/// Connect, next Target: ...`.
pub fn describe(event: &DialEvent<'_>) -> String {
    match event {
        DialEvent::Resolved {
            target, addresses, ..
        } => {
            let list: Vec<String> = addresses.iter().map(ToString::to_string).collect();
            format!("resolved {target} -> [{}]", list.join(", "))
        }
        DialEvent::Connected { address, .. } => format!("connected {address}"),
        DialEvent::Tls { target, outcome } => format!("tls {target}: {outcome:?}"),
        DialEvent::Authenticated { address, .. } => format!("authenticated {address}"),
        DialEvent::SessionChecked { target, wanted } => {
            format!("session {target} is {}", wanted.as_str())
        }
        DialEvent::Failed {
            target,
            stage,
            error,
            next,
        } => format!("failed {target} at {stage:?}, next {next:?}: {error}"),
    }
}

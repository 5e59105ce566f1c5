//! The server's own word on each session's transaction state, read off the
//! wire.
//!
//! Every `ReadyForQuery` message (`'Z'`) carries the backend's transaction
//! status: `I` idle, `T` in a transaction block, `E` in a failed one.
//! [`Tracked`] wraps a connection's plaintext stream (the socket, or the
//! TLS stream above it), follows message boundaries (1-byte type, 4-byte
//! big-endian length) in both directions incrementally across reads and
//! writes, and keeps in [`WireState`]:
//!
//! - the status of the last `ReadyForQuery`;
//! - how many `ReadyForQuery` messages the server owes: one for the startup
//!   packet and one per `Query`, `Sync` or `FunctionCall` sent.
//!
//! So whatever ran on the connection (lido's methods, a prepared
//! `Statement`, the tokio-postgres client directly, `/* c */ BEGIN`,
//! `COMMIT AND CHAIN`), the pool knows on return whether the session is idle,
//! inside a transaction, failed, or still waiting for answers. Reading it
//! is four atomic loads.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};

use crate::net::framing::{Frame, Framer};

/// A session's transaction state, as the server last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    /// Not in a transaction block.
    Idle,
    /// Inside a transaction block.
    InTransaction,
    /// Inside a failed transaction block (statements fail until `ROLLBACK`).
    Failed,
    /// Requests sent whose answers have not all arrived yet.
    Busy,
    /// Not known: the connection has not finished starting, or its
    /// messages could not be followed (the pool closes such a connection).
    Unknown,
}

/// Wakes a pool's parked watchdog when one of its connections starts to
/// owe an answer (the watchdog parks while none does, so an idle pool
/// costs no timer wake-ups).
#[derive(Debug, Default)]
pub(crate) struct IdleBell {
    parked: AtomicBool,
    ring: tokio::sync::Notify,
}

impl IdleBell {
    /// For the watchdog: park from now on (then check once more that
    /// nothing is owed before waiting on [`IdleBell::rung`]).
    pub(crate) fn park(&self) {
        self.parked.store(true, Ordering::SeqCst);
    }

    /// For the watchdog: awake again.
    pub(crate) fn unpark(&self) {
        self.parked.store(false, Ordering::SeqCst);
    }

    /// Resolves once a connection owed an answer while parked.
    pub(crate) async fn rung(&self) {
        self.ring.notified().await;
    }

    /// A connection now owes an answer: one load unless the watchdog is
    /// parked. Pairs with `park` then a sample (both sequentially
    /// consistent, as the `expected` count is): one of the two sees the other.
    fn owed(&self) {
        if self.parked.load(Ordering::SeqCst) && self.parked.swap(false, Ordering::SeqCst) {
            self.ring.notify_one();
        }
    }
}

/// Shared between a connection's I/O (one task) and the pool (any thread).
#[derive(Debug, Default)]
pub(crate) struct WireState {
    /// The status byte of the last `ReadyForQuery` (0 before the first).
    status: AtomicU8,
    /// `ReadyForQuery` messages the server owes, in total.
    expected: AtomicU64,
    /// `ReadyForQuery` messages received, in total.
    received: AtomicU64,
    /// A message could not be parsed: the stream is no longer followed.
    lost: AtomicBool,
    /// The server's one-byte answer to an SSLRequest (`S` or `N`; 0: none sent).
    ssl_reply: AtomicU8,
    /// Closed by the pool's watchdog: the server stopped answering.
    silenced: AtomicBool,
    /// The pool's watchdog bell, once the connection is registered.
    bell: std::sync::OnceLock<Arc<IdleBell>>,
}

impl WireState {
    /// The session's state. Consistent without locks: a request written
    /// after `received` was read shows up in `expected`, read last.
    pub(crate) fn status(&self) -> TxStatus {
        let received = self.received.load(Ordering::SeqCst);
        let status = self.status.load(Ordering::SeqCst);
        let expected = self.expected.load(Ordering::SeqCst);
        if self.lost.load(Ordering::SeqCst) || received > expected {
            return TxStatus::Unknown;
        }
        if received < expected {
            return TxStatus::Busy;
        }
        match status {
            b'I' => TxStatus::Idle,
            b'T' => TxStatus::InTransaction,
            b'E' => TxStatus::Failed,
            _ => TxStatus::Unknown,
        }
    }

    /// `ReadyForQuery` messages received so far, and whether more are owed
    /// (for the watchdog: an owed answer that does not come).
    pub(crate) fn progress(&self) -> (u64, bool) {
        let received = self.received.load(Ordering::SeqCst);
        let expected = self.expected.load(Ordering::SeqCst);
        (received, expected > received)
    }

    /// Marks the session as closed because its server stopped answering.
    pub(crate) fn silence(&self) {
        self.silenced.store(true, Ordering::SeqCst);
    }

    /// Whether the watchdog closed the session (the server stopped answering).
    pub(crate) fn is_silenced(&self) -> bool {
        self.silenced.load(Ordering::Relaxed)
    }

    /// Whether the stream could no longer be followed.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// The server's answer to the SSLRequest: `Some(true)` it agreed to
    /// TLS, `Some(false)` it refused, `None` no SSLRequest was sent.
    pub(crate) fn tls_answer(&self) -> Option<bool> {
        match self.ssl_reply.load(Ordering::SeqCst) {
            0 => None,
            b => Some(b == b'S'),
        }
    }

    fn owe(&self) {
        self.expected.fetch_add(1, Ordering::SeqCst);
        if let Some(bell) = self.bell.get() {
            bell.owed();
        }
    }

    /// Rings `bell` whenever the session starts to owe an answer.
    pub(crate) fn ring_on_owe(&self, bell: &Arc<IdleBell>) {
        let _ = self.bell.set(Arc::clone(bell));
    }

    fn ready(&self, status: u8) {
        if !matches!(status, b'I' | b'T' | b'E') {
            self.lose();
            return;
        }
        self.status.store(status, Ordering::SeqCst);
        self.received.fetch_add(1, Ordering::SeqCst);
    }

    fn lose(&self) {
        tracing::warn!("lido-postgres: lost track of the protocol; the connection will be closed");
        self.lost.store(true, Ordering::SeqCst);
    }
}

/// SSLRequest and GSSENCRequest codes: the server answers with one byte.
pub(crate) const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
/// Protocol 3.0 in a StartupMessage.
const PROTOCOL_3: u32 = 196_608;

/// Both directions' parsers for one stream layer.
#[derive(Debug)]
struct Parsers {
    /// Frontend: starts untyped (SSLRequest, StartupMessage).
    out: Framer,
    out_untyped: bool,
    /// Backend.
    inp: Framer,
    /// A one-byte answer to an SSLRequest/GSSENCRequest comes next.
    one_byte_reply: bool,
}

impl Parsers {
    fn new() -> Self {
        Self {
            out: Framer::default(),
            out_untyped: true,
            inp: Framer::default(),
            one_byte_reply: false,
        }
    }

    fn wrote(&mut self, buf: &[u8], state: &WireState) -> Result<(), ()> {
        let reply = &mut self.one_byte_reply;
        self.out
            .feed(buf, &mut self.out_untyped, |frame, untyped| match frame {
                Frame::Untyped(SSL_REQUEST | GSSENC_REQUEST) => *reply = true,
                Frame::Untyped(PROTOCOL_3) => {
                    *untyped = false;
                    state.owe();
                }
                Frame::Untyped(_) => *untyped = false,
                Frame::Typed(b'Q' | b'S' | b'F', _) => state.owe(),
                Frame::Typed(..) => {}
            })
    }

    fn read(&mut self, mut buf: &[u8], state: &WireState) -> Result<(), ()> {
        if self.one_byte_reply && !buf.is_empty() {
            self.one_byte_reply = false;
            state.ssl_reply.store(buf[0], Ordering::SeqCst);
            buf = &buf[1..];
        }
        let mut untyped = false;
        self.inp.feed(buf, &mut untyped, |frame, _| {
            if let Frame::Typed(b'Z', [status, ..]) = frame {
                state.ready(status);
            }
        })
    }
}

/// A stream whose PostgreSQL messages update a [`WireState`].
#[derive(Debug)]
pub(crate) struct Tracked<S> {
    inner: S,
    state: Arc<WireState>,
    /// `None` once a TLS layer above took over (this layer then carries ciphertext).
    parsers: Option<Box<Parsers>>,
}

impl<S> Tracked<S> {
    pub(crate) fn new(inner: S, state: Arc<WireState>) -> Self {
        Self {
            inner,
            state,
            parsers: Some(Box::new(Parsers::new())),
        }
    }

    /// Stops following this layer (a TLS layer above it takes over) and
    /// returns the state to hand to that layer.
    fn hand_over(&mut self) -> Arc<WireState> {
        self.parsers = None;
        Arc::clone(&self.state)
    }

    fn note(&mut self, result: Result<(), ()>) {
        if result.is_err() {
            self.parsers = None;
            self.state.lose();
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let this = &mut *self;
            if let Some(p) = this.parsers.as_mut() {
                let r = p.read(&buf.filled()[before..], &this.state);
                this.note(r);
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            let this = &mut *self;
            if let Some(p) = this.parsers.as_mut() {
                let r = p.wrote(&buf[..n], &this.state);
                this.note(r);
            }
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: TlsStream + Unpin> TlsStream for Tracked<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

/// Wraps a TLS connector so the plaintext side of the TLS stream is
/// [`Tracked`] (and the socket below no longer is).
pub(crate) struct TrackingTls<T>(pub(crate) T);

impl<S, T> TlsConnect<Tracked<S>> for TrackingTls<T>
where
    T: TlsConnect<Tracked<S>>,
    T::Future: Send + 'static,
    T::Stream: Send,
{
    type Stream = Tracked<T::Stream>;
    type Error = T::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Stream, T::Error>>;

    fn connect(self, mut stream: Tracked<S>) -> Self::Future {
        let state = stream.hand_over();
        let handshake = self.0.connect(stream);
        Box::pin(async move { handshake.await.map(|tls| Tracked::new(tls, state)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn untyped(code: u32, rest: &[u8]) -> Vec<u8> {
        let mut m = ((rest.len() + 8) as u32).to_be_bytes().to_vec();
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(rest);
        m
    }

    /// Feeds `bytes` in chunks of `step`.
    fn feed(p: &mut Parsers, s: &WireState, bytes: &[u8], step: usize, out: bool) {
        for chunk in bytes.chunks(step) {
            let r = if out {
                p.wrote(chunk, s)
            } else {
                p.read(chunk, s)
            };
            r.expect("parses");
        }
    }

    fn startup(p: &mut Parsers, s: &WireState, step: usize) {
        feed(p, s, &untyped(PROTOCOL_3, b"user\0u\0\0"), step, true);
        let mut backend = msg(b'R', &0u32.to_be_bytes());
        backend.extend(msg(b'S', b"TimeZone\0UTC\0"));
        backend.extend(msg(b'K', &[0; 8]));
        feed(p, s, &backend, step, false);
        assert_eq!(s.status(), TxStatus::Busy, "startup not answered yet");
        feed(p, s, &msg(b'Z', b"I"), step, false);
    }

    #[test]
    fn follows_status_across_split_reads_and_writes() {
        for step in [1, 2, 3, 7, 4096] {
            let (mut p, s) = (Parsers::new(), WireState::default());
            assert_eq!(s.status(), TxStatus::Unknown);
            startup(&mut p, &s, step);
            assert_eq!(s.status(), TxStatus::Idle, "step {step}");
            // Extended protocol: Parse/Bind/Execute/Sync, a data row, then 'Z'.
            let mut req = msg(b'P', b"\0BEGIN\0\0\0");
            req.extend(msg(b'B', &[0; 8]));
            req.extend(msg(b'E', &[0; 5]));
            req.extend(msg(b'S', b""));
            feed(&mut p, &s, &req, step, true);
            assert_eq!(s.status(), TxStatus::Busy);
            let mut resp = msg(b'1', b"");
            resp.extend(msg(b'2', b""));
            resp.extend(msg(b'D', &[0, 1, 0, 0, 0, 3, b'a', b'b', b'c']));
            resp.extend(msg(b'C', b"BEGIN\0"));
            feed(&mut p, &s, &resp, step, false);
            assert_eq!(s.status(), TxStatus::Busy, "no 'Z' yet");
            feed(&mut p, &s, &msg(b'Z', b"T"), step, false);
            assert_eq!(s.status(), TxStatus::InTransaction);
            feed(&mut p, &s, &msg(b'Q', b"SELEC 1\0"), step, true);
            let mut err = msg(b'E', b"SERROR\0C42601\0\0");
            err.extend(msg(b'Z', b"E"));
            feed(&mut p, &s, &err, step, false);
            assert_eq!(s.status(), TxStatus::Failed);
        }
    }

    #[test]
    fn the_ssl_reply_byte_is_skipped() {
        let (mut p, s) = (Parsers::new(), WireState::default());
        feed(&mut p, &s, &untyped(SSL_REQUEST, b""), 3, true);
        // 'N': no TLS; the startup goes on in plain text on this layer.
        feed(&mut p, &s, b"N", 1, false);
        assert_eq!(s.tls_answer(), Some(false));
        startup(&mut p, &s, 5);
        assert_eq!(s.status(), TxStatus::Idle);
    }

    #[test]
    fn impossible_lengths_lose_the_stream() {
        let (mut p, s) = (Parsers::new(), WireState::default());
        startup(&mut p, &s, 64);
        assert!(p.read(&[b'Z', 0, 0, 0, 1], &s).is_err());
        let (mut p, s) = (Parsers::new(), WireState::default());
        startup(&mut p, &s, 64);
        p.read(&msg(b'Z', b"?"), &s).expect("framed");
        assert!(s.is_lost());
        assert_eq!(s.status(), TxStatus::Unknown);
    }

    /// The watchdog's bell rings only while it is parked, once per park.
    #[tokio::test]
    async fn a_request_rings_a_parked_watchdog_only() {
        let bell = Arc::new(IdleBell::default());
        let s = WireState::default();
        s.ring_on_owe(&bell);
        s.owe(); // not parked: no ring
        let early = tokio::time::timeout(std::time::Duration::from_millis(20), bell.rung()).await;
        assert!(early.is_err(), "rang while awake");
        bell.park();
        s.owe();
        s.owe(); // the second finds it unparked already
        tokio::time::timeout(std::time::Duration::from_secs(5), bell.rung())
            .await
            .expect("rang once parked");
        let again = tokio::time::timeout(std::time::Duration::from_millis(20), bell.rung()).await;
        assert!(again.is_err(), "one ring per park");
    }
}

//! The TLS connector handed to tokio-postgres's `connect_raw`: it runs the
//! rustls handshake when the server accepts the SSLRequest, records what was
//! negotiated (protocol, cipher, certificate, time) for the report, and keeps
//! SCRAM channel binding (`tls-server-end-point`) working.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lido_postgres::tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use sha2::{Digest, Sha256, Sha384, Sha512};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::client::TlsStream as RustlsStream;
use tokio_rustls::TlsConnector;
use x509_cert::der::oid::db::rfc5912::{
    ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ID_SHA_1, ID_SHA_256, ID_SHA_384, ID_SHA_512,
    SHA_1_WITH_RSA_ENCRYPTION, SHA_256_WITH_RSA_ENCRYPTION, SHA_384_WITH_RSA_ENCRYPTION,
    SHA_512_WITH_RSA_ENCRYPTION,
};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::Decode;
use x509_cert::Certificate;

use super::report::Failure;

/// What a finished handshake negotiated.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// "TLS1.3", "TLS1.2".
    pub version: String,
    /// The cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The server certificate's subject.
    pub subject: Option<String>,
    /// The server certificate's notAfter.
    pub not_after: Option<String>,
    /// Handshake time.
    pub elapsed: Duration,
}

/// What happened to TLS during one connect.
#[derive(Debug, Default)]
pub enum TlsState {
    /// The server was never asked, or refused (`N`), or was not asked yet.
    #[default]
    NotStarted,
    /// The handshake began and has not finished (a timeout hit it).
    Handshaking,
    /// The handshake finished.
    Done(TlsInfo),
    /// The handshake failed.
    Failed(Failure),
}

/// Shared between the connector and the check.
pub type Probe = Arc<Mutex<TlsState>>;

fn set(probe: &Probe, state: TlsState) {
    if let Ok(mut g) = probe.lock() {
        *g = state;
    }
}

/// The connector; `policy: None` refuses to run TLS (sslmode=disable, Unix sockets).
pub struct CheckTls {
    /// rustls configuration and server name.
    pub policy: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    /// The host name, for messages.
    pub host: String,
    /// Where the outcome goes.
    pub probe: Probe,
}

/// The handshake future.
pub type HandshakeFuture<S> = Pin<Box<dyn Future<Output = io::Result<CheckTlsStream<S>>> + Send>>;

impl<S> TlsConnect<S> for CheckTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = CheckTlsStream<S>;
    type Error = io::Error;
    type Future = HandshakeFuture<S>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let Some((config, name)) = self.policy else {
                return Err(io::Error::other(
                    "TLS is not configured for this connection",
                ));
            };
            set(&self.probe, TlsState::Handshaking);
            let started = Instant::now();
            match TlsConnector::from(config).connect(name, stream).await {
                Ok(s) => {
                    set(&self.probe, TlsState::Done(info(&s, started.elapsed())));
                    Ok(CheckTlsStream(s))
                }
                Err(e) => {
                    let failure = super::tls::handshake_failure(&e, &self.host);
                    set(&self.probe, TlsState::Failed(failure));
                    Err(e)
                }
            }
        })
    }
}

fn info<S>(s: &RustlsStream<S>, elapsed: Duration) -> TlsInfo {
    let (_, conn) = s.get_ref();
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS1.2".to_owned(),
        Some(other) => format!("{other:?}"),
        None => "TLS".to_owned(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|c| format!("{:?}", c.suite()))
        .unwrap_or_default();
    let cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| Certificate::from_der(c).ok());
    TlsInfo {
        version,
        cipher,
        subject: cert.as_ref().map(|c| c.tbs_certificate.subject.to_string()),
        not_after: cert.as_ref().map(|c| {
            c.tbs_certificate
                .validity
                .not_after
                .to_date_time()
                .to_string()
        }),
        elapsed,
    }
}

/// The encrypted stream tokio-postgres talks over.
pub struct CheckTlsStream<S>(RustlsStream<S>);

enum Digester {
    Sha256,
    Sha384,
    Sha512,
}

fn digester(alg: ObjectIdentifier) -> Option<Digester> {
    match alg {
        // RFC 5929 4.1: MD5 and SHA-1 are upgraded to SHA-256.
        ID_SHA_1
        | ID_SHA_256
        | SHA_1_WITH_RSA_ENCRYPTION
        | SHA_256_WITH_RSA_ENCRYPTION
        | ECDSA_WITH_SHA_256 => Some(Digester::Sha256),
        ID_SHA_384 | SHA_384_WITH_RSA_ENCRYPTION | ECDSA_WITH_SHA_384 => Some(Digester::Sha384),
        ID_SHA_512 | SHA_512_WITH_RSA_ENCRYPTION => Some(Digester::Sha512),
        _ => None,
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for CheckTlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        let (_, conn) = self.0.get_ref();
        let Some(der) = conn.peer_certificates().and_then(|c| c.first()) else {
            return ChannelBinding::none();
        };
        let alg = Certificate::from_der(der)
            .ok()
            .and_then(|c| digester(c.signature_algorithm.oid));
        match alg {
            Some(Digester::Sha256) => {
                ChannelBinding::tls_server_end_point(Sha256::digest(der).to_vec())
            }
            Some(Digester::Sha384) => {
                ChannelBinding::tls_server_end_point(Sha384::digest(der).to_vec())
            }
            Some(Digester::Sha512) => {
                ChannelBinding::tls_server_end_point(Sha512::digest(der).to_vec())
            }
            None => ChannelBinding::none(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for CheckTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for CheckTlsStream<S> {
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

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

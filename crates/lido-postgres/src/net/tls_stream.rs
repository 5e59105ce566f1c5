//! lido's TLS connector for tokio-postgres: a rustls handshake over the
//! socket the dialer opened, SCRAM channel binding
//! (`tls-server-end-point`, RFC 5929), and, when asked, a record of what
//! the handshake negotiated (protocol, cipher suite, the server
//! certificate's subject and expiry, time taken) for `lido check`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use sha2::{Digest, Sha256, Sha384, Sha512};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream as PgTlsStream};
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

/// What a finished TLS handshake negotiated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// `TLS1.3` or `TLS1.2`.
    pub version: String,
    /// The cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The server certificate's subject (`CN=localhost`).
    pub subject: Option<String>,
    /// The server certificate's notAfter, RFC 3339.
    pub not_after: Option<String>,
    /// Handshake time.
    pub elapsed: Duration,
}

/// Where a traced connect keeps the handshake's outcome.
pub(crate) type TlsProbe = Arc<Mutex<Option<TlsInfo>>>;

/// The TLS connector handed to tokio-postgres (for sessions and cancel
/// requests): rustls with the verifier `sslmode` asks for.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
    probe: Option<TlsProbe>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    pub(crate) fn new(config: ClientConfig) -> Self {
        Self {
            config: Arc::new(config),
            probe: None,
        }
    }

    /// The same connector, recording what its handshakes negotiate in `probe`.
    pub(crate) fn recording(&self, probe: TlsProbe) -> Self {
        Self {
            config: Arc::clone(&self.config),
            probe: Some(probe),
        }
    }

    /// What the last handshake of a [`recording`](Self::recording)
    /// connector negotiated.
    pub(crate) fn negotiated(&self) -> Option<TlsInfo> {
        self.probe.as_ref().and_then(|p| p.lock().clone())
    }
}

impl<S> MakeTlsConnect<S> for Tls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = Connect;
    type Error = Infallible;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Connect, Infallible> {
        Ok(Connect {
            config: Arc::clone(&self.config),
            domain: domain.to_owned(),
            probe: self.probe.clone(),
        })
    }
}

/// One handshake's connector (made per connection by [`Tls`]).
pub struct Connect {
    config: Arc<ClientConfig>,
    domain: String,
    probe: Option<TlsProbe>,
}

/// The handshake future.
pub type Handshake<S> = Pin<Box<dyn Future<Output = io::Result<TlsStream<S>>> + Send>>;

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = io::Error;
    type Future = Handshake<S>;

    fn connect(self, stream: S) -> Handshake<S> {
        Box::pin(async move {
            let name = ServerName::try_from(self.domain.as_str())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
                .to_owned();
            let started = Instant::now();
            let tls = TlsConnector::from(self.config)
                .connect(name, stream)
                .await?;
            if let Some(probe) = &self.probe {
                *probe.lock() = Some(info(&tls, started.elapsed()));
            }
            Ok(TlsStream(tls))
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
    let validity = cert.as_ref().map(|c| &c.tbs_certificate.validity);
    TlsInfo {
        version,
        cipher,
        subject: cert.as_ref().map(|c| c.tbs_certificate.subject.to_string()),
        not_after: validity.map(|v| v.not_after.to_date_time().to_string()),
        elapsed,
    }
}

/// The encrypted stream tokio-postgres talks over.
pub struct TlsStream<S>(RustlsStream<S>);

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

impl<S: AsyncRead + AsyncWrite + Unpin> PgTlsStream for TlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        let (_, conn) = self.0.get_ref();
        let Some(der) = conn.peer_certificates().and_then(|c| c.first()) else {
            return ChannelBinding::none();
        };
        let alg = Certificate::from_der(der)
            .ok()
            .and_then(|c| digester(c.signature_algorithm.oid));
        let digest = match alg {
            Some(Digester::Sha256) => Sha256::digest(der).to_vec(),
            Some(Digester::Sha384) => Sha384::digest(der).to_vec(),
            Some(Digester::Sha512) => Sha512::digest(der).to_vec(),
            None => return ChannelBinding::none(),
        };
        ChannelBinding::tls_server_end_point(digest)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
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

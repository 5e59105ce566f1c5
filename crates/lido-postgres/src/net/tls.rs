//! TLS over rustls for every libpq `sslmode`, and typed TLS errors.
//!
//! | sslmode | encrypts | chain checked | name checked |
//! |---|---|---|---|
//! | disable | no | - | - |
//! | allow, prefer | if the server wants / offers it | only with `sslrootcert` | no |
//! | require | yes | only with `sslrootcert` (as libpq) | no |
//! | verify-ca | yes | yes (`sslrootcert`, else system roots) | no |
//! | verify-full | yes | yes | yes |

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::config::pgconfig::{PgConfig, RootCert, SslMode};
use crate::error::{PgError, TlsError};

pub(crate) use crate::net::tls_stream::Tls;

/// How much of the server certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Nothing (encryption only).
    None,
    /// The chain up to a trusted root, not the host name.
    Chain,
    /// Chain and host name.
    Full,
}

/// What `sslmode` and `sslrootcert` mean together, as libpq reads them.
pub fn verification(cfg: &PgConfig) -> Result<Verification, TlsError> {
    let has_file = matches!(cfg.sslrootcert, Some(RootCert::File(_)));
    if cfg.sslrootcert == Some(RootCert::System) {
        return match cfg.sslmode {
            SslMode::Disable | SslMode::VerifyFull => Ok(Verification::Full),
            weak => Err(TlsError::Config(format!(
                "weak sslmode \"{}\" may not be used with sslrootcert=system (use \"verify-full\")",
                weak.as_str()
            ))),
        };
    }
    Ok(match cfg.sslmode {
        SslMode::VerifyFull => Verification::Full,
        SslMode::VerifyCa => Verification::Chain,
        _ if has_file => Verification::Chain,
        _ => Verification::None,
    })
}

/// The crypto provider: aws-lc-rs, rustls's default (post-quantum key
/// exchange; ring's provider is deprecated for lacking it).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Builds the rustls connector for `cfg`, reading certificate files now.
pub fn connector(cfg: &PgConfig) -> Result<Tls, TlsError> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match verification(cfg)? {
        Verification::None => Arc::new(NoVerify(Arc::clone(&provider))),
        Verification::Chain => Arc::new(ChainOnly(webpki(cfg, &provider)?)),
        Verification::Full => webpki(cfg, &provider)?,
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&cfg.sslcert, &cfg.sslkey) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(read_certs("sslcert", cert)?, read_key(key)?)
            .map_err(|e| TlsError::Config(format!("sslcert/sslkey: {e}")))?,
        _ => builder.with_no_client_auth(),
    };
    Ok(Tls::new(config))
}

fn webpki(
    cfg: &PgConfig,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    let roots = match &cfg.sslrootcert {
        Some(RootCert::File(path)) => file_roots(path)?,
        _ => system_roots()?,
    };
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))
}

fn file_error(what: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        what,
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(what, path, e))?;
    if certs.is_empty() {
        return Err(file_error(what, path, "no PEM certificates in it"));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error("sslkey", path, e))
}

fn file_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs("sslrootcert", path)? {
        roots
            .add(cert)
            .map_err(|e| file_error("sslrootcert", path, e))?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(TlsError::NoRoots);
    }
    Ok(roots)
}

/// `sslmode=require` without roots: encrypt, accept any certificate, but
/// still check the handshake signatures.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sslmode=verify-ca`: the full WebPKI chain check, minus the host name.
/// rustls checks the chain before the name, so a name error means the chain passed.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The rustls error somewhere in `e`'s source chain (inside an `io::Error`).
fn find_rustls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if let Some(r) = inner.downcast_ref::<rustls::Error>() {
                return Some(r);
            }
        }
        cur = err.source();
    }
    None
}

/// Where a failed startup went: for its error.
pub(crate) struct Attempted<'a> {
    /// The sslmode in force.
    pub(crate) sslmode: SslMode,
    /// The host name TLS checks.
    pub(crate) host: &'a str,
    /// `host:port` or the Unix socket path connected to.
    pub(crate) address: String,
}

/// Turns a failed startup into a typed error: the server's error at the
/// target's address (with what to fix, where the settings are at fault),
/// TLS refused by the server (`tls_refused`: it answered `N` to the
/// SSLRequest while TLS was required), a rustls failure, or another
/// startup failure at the target's address.
pub(crate) fn connect_error(
    e: tokio_postgres::Error,
    to: &Attempted<'_>,
    tls_refused: bool,
) -> PgError {
    if e.as_db_error().is_some() {
        return PgError::at_startup(e, to.address.clone());
    }
    if tls_refused {
        return PgError::Tls(TlsError::ServerRefusedTls {
            sslmode: to.sslmode.as_str(),
        });
    }
    match std::error::Error::source(&e).and_then(find_rustls) {
        Some(rustls_error) => PgError::Tls(typed(rustls_error, to.host)),
        None => PgError::Startup {
            address: to.address.clone(),
            source: e,
        },
    }
}

fn typed(e: &rustls::Error, host: &str) -> TlsError {
    use CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => TlsError::UnknownCa,
        rustls::Error::InvalidCertificate(C::NotValidForNameContext {
            expected,
            presented,
        }) => TlsError::HostnameMismatch {
            host: expected.to_str().into_owned(),
            presented: presented.iter().map(|n| bare_name(n)).collect(),
        },
        rustls::Error::InvalidCertificate(C::NotValidForName) => TlsError::HostnameMismatch {
            host: host.to_owned(),
            presented: Vec::new(),
        },
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => TlsError::CertificateExpired,
        other => TlsError::Handshake(other.to_string()),
    }
}

/// rustls lists names as `DnsName("db")` or `IpAddress(10.0.0.1)`: the name.
fn bare_name(listed: &str) -> String {
    let inner = listed
        .split_once('(')
        .map_or(listed, |(_, rest)| rest.trim_end_matches(')'));
    inner.trim_matches('"').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_names_lose_their_wrapping() {
        assert_eq!(bare_name("DnsName(\"localhost\")"), "localhost");
        assert_eq!(bare_name("IpAddress(127.0.0.1)"), "127.0.0.1");
    }

    fn cfg(s: &str) -> PgConfig {
        PgConfig::parse(s).unwrap()
    }

    #[test]
    fn libpq_verification_table() {
        use Verification::{Chain, Full, None};
        let table = [
            ("sslmode=require", None),
            ("sslmode=prefer", None),
            ("sslmode=require sslrootcert=/x.pem", Chain),
            ("sslmode=verify-ca", Chain),
            ("sslmode=verify-full", Full),
            ("sslmode=verify-full sslrootcert=system", Full),
        ];
        for (settings, expected) in table {
            assert_eq!(
                verification(&cfg(settings)).unwrap(),
                expected,
                "{settings}"
            );
        }
        assert!(verification(&cfg("sslmode=require sslrootcert=system")).is_err());
    }

    #[test]
    fn missing_root_file_is_a_typed_error() {
        let Err(e) = connector(&cfg("sslmode=verify-full sslrootcert=/nonexistent/ca.pem")) else {
            panic!("a missing root file must fail");
        };
        assert!(
            matches!(
                e,
                TlsError::File {
                    what: "sslrootcert",
                    ..
                }
            ),
            "{e}"
        );
        let Err(e) = connector(&cfg(
            "sslmode=require sslcert=/nonexistent/c.pem sslkey=/nonexistent/k.pem",
        )) else {
            panic!("a missing client cert must fail");
        };
        assert!(
            matches!(
                e,
                TlsError::File {
                    what: "sslcert",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn no_verify_connector_builds_without_files() {
        assert!(connector(&cfg("sslmode=require")).is_ok());
    }

    #[test]
    fn rustls_errors_map_to_typed_errors() {
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, unknown);
        assert!(matches!(
            find_rustls(&io).map(|e| typed(e, "h")),
            Some(TlsError::UnknownCa)
        ));
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        assert!(
            matches!(typed(&name, "db"), TlsError::HostnameMismatch { host, .. } if host == "db")
        );
    }
}

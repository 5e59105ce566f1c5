//! The TLS policy of `lido check`: a rustls client configuration that
//! verifies exactly what libpq's `sslmode` and `sslrootcert` ask for (as
//! lido-postgres reads them, through [`lido_postgres::verification`]), the
//! words that say what was verified, and TLS errors with what to fix.

use std::path::Path;
use std::sync::Arc;

use lido_postgres::{verification, PgConfig, RootCert, SslMode, Verification};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::report::{Failure, Step};

/// A rustls configuration for `cfg`, and what it verifies.
#[derive(Debug, Clone)]
pub struct TlsPolicy {
    /// The client configuration.
    pub config: Arc<ClientConfig>,
    /// What is checked.
    pub verification: Verification,
    /// "verified (verify-full, CA from sslrootcert /x/ca.pem)", …
    pub verified_text: String,
}

fn tls_fail(message: impl Into<String>) -> Failure {
    Failure::new(Step::Tls, message)
}

/// Builds the policy, reading certificate files now.
pub fn policy(cfg: &PgConfig) -> Result<TlsPolicy, Failure> {
    let v = verification(cfg).map_err(|e| tls_fail(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match v {
        Verification::None => Arc::new(NoVerify(Arc::clone(&provider))),
        Verification::Chain => Arc::new(ChainOnly(webpki(cfg, &provider)?)),
        Verification::Full => webpki(cfg, &provider)?,
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_fail(format!("invalid TLS configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&cfg.sslcert, &cfg.sslkey) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(read_certs("sslcert", cert)?, read_key(key)?)
            .map_err(|e| tls_fail(format!("sslcert/sslkey: {e}")))?,
        _ => builder.with_no_client_auth(),
    };
    Ok(TlsPolicy {
        config: Arc::new(config),
        verification: v,
        verified_text: verified_text(cfg, v),
    })
}

fn roots_text(cfg: &PgConfig) -> String {
    match &cfg.sslrootcert {
        Some(RootCert::File(p)) => format!("CA from sslrootcert {}", p.display()),
        Some(RootCert::System) => "CA from the system store (sslrootcert=system)".to_owned(),
        None => "CA from the system store".to_owned(),
    }
}

/// What a successful handshake under `cfg` proved.
pub fn verified_text(cfg: &PgConfig, v: Verification) -> String {
    let mode = cfg.sslmode.as_str();
    match v {
        Verification::None => format!(
            "not verified (sslmode={mode}: encrypted, but the server's identity is not checked; use sslmode=verify-full to check it)"
        ),
        Verification::Chain if cfg.sslmode == SslMode::VerifyCa => format!(
            "chain verified, host name not checked (verify-ca, {})",
            roots_text(cfg)
        ),
        Verification::Chain => format!(
            "chain verified, host name not checked (sslmode={mode} with sslrootcert acts as verify-ca, {})",
            roots_text(cfg)
        ),
        Verification::Full => format!("verified (verify-full, {})", roots_text(cfg)),
    }
}

/// The TLS server name for `host`.
pub fn server_name(host: &str) -> Result<ServerName<'static>, Failure> {
    ServerName::try_from(host.to_owned()).map_err(|e| {
        tls_fail(format!(
            "\"{host}\" cannot be used as a TLS server name: {e}"
        ))
        .hint("use a DNS name or an IP address as host")
    })
}

fn webpki(
    cfg: &PgConfig,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, Failure> {
    let roots = match &cfg.sslrootcert {
        Some(RootCert::File(path)) => file_roots(path)?,
        _ => system_roots()?,
    };
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|e| tls_fail(format!("invalid TLS configuration: {e}")))
}

fn file_error(what: &str, path: &Path, reason: impl std::fmt::Display) -> Failure {
    tls_fail(format!(
        "cannot use {what} file {}: {reason}",
        path.display()
    ))
    .hint(format!("point {what} at a readable PEM file"))
}

fn read_certs(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Failure> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(what, path, e))?;
    if certs.is_empty() {
        return Err(file_error(what, path, "no PEM certificates in it"));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, Failure> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error("sslkey", path, e))
}

fn file_roots(path: &Path) -> Result<RootCertStore, Failure> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs("sslrootcert", path)? {
        roots
            .add(cert)
            .map_err(|e| file_error("sslrootcert", path, e))?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, Failure> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(
            tls_fail("no trusted root certificates could be loaded from the system")
                .hint("set sslrootcert to the CA file that signed the server certificate"),
        );
    }
    Ok(roots)
}

/// A failed handshake, as one line and what to fix.
pub fn handshake_failure(e: &std::io::Error, host: &str) -> Failure {
    let Some(r) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return tls_fail(format!(
            "the connection broke during the TLS handshake: {e}"
        ))
        .hint("the server or a proxy in between closed it; check the server log");
    };
    rustls_failure(r, host)
}

fn rustls_failure(e: &rustls::Error, host: &str) -> Failure {
    use CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => tls_fail(
            "the server certificate is not signed by a trusted CA",
        )
        .hint("point sslrootcert at the CA that signed the server certificate"),
        rustls::Error::InvalidCertificate(C::NotValidForNameContext { presented, .. }) => {
            tls_fail(format!(
                "the server certificate is not valid for host \"{host}\" (it names {})",
                names(presented)
            ))
            .hint("connect with a name the certificate lists, or use sslmode=verify-ca to skip the name check")
        }
        rustls::Error::InvalidCertificate(C::NotValidForName) => tls_fail(format!(
            "the server certificate is not valid for host \"{host}\""
        ))
        .hint("connect with a name the certificate lists, or use sslmode=verify-ca to skip the name check"),
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => tls_fail("the server certificate has expired or is not yet valid")
            .hint("renew the server certificate (or fix this machine's clock)"),
        rustls::Error::AlertReceived(alert) => {
            tls_fail(format!("the server ended the TLS handshake with alert {alert:?}"))
                .hint("the server may require a client certificate (sslcert/sslkey) or a TLS version this client lacks")
        }
        other => tls_fail(format!("TLS handshake failed: {other}")),
    }
}

/// rustls lists names as `DnsName("db")`, `IpAddress(10.0.0.1)`: just the names.
fn names(presented: &[String]) -> String {
    presented
        .iter()
        .map(|n| {
            let inner = n
                .split_once('(')
                .map_or(n.as_str(), |(_, rest)| rest.trim_end_matches(')'));
            inner.trim_matches('"').to_owned()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Encrypts without checking the certificate (`sslmode=require` without roots),
/// still checking the handshake signatures.
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

/// `verify-ca`: the WebPKI chain check without the host name (rustls checks
/// the chain before the name, so a name error means the chain passed).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(s: &str) -> PgConfig {
        PgConfig::parse(s).expect("valid settings")
    }

    #[test]
    fn says_what_each_mode_verifies() {
        let c = cfg("sslmode=require");
        assert!(verified_text(&c, Verification::None).starts_with("not verified (sslmode=require"));
        let c = cfg("sslmode=verify-full sslrootcert=/x/ca.pem");
        assert_eq!(
            verified_text(&c, Verification::Full),
            "verified (verify-full, CA from sslrootcert /x/ca.pem)"
        );
        let c = cfg("sslmode=require sslrootcert=/x/ca.pem");
        assert!(verified_text(&c, Verification::Chain).contains("acts as verify-ca"));
    }

    #[test]
    fn missing_root_file_fails_the_tls_step() {
        let err = policy(&cfg("sslmode=verify-full sslrootcert=/nonexistent/ca.pem"))
            .expect_err("a missing file fails");
        assert_eq!(err.step, Step::Tls);
        assert!(err.message.contains("sslrootcert"), "{}", err.message);
        assert!(policy(&cfg("sslmode=require")).is_ok());
    }

    #[test]
    fn certificate_errors_say_what_to_fix() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        let f = handshake_failure(&io, "db");
        assert!(f.line().contains("sslrootcert"), "{}", f.line());
        let list = names(&[
            "DnsName(\"localhost\")".to_owned(),
            "IpAddress(127.0.0.1)".to_owned(),
        ]);
        assert_eq!(list, "localhost, 127.0.0.1");
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert!(handshake_failure(&eof, "db").message.contains("broke"));
    }
}

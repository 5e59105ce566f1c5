//! Test-time TLS certificates: a CA, a server certificate it signed (SAN
//! `localhost` and `127.0.0.1`), client certificates it signs on demand,
//! and an unrelated CA for "wrong CA" tests.

use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// PEM texts for one server: its CA and the server's certificate and key.
pub(crate) struct ServerTls {
    pub(crate) ca_pem: String,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

/// A CA that signs certificates.
pub(crate) type Ca = Issuer<'static, KeyPair>;

fn new_ca(common_name: &str) -> Result<(String, Issuer<'static, KeyPair>), rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "lido-testkit");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

/// Generates a fresh CA and a server certificate signed by it.
pub(crate) fn generate_server_tls() -> Result<(ServerTls, Ca), rcgen::Error> {
    let (ca_pem, issuer) = new_ca("lido-testkit CA")?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    let tls = ServerTls {
        ca_pem,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    Ok((tls, issuer))
}

/// A client certificate with common name `user` (what `cert`
/// authentication and `clientcert=verify-full` compare with the role),
/// signed by `issuer`: (certificate PEM, PKCS#8 key PEM).
pub(crate) fn client_cert(issuer: &Ca, user: &str) -> Result<(String, String), rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, user);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The PEM certificate of a CA that signed nothing any testkit server uses:
/// trust only this one to check that connections fail with an unknown CA.
///
/// Generated once per process.
pub fn other_ca_pem() -> String {
    static OTHER: OnceLock<String> = OnceLock::new();
    OTHER
        .get_or_init(|| {
            new_ca("lido-testkit unrelated CA")
                .map(|(pem, _)| pem)
                .expect("generating an ECDSA P-256 certificate in memory cannot fail")
        })
        .clone()
}

//! Test-time TLS certificates: a CA, a server certificate it signed (SAN
//! `localhost` and `127.0.0.1`), and an unrelated CA for "wrong CA" tests.

use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// PEM texts for one server: its CA and the server's certificate and key.
#[derive(Clone)]
pub(crate) struct ServerTls {
    pub(crate) ca_pem: String,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

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
pub(crate) fn generate_server_tls() -> Result<ServerTls, rcgen::Error> {
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
    Ok(ServerTls {
        ca_pem,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
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

//! TLS paths that depend on the server's pg_hba.conf: client certificates,
//! `sslmode=allow` moving to TLS when only `hostssl` lines exist, and
//! `sslmode=prefer` falling back to plain text as libpq does.

use crate::common;

use std::io::Write as _;

use lido_core::ErrorClass;
use lido_postgres::{PgConfig, PgError, PgPool, RootCert, SslMode};
use lido_testkit::{other_ca_pem, PgServer};

fn cfg(server: &PgServer, mode: SslMode) -> PgConfig {
    let mut cfg = common::config(server, "postgres");
    cfg.sslmode = mode;
    cfg.hosts = vec!["localhost".to_owned()];
    cfg.hostaddrs = vec!["127.0.0.1".parse().expect("ip")];
    cfg.sslrootcert = Some(RootCert::File(server.ca_cert_path().to_owned()));
    cfg
}

/// Connects once: (ssl in use, client certificate DN) or the backend error.
async fn connect(cfg: PgConfig) -> (PgPool, Result<(bool, Option<String>), PgError>) {
    let pool = common::builder(cfg, 1).build_lazy().expect("pool");
    let result = match pool.get().await {
        Ok(conn) => conn
            .query_one(
                "SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .map(|row| (row.get(0), row.get(1))),
        Err(e) => Err(e.into()),
    };
    (pool, result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_authenticates() {
    let server = PgServer::builder()
        .hba_line("hostssl all all 127.0.0.1/32 cert")
        .start()
        .expect("server");
    let cert = server.client_cert(server.user()).expect("client cert");
    let mut with_cert = cfg(&server, SslMode::VerifyFull);
    with_cert.password = None;
    with_cert.sslcert = Some(cert.cert.clone());
    with_cert.sslkey = Some(cert.key.clone());
    let (_pool, r) = connect(with_cert).await;
    let (ssl, dn) = r.expect("certificate login");
    assert!(ssl);
    assert_eq!(dn.as_deref(), Some("/CN=lido"));

    let (pool, r) = connect(cfg(&server, SslMode::VerifyFull)).await;
    let e = r.expect_err("no certificate, no login");
    assert_eq!(e.code().map(|c| c.code()), Some("28000"), "{e}");
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert!(
        e.to_string().contains("pg_hba.conf"),
        "says what to fix: {e}"
    );
    assert_eq!(pool.pg_stats().connect_attempts(), 1, "not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_moves_to_tls_when_only_hostssl_lines_exist() {
    let server = PgServer::builder()
        .hba_line("hostssl all all 127.0.0.1/32 scram-sha-256")
        .start()
        .expect("server");
    let (pool, r) = connect(cfg(&server, SslMode::Allow)).await;
    let (ssl, _) = r.expect("allow connects");
    assert!(ssl, "the second attempt used TLS");
    assert_eq!(pool.pg_stats().connect_attempts(), 1);
    let (_pool, r) = connect(cfg(&server, SslMode::Disable)).await;
    let e = r.expect_err("disable has no second attempt");
    assert_eq!(e.code().map(|c| c.code()), Some("28000"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_falls_back_to_plain_text_when_tls_fails() {
    let server = PgServer::builder()
        .hba_line("hostnossl all all 127.0.0.1/32 scram-sha-256")
        .start()
        .expect("server");
    // TLS is agreed, then pg_hba refuses an encrypted session: libpq tries again without.
    let (_pool, r) = connect(cfg(&server, SslMode::Prefer)).await;
    let (ssl, _) = r.expect("prefer connects");
    assert!(!ssl, "the second attempt was plain text");
    let (_pool, r) = connect(cfg(&server, SslMode::Require)).await;
    let e = r.expect_err("require has no second attempt");
    assert_eq!(e.code().map(|c| c.code()), Some("28000"), "{e}");

    // The handshake itself fails (a CA that did not sign the server's certificate).
    let plain_ok = PgServer::shared();
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(other_ca_pem().as_bytes()).expect("write CA");
    let mut wrong_ca = cfg(plain_ok, SslMode::Prefer);
    wrong_ca.sslrootcert = Some(RootCert::File(file.path().to_owned()));
    let (_pool, r) = connect(wrong_ca.clone()).await;
    let (ssl, _) = r.expect("prefer connects after a failed handshake");
    assert!(!ssl);
    wrong_ca.sslmode = SslMode::Require;
    let (_pool, r) = connect(wrong_ca).await;
    let e = r.expect_err("require checks the chain");
    let backend = match &e {
        PgError::Pool(p) => p.backend(),
        _ => None,
    };
    assert!(
        matches!(
            backend,
            Some(PgError::Tls(lido_postgres::TlsError::UnknownCa))
        ),
        "{e}"
    );
}

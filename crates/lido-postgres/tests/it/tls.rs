//! TLS for each sslmode against a real server, and authentication failures.

use crate::common;

use std::io::Write as _;

use lido_core::ErrorClass;
use lido_postgres::{PgConfig, PgError, PgPool, RootCert, SslMode, TlsError};
use lido_testkit::{other_ca_pem, PgServer};

fn tls_config(server: &PgServer, db: &str, mode: SslMode, host: &str) -> PgConfig {
    let mut cfg = common::config(server, db);
    cfg.sslmode = mode;
    cfg.hosts = vec![host.to_owned()];
    cfg.hostaddrs = vec!["127.0.0.1".parse().expect("ip")];
    cfg.sslrootcert = Some(RootCert::File(server.ca_cert_path().to_owned()));
    cfg
}

/// Connects once; returns the backend error of a failed `get()`.
async fn connect(cfg: PgConfig) -> (PgPool, Result<bool, PgError>) {
    let pool = common::builder(cfg, 2).build_lazy().expect("pool");
    let result = match pool.get().await {
        Ok(conn) => conn
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .map(|row| row.get::<_, bool>(0)),
        Err(e) => Err(e.into()),
    };
    (pool, result)
}

fn tls_error(e: &PgError) -> Option<&TlsError> {
    match e {
        PgError::Pool(p) => match p.backend() {
            Some(PgError::Tls(t)) => Some(t),
            _ => None,
        },
        PgError::Tls(t) => Some(t),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_test_ca_encrypts() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let (_pool, r) = connect(tls_config(server, &db, SslMode::VerifyFull, "localhost")).await;
    assert!(
        r.expect("verify-full connects"),
        "pg_stat_ssl says the session is encrypted"
    );
    let (_pool, r) = connect(tls_config(server, &db, SslMode::VerifyFull, "127.0.0.1")).await;
    assert!(r.expect("verify-full by IP SAN connects"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_rejects_a_wrong_host_name_and_verify_ca_accepts_it() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    // Connect to 127.0.0.1 (hostaddr) while checking a name the certificate lacks.
    let (pool, r) = connect(tls_config(
        server,
        &db,
        SslMode::VerifyFull,
        "db.wrong-name.invalid",
    ))
    .await;
    let e = r.expect_err("name mismatch must fail");
    match tls_error(&e) {
        Some(TlsError::HostnameMismatch { host, presented }) => {
            assert_eq!(host, "db.wrong-name.invalid");
            assert!(presented.iter().any(|n| n == "localhost"), "{presented:?}");
        }
        other => panic!("expected HostnameMismatch, got {other:?} from {e}"),
    }
    assert_eq!(
        pool.pg_stats().connect_attempts(),
        1,
        "a TLS config error is not retried"
    );
    let (_pool, r) = connect(tls_config(
        server,
        &db,
        SslMode::VerifyCa,
        "db.wrong-name.invalid",
    ))
    .await;
    assert!(r.expect("verify-ca checks the chain only"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_ca_fails_clearly_once() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(other_ca_pem().as_bytes()).expect("write CA");
    for mode in [SslMode::VerifyCa, SslMode::VerifyFull, SslMode::Require] {
        let mut cfg = tls_config(server, &db, mode, "localhost");
        cfg.sslrootcert = Some(RootCert::File(file.path().to_owned()));
        let (pool, r) = connect(cfg).await;
        let e = r.expect_err("wrong CA must fail");
        assert!(
            matches!(tls_error(&e), Some(TlsError::UnknownCa)),
            "{mode:?}: {e}"
        );
        assert!(e.to_string().contains("trusted CA"), "{e}");
        assert_eq!(pool.pg_stats().connect_attempts(), 1);
        assert_eq!(pool.stats().connect_failures(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_without_roots_encrypts_without_checking() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let mut cfg = tls_config(server, &db, SslMode::Require, "anything.invalid");
    cfg.sslrootcert = None;
    let (_pool, r) = connect(cfg).await;
    assert!(r.expect("require connects"));
    let (_pool, r) = connect(tls_config(server, &db, SslMode::Prefer, "localhost")).await;
    assert!(r.expect("prefer uses TLS when offered"));
    let (_pool, r) = connect(tls_config(server, &db, SslMode::Allow, "localhost")).await;
    assert!(!r.expect("allow starts with plain text"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_against_a_server_without_tls_fails_clearly() {
    let server = PgServer::builder()
        .tls(false)
        .start()
        .expect("plain server");
    let db = server.create_database().expect("db");
    let mut cfg = common::config(&server, &db);
    cfg.sslmode = SslMode::Require;
    let (pool, r) = connect(cfg.clone()).await;
    let e = r.expect_err("require must fail");
    assert!(
        matches!(
            tls_error(&e),
            Some(TlsError::ServerRefusedTls { sslmode: "require" })
        ),
        "{e}"
    );
    assert_eq!(pool.pg_stats().connect_attempts(), 1);
    cfg.sslmode = SslMode::Prefer;
    let (_pool, r) = connect(cfg).await;
    assert!(!r.expect("prefer falls back to plain text"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_succeeds_and_a_wrong_password_fails_at_once() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let method = common::psql(server, "postgres", "SHOW password_encryption;");
    assert_eq!(method, "scram-sha-256");
    let (_pool, r) = connect(common::config(server, &db)).await;
    assert!(!r.expect("SCRAM login works"));

    let cfg = common::config(server, &db).password("definitely-wrong-pw");
    let (pool, r) = connect(cfg.clone()).await;
    let e = r.expect_err("wrong password");
    let backend = match &e {
        PgError::Pool(p) => p.backend().expect("backend error"),
        other => panic!("expected a pool error, got {other}"),
    };
    assert_eq!(backend.code().map(|c| c.code()), Some("28P01"), "{e}");
    assert_eq!(backend.class(), ErrorClass::Permanent);
    assert_eq!(
        pool.pg_stats().connect_attempts(),
        1,
        "exactly one attempt, no retry storm"
    );
    assert_eq!(pool.stats().connect_failures(), 1);
    for shown in [
        e.to_string(),
        format!("{e:?}"),
        format!("{cfg:?}"),
        cfg.to_string(),
    ] {
        assert!(
            !shown.contains("definitely-wrong-pw"),
            "password leaked: {shown}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_database_is_permanent() {
    let server = PgServer::shared();
    let (pool, r) = connect(common::config(server, "no_such_database_here")).await;
    let e = r.expect_err("unknown db");
    assert_eq!(e.code().map(|c| c.code()), Some("3D000"), "{e}");
    assert_eq!(pool.pg_stats().connect_attempts(), 1);
}

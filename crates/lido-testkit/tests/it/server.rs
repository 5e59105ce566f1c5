//! Starts real PostgreSQL servers (and pgbouncer) and checks what the
//! testkit promises about them.

use std::process::Command;
use std::time::Duration;

use lido_testkit::{other_ca_pem, PgBouncer, PgServer, StopMode, TestkitError};
use tokio_postgres::NoTls;

pub(crate) async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn one_i32(client: &tokio_postgres::Client, sql: &str) -> i32 {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

/// Runs `psql` over TCP (password auth) with extra conninfo, e.g. TLS options.
fn psql_tcp(server: &PgServer, conninfo: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(server.binaries().program("psql"))
        .env("PGPASSWORD", server.password())
        .env_remove("PGSSLMODE")
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .arg(format!(
            "port={} user={} dbname=postgres {conninfo}",
            server.port(),
            server.user()
        ))
        .output()
        .expect("run psql");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_login_over_tcp_works_and_a_wrong_password_fails() {
    let server = PgServer::start().expect("start");
    assert_eq!(server.host(), "127.0.0.1");
    let client = connect(&server.url("postgres")).await.expect("connect");
    let row = client
        .query_one(
            "SELECT current_user::text, rolsuper, rolpassword LIKE 'SCRAM-SHA-256$%' \
             FROM pg_authid WHERE rolname = current_user",
            &[],
        )
        .await
        .expect("query");
    assert_eq!(row.get::<_, String>(0), server.user());
    assert!(row.get::<_, bool>(1), "the role is a superuser");
    assert!(row.get::<_, bool>(2), "the password is stored as SCRAM");
    let method: String = client
        .query_one(
            "SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host' LIMIT 1",
            &[],
        )
        .await
        .expect("hba")
        .get(0);
    assert_eq!(method, "scram-sha-256");

    let wrong = server
        .url("postgres")
        .replace(server.password(), "not-the-password");
    let err = connect(&wrong).await.expect_err("wrong password must fail");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD),
        "{err}"
    );
}

#[test]
fn tls_is_on_with_a_ca_signed_certificate() {
    let server = PgServer::shared();
    assert!(server.tls_enabled());
    let sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let ca = server.ca_cert_path().display().to_string();
    assert!(server.ca_pem().contains("BEGIN CERTIFICATE"));
    for host in ["localhost", "127.0.0.1"] {
        let verified = psql_tcp(
            server,
            &format!("host={host} sslmode=verify-full sslrootcert={ca}"),
            sql,
        );
        assert_eq!(verified.as_deref(), Ok("t"), "verify-full via {host}");
    }
    assert_eq!(
        psql_tcp(server, "host=127.0.0.1 sslmode=disable", sql).as_deref(),
        Ok("f")
    );

    let dir = std::env::temp_dir().join(format!("lido-other-ca-{}.crt", std::process::id()));
    std::fs::write(&dir, other_ca_pem()).expect("write other CA");
    let wrong = psql_tcp(
        server,
        &format!(
            "host=localhost sslmode=verify-full sslrootcert={}",
            dir.display()
        ),
        sql,
    );
    let _ = std::fs::remove_file(&dir);
    let err = wrong.expect_err("an unrelated CA must not verify the server");
    assert!(err.contains("certificate verify failed"), "{err}");
    assert_ne!(other_ca_pem(), server.ca_pem());
}

#[test]
fn builder_options_apply() {
    let server = PgServer::builder()
        .tls(false)
        .max_connections(7)
        .setting("work_mem", "8MB")
        .start()
        .expect("start");
    let shown = server
        .psql("postgres", "SHOW max_connections; SHOW work_mem; SHOW ssl; SHOW fsync; SHOW shared_preload_libraries;")
        .expect("show");
    assert_eq!(
        shown.lines().collect::<Vec<_>>(),
        ["7", "8MB", "off", "off", "pg_stat_statements"]
    );
    let err = psql_tcp(&server, "host=127.0.0.1 sslmode=require", "SELECT 1")
        .expect_err("no TLS when tls(false)");
    assert!(err.contains("SSL"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_start_again_and_restart_keep_port_and_data() {
    let server = PgServer::start().expect("start");
    let port = server.port();
    let url = server.url("postgres");
    server
        .psql(
            "postgres",
            "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42);",
        )
        .expect("create");

    server.stop().expect("stop");
    assert!(!server.is_running());
    assert!(connect(&url).await.is_err(), "connect while stopped");
    assert!(matches!(server.stop(), Err(TestkitError::InvalidState(_))));
    server.start_again().expect("start_again");
    assert!(server.is_running());
    let client = connect(&url).await.expect("connect after start_again");
    assert_eq!(one_i32(&client, "SELECT v FROM kept").await, 42);

    server
        .restart(StopMode::Immediate)
        .expect("restart immediate");
    assert_eq!(server.port(), port);
    assert!(
        client.simple_query("SELECT 1").await.is_err(),
        "an old connection dies with the server"
    );
    let client = connect(&url)
        .await
        .expect("connect after immediate restart");
    assert_eq!(one_i32(&client, "SELECT v FROM kept").await, 42);

    server.restart(StopMode::Fast).expect("restart fast");
    let client = connect(&url).await.expect("connect after fast restart");
    assert_eq!(one_i32(&client, "SELECT 7").await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_backends_kills_every_connection_to_the_db() {
    let server = PgServer::shared();
    let db = server.create_database().expect("create db");
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connect(&server.url(&db)).await.expect("connect"));
    }
    let other_db = server.create_database().expect("create other db");
    let bystander = connect(&server.url(&other_db)).await.expect("connect");

    assert_eq!(server.terminate_backends(&db).expect("terminate"), 3);
    for client in &clients {
        let err = client
            .simple_query("SELECT 1")
            .await
            .expect_err("terminated");
        assert!(
            err.is_closed() || err.code().is_some(),
            "unexpected error {err}"
        );
    }
    assert_eq!(one_i32(&bystander, "SELECT 1").await, 1);
    assert_eq!(server.terminate_backends(&db).expect("terminate again"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_database_gives_isolated_databases_with_pg_stat_statements() {
    let server = PgServer::shared();
    let a = server.create_database().expect("a");
    let b = server.create_database().expect("b");
    assert_ne!(a, b);
    let client_a = connect(&server.url(&a)).await.expect("connect a");
    client_a
        .batch_execute("CREATE TABLE only_in_a (id int)")
        .await
        .expect("create table");
    let client_b = connect(&server.url(&b)).await.expect("connect b");
    let n: i64 = client_b
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname = 'only_in_a'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0);
    let ext = server
        .psql(
            &b,
            "SELECT extname FROM pg_extension WHERE extname = 'pg_stat_statements';",
        )
        .expect("extension");
    assert_eq!(ext.trim(), "pg_stat_statements");
    let owner = server
        .psql(
            "postgres",
            &format!("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{b}';"),
        )
        .expect("owner");
    assert_eq!(owner.trim(), server.user());
    server.drop_database(&a).expect("drop a");
}

#[test]
fn psql_reports_sql_errors() {
    let server = PgServer::shared();
    let err = server
        .psql("postgres", "SELECT no_such_column;")
        .expect_err("bad SQL");
    let text = err.to_string();
    assert!(text.contains("no_such_column"), "{text}");
}

#[test]
fn drop_stops_the_server_and_removes_its_directory() {
    let server = PgServer::start().expect("start");
    let dir = server.socket_dir().to_path_buf();
    let addr = server.addr();
    assert!(dir.join("data").is_dir());
    drop(server);
    assert!(!dir.exists(), "{} should be gone", dir.display());
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

#[test]
fn a_panicking_test_still_tears_the_server_down() {
    let mut dir = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let server = PgServer::start().expect("start");
        dir = Some(server.socket_dir().to_path_buf());
        panic!("test failure");
    }));
    assert!(result.is_err());
    let dir = dir.expect("server started");
    assert!(!dir.exists(), "{} should be gone", dir.display());
}

#[test]
fn debug_output_hides_the_password() {
    let server = PgServer::shared();
    let debug = format!("{server:?}");
    assert!(!debug.contains(server.password()), "{debug}");
    assert!(debug.contains("redacted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbouncer_in_transaction_mode_forwards_queries() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let bouncer = PgBouncer::start(server, "transaction", 4).expect("start pgbouncer");
    assert_ne!(bouncer.port(), server.port());
    assert!(!format!("{bouncer:?}").contains(server.password()));
    let client = connect(&bouncer.url(&db))
        .await
        .expect("connect via pgbouncer");
    let rows = client
        .simple_query("SELECT 40 + 2")
        .await
        .expect("simple query");
    let value = rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .expect("a row");
    assert_eq!(value, "42");
    let row = client
        .query_typed(
            "SELECT $1::int4 * 2",
            &[(&21i32, tokio_postgres::types::Type::INT4)],
        )
        .await
        .expect("query_typed");
    assert_eq!(row[0].get::<_, i32>(0), 42);

    let wrong = bouncer.url(&db).replace(server.password(), "wrong");
    assert!(
        connect(&wrong).await.is_err(),
        "wrong password via pgbouncer"
    );

    let pid_file = bouncer.log_path().with_file_name("pgbouncer.pid");
    assert!(pid_file.exists());
    let port = bouncer.port();
    drop(bouncer);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn hba_lines_replace_the_tcp_rules_and_client_certs_authenticate() {
    let server = PgServer::builder()
        .hba_line("hostssl all all 127.0.0.1/32 cert")
        .start()
        .expect("start");
    let cert = server.client_cert(server.user()).expect("client cert");
    let tls = format!(
        "host=localhost hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
        server.ca_cert_path().display(),
        cert.cert.display(),
        cert.key.display()
    );
    let who = psql_tcp(&server, &tls, "SELECT current_user").expect("certificate login");
    assert_eq!(who, server.user());
    let plain = psql_tcp(&server, "host=127.0.0.1 sslmode=disable", "SELECT 1")
        .expect_err("only hostssl lines");
    assert!(plain.contains("no pg_hba.conf entry"), "{plain}");
    let other = server.client_cert("someone_else").expect("client cert");
    let wrong = tls
        .replace(
            &cert.cert.display().to_string(),
            &other.cert.display().to_string(),
        )
        .replace(
            &cert.key.display().to_string(),
            &other.key.display().to_string(),
        );
    let e = psql_tcp(&server, &wrong, "SELECT 1").expect_err("CN is not the role");
    assert!(e.contains("certificate authentication failed"), "{e}");
    assert_eq!(
        server
            .psql("postgres", "SELECT 1;")
            .expect("local psql still works")
            .trim(),
        "1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smart_stop_refuses_new_connections_while_sessions_run() {
    let server = PgServer::start().expect("start");
    let held = connect(&server.url("postgres")).await.expect("connect");
    server
        .begin_stop(StopMode::Smart)
        .expect("begin smart stop");
    let err = connect(&server.url("postgres"))
        .await
        .expect_err("shutting down");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::CANNOT_CONNECT_NOW),
        "{err:?}"
    );
    assert_eq!(one_i32(&held, "SELECT 7").await, 7, "open sessions go on");
}

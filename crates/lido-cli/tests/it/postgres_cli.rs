//! `lido check`, `lido bench` and `lido serve` against a real throwaway
//! PostgreSQL server (lido-testkit), through the real binary.

use std::path::Path;

use lido_testkit::PgServer;

use crate::common::{closed_port, get_until, lido, serve, text};

fn db() -> (&'static PgServer, String) {
    let server = PgServer::shared();
    let db = server.create_database().expect("create database");
    (server, db)
}

fn verify_full_url(server: &PgServer, db: &str, ca: &Path) -> String {
    server.url(db).replace(
        "sslmode=disable",
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    )
}

/// Fails the test if the password shows anywhere.
fn no_password(server: &PgServer, out: &std::process::Output) -> (String, String) {
    let (stdout, stderr) = text(out);
    for s in [&stdout, &stderr] {
        assert!(!s.contains(server.password()), "password leaked: {s}");
        assert!(!s.contains("panicked"), "{s}");
    }
    (stdout, stderr)
}

/// One `error:` line on stderr, and the exit code.
fn one_error_line(out: &std::process::Output, code: i32, needle: &str) {
    let (stdout, stderr) = text(out);
    println!("{stdout}{stderr}"); // shown with --nocapture
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let lines: Vec<&str> = stderr.trim().lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(needle), "want {needle:?} in: {stderr}");
}

#[test]
fn check_over_verified_tls_reports_every_step() {
    let (server, db) = db();
    let url = verify_full_url(server, &db, server.ca_cert_path());
    let out = lido(&["check", &url], &[]);
    let (stdout, stderr) = no_password(server, &out);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    println!("{stdout}");
    for step in [
        "resolve",
        "connect",
        "tls",
        "auth",
        "server",
        "latency",
        "connections",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.trim_start().starts_with(step) && l.contains(" ok ")),
            "step {step}: {stdout}"
        );
    }
    let tls = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("tls"))
        .unwrap_or("");
    assert!(tls.contains("TLS1."), "{tls}");
    assert!(
        tls.contains("verified (verify-full, CA from sslrootcert"),
        "{tls}"
    );
    let line = |step: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(step))
            .unwrap_or("")
            .to_owned()
    };
    assert!(line("resolve").contains("127.0.0.1"), "{stdout}");
    assert!(line("connect").contains("ms)"), "connect time: {stdout}");
    assert!(stdout.contains("logged in as user \"lido\""), "{stdout}");
    assert!(
        line("server").contains("PostgreSQL 15"),
        "server version: {stdout}"
    );
    assert!(line("latency").contains("median"), "round trip: {stdout}");
    let conns = line("connections");
    assert!(
        conns.contains(" in use of max_connections "),
        "connections in use and max_connections: {stdout}"
    );
    assert!(stdout.contains("ok: every step passed"), "{stdout}");
}

#[test]
fn check_by_host_name_and_json() {
    let (server, db) = db();
    let url =
        verify_full_url(server, &db, server.ca_cert_path()).replace("@127.0.0.1:", "@localhost:");
    let out = lido(&["check", "--json", "--url", &url], &[]);
    let (stdout, stderr) = no_password(server, &out);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(v["ok"], true);
    assert_eq!(v["exit_code"], 0);
    let steps = v["steps"].as_array().expect("steps");
    let tls = steps.iter().find(|s| s["step"] == "tls").expect("tls step");
    assert_eq!(tls["data"]["used"], true);
    assert_eq!(tls["data"]["verification"], "full");
    let latency = steps
        .iter()
        .find(|s| s["step"] == "latency")
        .expect("latency");
    assert!(latency["data"]["median_ms"].as_f64().is_some());
    let conns = steps
        .iter()
        .find(|s| s["step"] == "connections")
        .expect("conns");
    assert!(conns["data"]["in_use"].as_i64().is_some_and(|n| n >= 1));
    assert!(conns["data"]["max_connections"]
        .as_i64()
        .is_some_and(|n| n > 0));
}

#[test]
fn check_from_the_environment() {
    let (server, db) = db();
    let port = server.port().to_string();
    let env = [
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", port.as_str()),
        ("PGUSER", server.user()),
        ("PGPASSWORD", server.password()),
        ("PGDATABASE", db.as_str()),
        ("PGSSLMODE", "require"),
    ];
    let out = lido(&["check"], &env);
    let (stdout, stderr) = no_password(server, &out);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("not verified (sslmode=require"), "{stdout}");

    let out = lido(&["check"], &[("DATABASE_URL", &server.url(&db))]);
    let (stdout, stderr) = no_password(server, &out);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("not used (sslmode=disable)"), "{stdout}");
}

#[test]
fn check_failures_are_one_line_with_a_distinct_code() {
    let (server, db) = db();
    let closed = server.url_with_port(&db, closed_port());
    let out = lido(&["check", &closed], &[]);
    no_password(server, &out);
    one_error_line(&out, 4, "connect failed");
    let out = lido(&["check", "--json", &closed], &[]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on failure too");
    assert_eq!(
        (v["ok"].as_bool(), v["exit_code"].as_u64()),
        (Some(false), Some(4))
    );
    assert_eq!(v["error"]["step"], "connect");
    one_error_line(&out, 4, "connect failed");

    let wrong = server
        .url(&db)
        .replace(server.password(), "not-the-password");
    let out = lido(&["check", &wrong], &[]);
    let (_, stderr) = no_password(server, &out);
    one_error_line(&out, 6, "password authentication failed");
    assert!(!stderr.contains("not-the-password"), "{stderr}");

    let out = lido(
        &["check", "postgres://lido:hunter2@127.0.0.1:notaport/db"],
        &[],
    );
    let (_, stderr) = no_password(server, &out);
    one_error_line(&out, 2, "port");
    assert!(!stderr.contains("hunter2"), "{stderr}");

    let missing = server.url("no_such_database");
    let out = lido(&["check", &missing], &[]);
    no_password(server, &out);
    one_error_line(&out, 6, "does not exist");
}

#[test]
fn check_tls_verification_failures() {
    let (server, db) = db();
    let dir = tempfile::tempdir().expect("tempdir");
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, lido_testkit::other_ca_pem()).expect("write CA");
    let out = lido(&["check", &verify_full_url(server, &db, &other)], &[]);
    no_password(server, &out);
    one_error_line(&out, 5, "not signed by a trusted CA");

    let conninfo = format!(
        "host=wrong.example hostaddr=127.0.0.1 port={} user={} password={} dbname={db} sslmode=verify-full sslrootcert={}",
        server.port(),
        server.user(),
        server.password(),
        server.ca_cert_path().display()
    );
    let out = lido(&["check", &conninfo], &[]);
    no_password(server, &out);
    one_error_line(&out, 5, "not valid for host \"wrong.example\"");

    let missing = verify_full_url(server, &db, &dir.path().join("nope.pem"));
    let out = lido(&["check", &missing], &[]);
    no_password(server, &out);
    one_error_line(&out, 5, "sslrootcert");
}

#[test]
fn bench_on_postgres_prints_the_table() {
    let (server, db) = db();
    let url = server.url(&db);
    let out = lido(
        &[
            "bench",
            "--url",
            &url,
            "--duration",
            "300ms",
            "--sizes",
            "1,2",
            "--tasks",
            "4",
        ],
        &[],
    );
    let (stdout, stderr) = no_password(server, &out);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("PostgreSQL"), "{stdout}");
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.parse::<usize>().is_ok())
        })
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    for row in rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert!(cols[1].parse::<f64>().is_ok_and(|ops| ops > 0.0), "{row}");
        assert_eq!(cols[7], "0", "no errors: {row}");
    }
    assert!(stdout.contains("recommendation: max_size = "), "{stdout}");
    let n = server
        .psql(&db, "SELECT count(*) >= 20000 FROM lido_bench_orders;")
        .expect("psql");
    assert_eq!(n.trim(), "t");

    let out = lido(
        &[
            "bench",
            "--json",
            "--duration",
            "200ms",
            "--sizes",
            "1",
            "--tasks",
            "2",
            "--query",
            "SELECT 1",
        ],
        &[("DATABASE_URL", &url)],
    );
    let (stdout, stderr) = no_password(server, &out);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(v["results"][0]["errors"], 0, "{v}");
}

#[test]
fn bench_on_an_unreachable_server_fails_cleanly() {
    let (server, db) = db();
    let url = server.url_with_port(&db, closed_port());
    let out = lido(
        &[
            "bench",
            "--url",
            &url,
            "--duration",
            "100ms",
            "--sizes",
            "1",
        ],
        &[],
    );
    let (_, stderr) = no_password(server, &out);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn serve_on_postgres() {
    let (server, db) = db();
    let s = serve(&[&server.url(&db)]);
    let health = get_until(s.addr, "/health", |r| r.status == 200);
    assert_eq!(health.status, 200, "{}", health.body);
    let m = get_until(s.addr, "/metrics", |r| {
        r.body
            .contains("lido_pool_connections_created_total{pool=\"primary\"} 1")
    });
    assert!(m.body.contains("lido_pool_connections{"), "{}", m.body);
    assert!(!m.body.contains(server.password()));
}

#[test]
fn check_sslmodes_channel_binding_and_unix_sockets() {
    let (server, db) = db();
    let with = |extra: &str| server.url(&db).replace("sslmode=disable", extra);
    let out = lido(&["check", &with("sslmode=prefer")], &[]);
    let (stdout, stderr) = no_password(server, &out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("not verified (sslmode=prefer"), "{stdout}");

    let out = lido(&["check", &with("sslmode=allow")], &[]);
    let (stdout, stderr) = no_password(server, &out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("not used (sslmode=allow"), "{stdout}");

    let out = lido(
        &["check", &with("sslmode=require&channel_binding=require")],
        &[],
    );
    let (stdout, stderr) = no_password(server, &out);
    assert!(
        out.status.success(),
        "channel binding over our TLS stream: {stdout}{stderr}"
    );

    let socket = format!(
        "host={} port={} user={} dbname={db}",
        server.socket_dir().display(),
        server.port(),
        server.user()
    );
    let out = lido(&["check", &socket], &[]);
    let (stdout, stderr) = no_password(server, &out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("not used (Unix socket)"), "{stdout}");
}

#[test]
fn check_unresolvable_host() {
    let out = lido(
        &[
            "check",
            "--timeout",
            "5s",
            "postgres://u:hunter2@no-such-host.invalid/db",
        ],
        &[],
    );
    one_error_line(&out, 3, "cannot resolve host \"no-such-host.invalid\"");
    assert!(!text(&out).0.contains("hunter2"));
}

#[test]
fn check_a_server_without_tls() {
    let server = PgServer::builder()
        .tls(false)
        .start()
        .expect("start a server without TLS");
    let db = server.create_database().expect("create database");
    let url = server
        .url(&db)
        .replace("sslmode=disable", "sslmode=require");
    let out = lido(&["check", &url], &[]);
    no_password(&server, &out);
    one_error_line(&out, 5, "does not support TLS");

    let url = server.url(&db).replace("sslmode=disable", "sslmode=prefer");
    let out = lido(&["check", &url], &[]);
    let (stdout, stderr) = no_password(&server, &out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("sslmode=prefer fell back to plain text"),
        "{stdout}"
    );
}

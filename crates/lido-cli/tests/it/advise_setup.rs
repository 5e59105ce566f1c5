//! `lido advise` without pg_stat_statements (its own server, not
//! preloaded), and with lido's client-side figures: `--statements` from a
//! file and over HTTP, and the `lido.slow_queries` table.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::OnceLock;

use lido_testkit::PgServer;

use crate::advise::{advise, checked, indexes_on, seeded, server, workload};
use crate::common::lido;

fn unloaded() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        PgServer::builder()
            .tls(false)
            .setting("shared_preload_libraries", "")
            .start()
            .expect("start PostgreSQL")
    })
}

#[test]
fn without_pg_stat_statements_it_says_how_to_enable_it_and_exits_4() {
    let server = unloaded();
    let db = server.create_database().expect("create database");
    // Created (from template1) but not preloaded.
    let out = lido(&["advise", &server.url(&db)], &[]);
    let (stdout, stderr) = checked(server, &out);
    println!("{stderr}");
    assert_eq!(out.status.code(), Some(4), "{stdout}{stderr}");
    assert!(
        stderr.contains("shared_preload_libraries = 'pg_stat_statements'"),
        "{stderr}"
    );
    assert!(stderr.contains("restart"), "{stderr}");
    assert!(
        !stderr.contains("CREATE EXTENSION pg_stat_statements;"),
        "{stderr}"
    );
    // Neither preloaded nor created: both steps.
    server
        .psql(&db, "DROP EXTENSION pg_stat_statements;")
        .expect("drop extension");
    let out = lido(&["advise", &server.url(&db), "--json"], &[]);
    let (_, stderr) = checked(server, &out);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("CREATE EXTENSION pg_stat_statements;"),
        "{stderr}"
    );
    assert!(stderr.contains("shared_preload_libraries"), "{stderr}");
}

/// Serves `body` once as lido serve's `GET /statements` would.
fn serve_once(body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/statements")
}

#[test]
fn lido_statistics_and_slow_queries_weigh_in() {
    let server = server();
    let db = seeded(server, &["orders"]);
    workload(server, &db, 20, |i| {
        format!("SELECT id FROM orders WHERE customer_id = {i}")
    });
    server
        .psql(
            &db,
            "CREATE SCHEMA lido;\n\
             CREATE TABLE lido.slow_queries (id bigserial, logged_at timestamptz, \
             duration_ms double precision, fingerprint text, query text, rows bigint, \
             sqlstate text, class text, application_name text, database text, call_site text, \
             params text, plan jsonb, findings jsonb);\n\
             INSERT INTO lido.slow_queries (logged_at, duration_ms, fingerprint, query, findings) VALUES \
             (now() - interval '1 minute', 120, 'f1', 'SELECT id FROM orders WHERE customer_id = $1', NULL), \
             (now(), 80, 'f1', 'SELECT id FROM orders WHERE customer_id = $1', \
              '[{\"kind\": \"seq_scan\", \"message\": \"Seq Scan on orders filters 99.99% of 100000 rows\"}]');",
        )
        .expect("slow queries");
    let doc = serde_json::json!({
        "format": 1,
        "statements": [{
            "fingerprint": "0000000000000000",
            "query": "SELECT id FROM orders WHERE customer_id = $1",
            "class": null, "calls": 5000, "errors": 0, "rows": 5000,
            "total_ms": 50000.0, "mean_ms": 10.0, "p99_ms": 25.0
        }]
    });
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), doc.to_string()).expect("write");
    let path = file.path().to_string_lossy().into_owned();
    for source in [path, serve_once(doc.to_string())] {
        let (code, doc, all) = advise(server, &db, &["--json", "--statements", &source]);
        assert_eq!(code, Some(0), "{all}");
        let top = &doc["top_statements"][0];
        assert_eq!(top["lido"]["calls"], 5000, "{doc:#}");
        let served = &doc["recommendations"][0]["statements"][0];
        assert_eq!(served["weight_from"], "lido", "{doc:#}");
        assert_eq!(served["weight_ms"], 50000.0, "{doc:#}");
        let slow = &doc["slow_queries"][0];
        assert_eq!(slow["count"], 2, "{doc:#}");
        assert_eq!(slow["max_ms"], 120.0);
        assert_eq!(slow["findings"][0]["kind"], "seq_scan");
    }
    let (_, _, text) = advise(server, &db, &[]);
    assert!(
        text.contains("seq_scan: Seq Scan on orders filters"),
        "{text}"
    );
    let (code, _, all) = advise(server, &db, &["--statements", "/nonexistent/stats.json"]);
    assert_eq!(code, Some(2), "{all}");
}

#[test]
fn a_role_that_may_not_create_hypopg_gets_unverified_advice() {
    let server = server();
    let db = seeded(server, &["orders"]);
    let role = format!("app_{db}");
    server
        .psql(
            &db,
            &format!(
                "CREATE ROLE {role} LOGIN PASSWORD 'app-secret-pw';\n\
                 GRANT pg_read_all_stats TO {role};"
            ),
        )
        .expect("role");
    workload(server, &db, 20, |i| {
        format!("SELECT id FROM orders WHERE customer_id = {i}")
    });
    let url = server.url(&db).replace(
        &format!("lido:{}", server.password()),
        &format!("{role}:app-secret-pw"),
    );
    let out = lido(&["advise", &url, "--json"], &[]);
    let (stdout, stderr) = checked(server, &out);
    assert!(!stdout.contains("app-secret-pw") && !stderr.contains("app-secret-pw"));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(doc["verification"]["hypopg"], false, "{doc:#}");
    let reason = doc["verification"]["reason"].as_str().unwrap_or("");
    assert!(reason.contains("HypoPG is not available"), "{reason}");
    let r = &doc["recommendations"][0];
    assert_eq!(r["columns"], serde_json::json!(["customer_id"]), "{doc:#}");
    assert_eq!(r["verified"], false);
    let out = lido(&["advise", &url], &[]);
    let (stdout, _) = checked(server, &out);
    assert!(stdout.contains("UNVERIFIED"), "{stdout}");
}

#[test]
fn apply_asks_first_and_a_no_creates_nothing() {
    let server = server();
    let db = seeded(server, &["orders"]);
    workload(server, &db, 20, |i| {
        format!("SELECT id FROM orders WHERE customer_id = {i}")
    });
    let mut child = crate::common::command(&["advise", &server.url(&db), "--apply"], &[])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn lido");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(b"n\n").expect("answer");
    }
    let out = child.wait_with_output().expect("lido advise");
    let (stdout, stderr) = checked(server, &out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("Run `CREATE INDEX CONCURRENTLY ON orders (customer_id);` now? [y/N]"),
        "{stderr}"
    );
    assert!(stdout.contains("-> declined"), "{stdout}");
    assert_eq!(indexes_on(server, &db, "orders"), 1, "nothing was created");
}

#[test]
fn connection_errors_never_show_the_password() {
    let server = server();
    let url = server
        .url("postgres")
        .replace(server.password(), "wrong-password-123");
    let out = lido(&["advise", &url], &[]);
    let (stdout, stderr) = checked(server, &out);
    assert_eq!(out.status.code(), Some(3), "{stdout}{stderr}");
    assert!(!stderr.contains("wrong-password-123"), "{stderr}");
    assert!(
        stderr.starts_with("error: cannot connect to postgres://lido:********@"),
        "{stderr}"
    );
}

#[test]
fn pg_stat_statements_in_another_schema_is_found() {
    let server = server();
    let db = seeded(server, &["orders"]);
    server
        .psql(
            &db,
            "DROP EXTENSION pg_stat_statements;\nCREATE SCHEMA monitoring;\n\
             CREATE EXTENSION pg_stat_statements SCHEMA monitoring;",
        )
        .expect("move the extension");
    workload(server, &db, 20, |i| {
        format!("SELECT id FROM orders WHERE customer_id = {i}")
    });
    let (code, doc, all) = advise(server, &db, &["--json", "--order", "calls", "--top", "3"]);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(doc["order"], "calls");
    assert!(doc["top_statements"].as_array().map_or(0, Vec::len) <= 3);
    assert_eq!(doc["top_statements"][0]["calls"], 20, "{doc:#}");
    assert_eq!(
        doc["recommendations"][0]["columns"],
        serde_json::json!(["customer_id"])
    );
}

#[test]
fn a_statement_that_cannot_be_planned_is_left_out_and_the_rest_goes_on() {
    let server = server();
    let db = seeded(server, &["orders"]);
    workload(server, &db, 20, |i| {
        format!("SELECT id FROM orders WHERE customer_id = {i}")
    });
    // Only lido saw it, before a column was dropped: it no longer plans.
    let doc = serde_json::json!({
        "format": 1,
        "statements": [{
            "fingerprint": "00000000000000ff",
            "query": "SELECT id FROM orders WHERE status = $1 AND dropped_column = $2",
            "class": null, "calls": 900000, "errors": 0, "rows": 1,
            "total_ms": 900000.0, "mean_ms": 1.0, "p99_ms": 2.0
        }]
    });
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), doc.to_string()).expect("write");
    let path = file.path().to_string_lossy().into_owned();
    let (code, doc, all) = advise(server, &db, &["--json", "--statements", &path]);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(doc["lido_only"][0]["calls"], 900000, "{doc:#}");
    let skipped = doc["skipped"].to_string();
    assert!(skipped.contains("could not be planned"), "{skipped}");
    let recs = doc["recommendations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(recs.len(), 1, "{doc:#}");
    assert_eq!(recs[0]["columns"], serde_json::json!(["customer_id"]));
}

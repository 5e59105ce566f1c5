//! `lido serve` on the embedded SQLite default, through the real binary.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{closed_port, get, get_until, lido, serve, text};

#[test]
fn serves_health_probes_metrics_and_dashboard() {
    let s = serve(&[]);
    let health = get_until(s.addr, "/health", |r| r.status == 200);
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.header("content-type"), "application/health+json");
    let doc: serde_json::Value = serde_json::from_str(&health.body).expect("health JSON");
    assert_eq!(doc["status"], "pass", "{doc}");
    assert!(doc["checks"].is_object());

    for path in ["/health/live", "/health/ready"] {
        let r = get_until(s.addr, path, |r| r.status == 200);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(
            r.header("content-type"),
            "application/health+json",
            "{path}"
        );
    }

    let m = get(s.addr, "/metrics");
    assert_eq!(m.status, 200);
    assert!(
        m.header("content-type")
            .starts_with("application/openmetrics-text"),
        "{}",
        m.header("content-type")
    );
    assert!(m.body.contains("lido_pool_connections{"), "{}", m.body);
    assert!(m.body.contains("pool=\"primary\""), "{}", m.body);
    assert!(
        m.body
            .contains("lido_sqlite_writes_queued{pool=\"primary\"} 0\n"),
        "the writer lane is exported: {}",
        m.body
    );
    assert!(m.body.trim_end().ends_with("# EOF"));
    let writer = &doc["checks"]["writer:responseTime"][0];
    assert_eq!(
        writer["status"], "pass",
        "the writer lane is checked: {doc}"
    );
    assert_eq!(writer["componentId"], "primary");

    let page = get(s.addr, "/");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").starts_with("text/html"));
    assert!(page.body.contains("<script>") && page.body.contains("/metrics"));

    assert_eq!(get(s.addr, "/nope").status, 404);
    assert_eq!(
        get(s.addr, "/cluster").status,
        404,
        "one server: no cluster"
    );
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let mut s = serve(&["--name", "orders"]);
    let m = get(s.addr, "/metrics");
    assert!(m.body.contains("pool=\"orders\""), "{}", m.body);
    let pid = s.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = s.child.try_wait().expect("wait") {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "lido serve did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = s.lines.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("shutting down")), "{rest:?}");
}

#[test]
fn serve_with_a_sqlite_file_and_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("app.db");
    let url = format!("sqlite:{}", path.display());
    let s = serve(&[&url]);
    let r = get_until(s.addr, "/health/ready", |r| r.status == 200);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(path.exists());
    drop(s);

    for (args, needle) in [
        (vec!["serve", "--listen", "not-an-address"], "cannot listen"),
        (
            vec!["serve", "--min-idle", "9", "--max-size", "2"],
            "--min-idle",
        ),
        (vec!["serve", "mysql://u:hunter2@h/db"], "unsupported"),
    ] {
        let out = lido(&args, &[]);
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

#[test]
fn every_command_has_meaningful_help() {
    for cmd in ["bench", "check", "serve"] {
        let out = lido(
            &[cmd, "--help"],
            &[("DATABASE_URL", "postgres://u:hunter2@h/db")],
        );
        let (stdout, _) = text(&out);
        assert!(out.status.success(), "{cmd}");
        assert!(stdout.contains("Usage: lido"), "{stdout}");
        assert!(stdout.contains("DATABASE_URL"), "{cmd}: {stdout}");
        assert!(
            !stdout.contains("hunter2"),
            "--help must not show the URL's value: {stdout}"
        );
    }
    let (check, _) = text(&lido(&["check", "--help"], &[]));
    assert!(check.contains("Exit codes"), "{check}");
    let (serve, _) = text(&lido(&["serve", "--help"], &[]));
    assert!(
        serve.contains("LIDO_LISTEN") && serve.contains("/metrics"),
        "{serve}"
    );
}

#[test]
fn serve_keeps_running_while_postgres_is_unreachable() {
    let port = closed_port();
    let url = format!("postgres://u:hunter2@127.0.0.1:{port}/db");
    let s = serve(&[&url]);
    let health = get_until(s.addr, "/health", |r| r.status == 503);
    assert_eq!(health.status, 503, "{}", health.body);
    assert!(!health.body.contains("hunter2"));
    assert_eq!(
        get(s.addr, "/health/live").status,
        200,
        "liveness ignores the database"
    );
    assert_eq!(get(s.addr, "/health/ready").status, 503);
    assert_eq!(get(s.addr, "/metrics").status, 200);
}

#[test]
fn serve_exports_postgres_metrics_and_the_query_error_rate() {
    let server = lido_testkit::PgServer::shared();
    let db = server.create_database().expect("database");
    let s = serve(&[&server.url(&db)]);
    let health = get_until(s.addr, "/health", |r| r.status == 200);
    assert_eq!(health.status, 200, "{}", health.body);
    let doc: serde_json::Value = serde_json::from_str(&health.body).expect("health JSON");
    let rate = &doc["checks"]["database:queryErrorRate"][0];
    assert_eq!(rate["componentId"], "primary", "{doc}");
    assert_eq!(rate["status"], "pass", "{doc}");
    assert!(!health.body.contains(server.password()));
    assert_eq!(get(s.addr, "/cluster").status, 404, "one host: no cluster");
    let m = get(s.addr, "/metrics");
    assert_eq!(m.status, 200);
    assert!(!m.body.contains("lido_cluster_"), "{}", m.body);
    for family in [
        "lido_pg_queries_total{pool=\"primary\"}",
        "lido_pg_query_errors_total{pool=\"primary\"}",
        "lido_pg_statement_cache_hits_total{pool=\"primary\"}",
        "lido_pg_transactions_total{pool=\"primary\",outcome=\"commit\"}",
        "lido_pg_query_duration_seconds_count{pool=\"primary\",operation=\"query\"}",
        "lido_pool_connections_max{pool=\"primary\"}",
    ] {
        assert!(m.body.contains(family), "{family} missing: {}", m.body);
    }
}

//! `lido check` checks the servers the pool would try, in the pool's order,
//! with the pool's rules: its plan is lido-postgres's [`ConnectPlan`], and
//! its attempts are the library dialer's.

use lido_postgres::{default_host, PgConfig};
use lido_testkit::urls::host_rule_table;
use lido_testkit::PgServer;
use serde_json::Value;

use crate::common::{lido, text};

fn planned_by_the_library(url: &str) -> Vec<String> {
    let cfg = PgConfig::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    cfg.plan()
        .targets()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn check_tries_the_pools_plan_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nosock = dir.path().join("nosock").display().to_string();
    for url in host_rule_table(&nosock) {
        let out = lido(&["check", "--json", "--timeout", "5s", &url], &[]);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{url}: nothing listens\n{stdout}");
        let v: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{url}: {e}\n{stdout}\n{stderr}"));
        let steps = v["steps"].as_array().expect("steps");
        let plan: Vec<String> = steps[0]["data"]["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{url}: the plan comes first: {stdout}"))
            .iter()
            .map(|t| t["target"].as_str().unwrap_or_default().to_owned())
            .collect();
        let library = planned_by_the_library(&url);
        assert_eq!(plan, library, "{url}: check's plan is the pool's");
        // Every failed attempt that moved on to another server, then the last.
        let mut tried: Vec<String> = steps
            .iter()
            .filter(|s| {
                s["ok"] == false
                    && ["Target", "AnyServer"]
                        .contains(&s["data"]["next"].as_str().unwrap_or_default())
            })
            .map(|s| s["data"]["target"].as_str().unwrap_or_default().to_owned())
            .collect();
        tried.push(v["error"]["target"].as_str().unwrap_or_default().to_owned());
        let passes = if url.contains("prefer-standby") { 2 } else { 1 };
        let expected: Vec<String> = (0..passes).flat_map(|_| library.clone()).collect();
        assert_eq!(
            tried, expected,
            "{url}: every server, in the pool's order\n{stdout}"
        );
    }
}

#[test]
fn check_with_no_host_uses_the_default_socket_directory_as_the_pool_does() {
    let server = PgServer::builder()
        .socket_dir(default_host())
        .start()
        .expect("a server that also listens in the default socket directory");
    let db = server.create_database().expect("database");
    let url = format!(
        "postgresql:///{db}?user={}&port={}",
        server.user(),
        server.port()
    );
    let out = lido(&["check", &url], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let socket = format!(
        "{}/.s.PGSQL.{}",
        default_host().trim_end_matches('/'),
        server.port()
    );
    let line = |step: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(step))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line("plan").contains(&socket), "{stdout}");
    assert!(
        line("resolve").contains(&format!("Unix socket {socket}")),
        "{stdout}"
    );
    assert!(
        line("connect").contains(&format!("Unix socket {socket}")),
        "{stdout}"
    );
    assert!(line("tls").contains("not used (Unix socket)"), "{stdout}");
    assert!(
        !stdout.contains("127.0.0.1"),
        "no TCP to localhost: {stdout}"
    );
}

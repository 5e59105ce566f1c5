//! `lido check` with several hosts: one line per node (role, rotation,
//! lag), against a real primary and streaming replica (lido-testkit's
//! `PgReplicaSet`), through the real binary.

use std::process::Output;
use std::time::Duration;

use lido_testkit::PgReplicaSet;
use serde_json::Value;

use crate::common::{lido, text};

/// stdout and stderr, failing the test if the password or a panic shows.
fn checked(set: &PgReplicaSet, out: &Output) -> (String, String) {
    let (stdout, stderr) = text(out);
    println!("{stdout}{stderr}"); // shown with --nocapture
    for s in [&stdout, &stderr] {
        assert!(
            !s.contains(set.primary().password()),
            "password leaked: {s}"
        );
        assert!(!s.contains("panicked"), "{s}");
    }
    (stdout, stderr)
}

/// The `node` line naming `port`.
fn node_line(stdout: &str, port: u16) -> String {
    let addr = format!("127.0.0.1:{port}  ");
    stdout
        .lines()
        .find(|l| l.trim_start().starts_with("node") && l.contains(&addr))
        .unwrap_or_else(|| panic!("no node line for {addr}: {stdout}"))
        .to_owned()
}

fn json_node(v: &Value, port: u16) -> Value {
    let addr = format!("127.0.0.1:{port}");
    v["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["step"] == "node" && s["data"]["address"] == addr.as_str())
        .unwrap_or_else(|| panic!("no node step for {addr}: {v}"))["data"]
        .clone()
}

#[test]
fn check_reports_each_node_role_and_lag_and_a_replica_down_as_a_warning() {
    let set = PgReplicaSet::start(1).expect("primary and replica");
    let db = set.create_database().expect("database");
    let url = set.multi_host_url(&db);
    let (p, r) = (set.primary().port(), set.replica(0).port());

    // Both up: the primary takes writes, the replica reads, lag shown.
    let out = lido(&["check", &url], &[]);
    let (stdout, stderr) = checked(&set, &out);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    let primary = node_line(&stdout, p);
    assert!(primary.contains(" ok "), "{primary}");
    assert!(primary.contains("primary  takes writes"), "{primary}");
    let replica = node_line(&stdout, r);
    // In rotation unless it lagged past 1 s while the check watched.
    assert!(
        replica.contains("  replica  ") && replica.contains("  lag "),
        "{replica}"
    );
    assert!(
        replica.contains(" B / ") && replica.contains(" ms"),
        "{replica}"
    );
    let summary = format!("primary 127.0.0.1:{p}; replicas up: ");
    assert!(stdout.contains(&summary), "{stdout}");
    assert!(stdout.contains("ok: every step passed"), "{stdout}");

    // Replay held back: the lag in bytes is real, and in JSON.
    set.set_apply_delay(0, Duration::from_secs(60))
        .expect("delay");
    set.primary()
        .psql(
            &db,
            "CREATE TABLE lagging (id int); INSERT INTO lagging VALUES (1);",
        )
        .expect("write on the primary");
    let out = lido(&["check", "--json", &url], &[]);
    let (stdout, stderr) = checked(&set, &out);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("JSON");
    let (pj, rj) = (json_node(&v, p), json_node(&v, r));
    assert_eq!(
        (pj["role"].as_str(), pj["write_target"].as_bool()),
        (Some("primary"), Some(true))
    );
    assert_eq!(rj["role"], "replica");
    assert!(rj["lag_bytes"].as_u64().is_some_and(|b| b > 0), "{rj}");
    assert!(rj["lag_ms"].as_f64().is_some_and(|t| t > 0.0), "{rj}");
    set.set_apply_delay(0, Duration::ZERO).expect("no delay");

    // Replica down: a warning, the check still passes.
    set.replica(0).stop().expect("stop the replica");
    let out = lido(&["check", &url], &[]);
    let (stdout, stderr) = checked(&set, &out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let replica = node_line(&stdout, r);
    assert!(
        replica.contains(" WARN ") && replica.contains("down: "),
        "{replica}"
    );
    assert!(
        node_line(&stdout, p).contains("primary  takes writes"),
        "{stdout}"
    );
    assert!(stdout.contains("with 1 warning"), "{stdout}");

    // Primary down, replica up: no node accepts writes, a failure.
    set.replica(0)
        .start_again()
        .expect("start the replica again");
    set.primary().stop().expect("stop the primary");
    let out = lido(&["check", &url], &[]);
    let (stdout, stderr) = checked(&set, &out);
    assert_eq!(
        out.status.code(),
        Some(7),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(node_line(&stdout, r).contains("replica"), "{stdout}");
    assert!(node_line(&stdout, p).contains("down: "), "{stdout}");
    let lines: Vec<&str> = stderr.trim().lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("error: cluster failed: no node accepts writes"),
        "{stderr}"
    );
}

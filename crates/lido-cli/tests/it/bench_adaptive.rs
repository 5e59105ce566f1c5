//! `lido bench --adaptive` against a real throwaway PostgreSQL server
//! (lido-testkit), with tiny phases: it runs every phase at every fixed size
//! and the adaptive pool through them, and prints the side-by-side table.

use lido_testkit::PgServer;

use crate::common::{lido, text};

#[test]
fn bench_adaptive_prints_fixed_sizes_beside_the_adaptive_pool() {
    let server = PgServer::shared();
    let db = server.create_database().expect("create database");
    let url = server.url(&db);
    let out = lido(
        &[
            "bench",
            "--adaptive",
            "--url",
            &url,
            "--adaptive-sizes",
            "1,4",
            "--duration",
            "300ms",
            "--warmup",
            "100ms",
            "--phase-duration",
            "2s",
            "--adaptive-interval",
            "100ms",
            "--tasks",
            "8",
        ],
        &[],
    );
    let (stdout, stderr) = text(&out);
    println!("{stdout}{stderr}"); // shown with --nocapture
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(!stdout.contains(server.password()) && !stderr.contains(server.password()));
    for phase in ["cpu", "sleep", "locks"] {
        assert!(stdout.contains(&format!("phase {phase}: ")), "{stdout}");
        let row = stdout
            .lines()
            .find(|l| l.starts_with(phase) && l.contains(" | "))
            .unwrap_or_else(|| panic!("no side-by-side row for {phase}: {stdout}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        // phase, best size, ops/s, p99 | target, ops/s, p99, ratios, converged, goal
        assert_eq!(cols.len(), 12, "{row}");
        assert!(cols[2].parse::<f64>().is_ok_and(|v| v > 0.0), "{row}");
        let target: usize = cols[5].parse().expect("target");
        assert!((1..=4).contains(&target), "{row}");
        assert!(cols[6].parse::<f64>().is_ok_and(|v| v > 0.0), "{row}");
        assert!(["met", "MISSED"].contains(&cols[11]), "{row}");
    }
    assert!(stdout.contains("best fixed size vs adaptive"), "{stdout}");
    assert!(!stdout.contains("errors, first:"), "{stdout}");

    let sqlite = lido(&["bench", "--adaptive", "--duration", "100ms"], &[]);
    let (_, stderr) = text(&sqlite);
    assert!(!sqlite.status.success());
    assert!(stderr.contains("needs a PostgreSQL database"), "{stderr}");
}

//! `lido bench` pictures and machine output: `--json`, `--chart FILE` (SVG),
//! the terminal chart (`--chart-term` forces it when piped), and nothing
//! extra on a piped stdout. Short runs on the embedded SQLite default; the
//! `--adaptive --json` test uses a throwaway PostgreSQL (lido-testkit).

use lido_testkit::PgServer;
use serde_json::Value;

use crate::common::{lido, text};

/// A short sweep over `sizes` plus `extra` flags; fails the test if lido fails.
fn bench(sizes: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "bench",
        "--duration",
        "200ms",
        "--warmup",
        "50ms",
        "--sizes",
        sizes,
        "--tasks",
        "4",
    ];
    args.extend_from_slice(extra);
    let out = lido(&args, &[]);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "{args:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

fn size_of(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("a size: {v}"))
}

#[test]
fn json_is_the_whole_stdout_and_recommends_a_measured_size() {
    // --chart-term must not leak a chart into the JSON.
    let (stdout, stderr) = bench("1,2,4", &["--json", "--chart-term"]);
    let v: Value = serde_json::from_str(&stdout).expect("stdout is one JSON document");
    let results = v["results"].as_array().expect("results");
    let sizes: Vec<u64> = results.iter().map(|r| size_of(&r["size"])).collect();
    assert_eq!(sizes, vec![1, 2, 4], "{v}");
    for r in results {
        for key in ["ops_per_sec", "p50", "p95", "p99", "acquire_wait_p99"] {
            assert!(r[key].as_f64().is_some_and(|x| x >= 0.0), "{key}: {r}");
        }
        assert_eq!(r["errors"], 0, "{r}");
        assert_eq!(r["timeouts"], 0, "{r}");
    }
    let rec = &v["recommendation"];
    assert!(sizes.contains(&size_of(&rec["size"])), "{v}");
    assert!(sizes.contains(&size_of(&rec["best_size"])), "{v}");
    assert!(rec["reason"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
    assert_eq!(v["latency_unit"], "microseconds");
    assert_eq!(v["sizes"], serde_json::json!([1, 2, 4]));
    assert_eq!(v["tasks"], 4);
    assert!(v["target"].as_str().is_some_and(|t| t.contains("SQLite")));
    assert!(
        !stderr.contains('\r'),
        "no progress bar when piped: {stderr:?}"
    );
}

#[test]
fn chart_writes_valid_svg_with_a_point_per_size_and_the_pick_marked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("out.svg");
    let path_arg = path.to_str().expect("utf-8 path");
    let (stdout, _) = bench("1,2,4", &["--chart", path_arg, "--json"]);
    let v: Value = serde_json::from_str(&stdout).expect("JSON");
    let picked = size_of(&v["recommendation"]["size"]).to_string();
    assert_eq!(v["chart"], path_arg);

    let svg = std::fs::read_to_string(&path).expect("chart written");
    let doc = roxmltree::Document::parse(&svg).expect("valid XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let class_of = |n: &roxmltree::Node| n.attribute("class").unwrap_or("").to_owned();
    for series in ["point throughput", "point p99"] {
        let sizes: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("circle") && class_of(n) == series)
            .map(|n| n.attribute("data-size").expect("data-size"))
            .collect();
        assert_eq!(sizes, vec!["1", "2", "4"], "{series}");
    }
    let marker = doc
        .descendants()
        .find(|n| n.attribute("id") == Some("recommended"))
        .expect("recommended marker");
    assert_eq!(marker.attribute("data-size"), Some(picked.as_str()));
    assert!(marker.descendants().any(|n| n.has_tag_name("line")));
    let words: String = doc
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    for needle in [
        "embedded SQLite",
        "4 tasks",
        "throughput (ops/s)",
        "p99 latency (ms)",
        "pool size (read connections)",
        &format!("recommended: {picked}"),
    ] {
        assert!(words.contains(needle), "{needle:?} in {words}");
    }
}

#[test]
fn chart_term_draws_a_bar_row_per_size_without_colour_when_piped() {
    let (stdout, _) = bench("1,2,4", &["--chart-term"]);
    assert!(!stdout.contains('\x1b'), "no colours into a pipe: {stdout}");
    let picked = stdout
        .lines()
        .find_map(|l| l.strip_prefix("recommendation: max_size = "))
        .expect("recommendation");
    let bars: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains('█') && !l.starts_with("throughput"))
        .collect();
    assert_eq!(bars.len(), 3, "a bar row per size: {stdout}");
    let marked: Vec<&&str> = bars
        .iter()
        .filter(|l| l.contains("◀ recommended"))
        .collect();
    assert_eq!(marked.len(), 1, "{stdout}");
    let cols: Vec<&str> = marked[0].split_whitespace().collect();
    assert_eq!((cols[0], cols[1]), ("▶", picked), "{stdout}");
    assert!(
        stdout.contains("throughput ") && stdout.contains(" p99 "),
        "{stdout}"
    );
}

#[test]
fn piped_output_has_no_chart_escapes_or_progress() {
    let (stdout, stderr) = bench("1,2", &[]);
    for bad in ['\x1b', '█', '\r'] {
        assert!(!stdout.contains(bad), "{bad:?} on stdout: {stdout}");
        assert!(!stderr.contains(bad), "{bad:?} on stderr: {stderr}");
    }
    assert!(!stdout.contains("◀ recommended"), "{stdout}");
    assert!(stdout.contains("recommendation: max_size = "), "{stdout}");

    let out = lido(&["bench", "--no-chart", "--chart-term"], &[]);
    assert_eq!(out.status.code(), Some(2), "the two flags conflict");
    let out = lido(&["bench", "--chart", "/nonexistent-lido-dir/x.svg"], &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.trim().lines().count() == 1 && stderr.contains("folder does not exist"),
        "fails before the sweep, in one line: {stderr}"
    );
}

#[test]
fn postgres_json_hides_the_password_and_adaptive_speaks_json_too() {
    let server = PgServer::shared();
    let db = server.create_database().expect("create database");
    let url = server.url(&db);
    let (stdout, stderr) = bench("1,2", &["--url", &url, "--json"]);
    assert!(!stdout.contains(server.password()) && !stderr.contains(server.password()));
    let v: Value = serde_json::from_str(&stdout).expect("JSON");
    assert!(v["target"]
        .as_str()
        .is_some_and(|t| t.contains("PostgreSQL")));

    let out = lido(
        &[
            "bench",
            "--adaptive",
            "--json",
            "--url",
            &url,
            "--adaptive-sizes",
            "1,4",
            "--phases",
            "cpu,sleep",
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
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(!stdout.contains(server.password()) && !stderr.contains(server.password()));
    assert!(
        stderr.contains("phase cpu"),
        "progress goes to stderr: {stderr}"
    );
    let v: Value = serde_json::from_str(&stdout).expect("stdout is one JSON document");
    assert_eq!(v["mode"], "adaptive");
    let phases = v["phases"].as_array().expect("phases");
    let names: Vec<&str> = phases.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, vec!["cpu", "sleep"], "{v}");
    for p in phases {
        let fixed: Vec<u64> = p["fixed"]
            .as_array()
            .expect("fixed")
            .iter()
            .map(|f| size_of(&f["size"]))
            .collect();
        assert_eq!(fixed, vec![1, 4], "{p}");
        assert!(
            p["adaptive"]["ops_per_sec"]
                .as_f64()
                .is_some_and(|x| x > 0.0),
            "{p}"
        );
        assert!((1..=4).contains(&size_of(&p["adaptive"]["settled"])), "{p}");
        assert!(p["goal_met"].is_boolean(), "{p}");
    }

    let out = lido(
        &["bench", "--adaptive", "--url", &url, "--chart", "x.svg"],
        &[],
    );
    let (_, stderr) = text(&out);
    assert!(
        !out.status.success() && stderr.contains("--chart"),
        "{stderr}"
    );
}

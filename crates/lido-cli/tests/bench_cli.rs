//! Runs the real `lido` binary.

use std::process::Command;

fn lido(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lido"))
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run lido")
}

#[test]
fn bench_on_the_embedded_default_prints_table_and_recommendation() {
    let out = lido(&[
        "bench",
        "--duration",
        "300ms",
        "--sizes",
        "1,2,4",
        "--tasks",
        "8",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("embedded SQLite"), "{stdout}");
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.parse::<usize>().is_ok())
        })
        .collect();
    assert_eq!(rows.len(), 3, "one row per size: {stdout}");
    for row in rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        let ops: f64 = cols[1].parse().expect("ops/s column");
        assert!(ops > 0.0, "{row}");
        assert_eq!(cols[7], "0", "no errors: {row}");
    }
    assert!(stdout.contains("recommendation: max_size = "), "{stdout}");
    assert!(stdout.contains("why:"), "{stdout}");
}

#[test]
fn bench_json_is_machine_readable() {
    let out = lido(&[
        "bench",
        "--duration",
        "200ms",
        "--sizes",
        "1,2",
        "--tasks",
        "4",
        "--json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["results"].as_array().map(Vec::len), Some(2));
    assert!(v["results"][0]["ops_per_sec"]
        .as_f64()
        .is_some_and(|x| x > 0.0));
    assert!(v["recommendation"]["size"].as_u64().is_some());
}

#[test]
fn bad_input_is_one_clear_line_and_a_failure_code() {
    for (args, needle) in [
        (vec!["bench", "--sizes", "0"], "--sizes"),
        (vec!["bench", "--write-ratio", "2"], "--write-ratio"),
        (vec!["bench", "--duration", "soon"], "duration"),
        (
            vec!["bench", "--url", "mysql://u:hunter2@h/db"],
            "unsupported",
        ),
    ] {
        let out = lido(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("hunter2"), "password leaked: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

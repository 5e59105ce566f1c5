//! Runs the real `lido` binary.

use std::process::Command;

fn lido(args: &[&str]) -> std::process::Output {
    lido_env(args, &[])
}

/// `lido` with no `DATABASE_URL` or `LIDO_*` from the caller, plus `env`.
fn lido_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lido"));
    cmd.args(args).env_remove("DATABASE_URL");
    for (k, _) in std::env::vars() {
        if k.starts_with("LIDO_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run lido")
}

/// Runs `lido` and returns its stdout, failing the test if it failed.
fn success(args: &[&str]) -> String {
    let out = lido(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The table's data rows: lines that start with a pool size.
fn rows(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.parse::<usize>().is_ok())
        })
        .collect()
}

#[test]
fn bench_on_the_embedded_default_prints_table_and_recommendation() {
    let stdout = success(&[
        "bench",
        "--duration",
        "300ms",
        "--sizes",
        "1,2,4",
        "--tasks",
        "8",
    ]);
    assert!(stdout.contains("embedded SQLite"), "{stdout}");
    let rows = rows(&stdout);
    assert_eq!(rows.len(), 3, "one row per size: {stdout}");
    for row in rows {
        let cols: Vec<&str> = row.split_whitespace().collect();
        let ops: f64 = cols[1].parse().expect("ops/s column");
        assert!(ops > 0.0, "{row}");
        assert_eq!(cols[7], "0", "no errors: {row}");
    }
    assert!(stdout.contains("recommendation: max_size = "), "{stdout}");
    assert!(stdout.contains("why:"), "{stdout}");
    assert!(stdout.contains("warm-up"), "{stdout}");
    assert!(
        stdout.contains("acq p99 ms: time until the statement starts"),
        "the wait column says what it covers: {stdout}"
    );
    assert!(
        stdout.contains("the number of read connections"),
        "SQLite sizes are readers: {stdout}"
    );
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
        (vec!["bench", "--sizes", "1,x"], "--sizes"),
        (vec!["bench", "--write-ratio", "2"], "--write-ratio"),
        (vec!["bench", "--duration", "soon"], "duration"),
        (vec!["bench", "--bogus"], "unexpected argument '--bogus'"),
        (vec!["bench", "--tasks"], "--tasks"),
        (
            vec!["bench", "--jsn"],
            "tip: a similar argument exists: '--json'",
        ),
        (vec!["bnech"], "unrecognized subcommand"),
        (
            vec!["bench", "--url", "mysql://u:hunter2@h/db"],
            "unsupported",
        ),
        (vec!["bench", "--url", "sqlite:"], "without a path"),
    ] {
        let out = lido(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        let lines: Vec<&str> = stderr.trim().lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line, got: {stderr}");
        assert!(lines[0].starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("hunter2"), "password leaked: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let out = lido(&["bench", "--bogus"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("lido bench --help"));
}

#[test]
fn help_is_not_an_error() {
    let out = lido(&["bench", "--help"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("LIDO_BENCH_TOLERANCE"), "{stdout}");
    assert!(stdout.contains("LIDO_BENCH_QUERY"), "{stdout}");
}

#[test]
fn flags_come_from_lido_variables() {
    let out = lido_env(
        &["bench", "--tasks", "2"],
        &[
            ("LIDO_BENCH_JSON", "true"),
            ("LIDO_BENCH_SIZES", "1,2"),
            ("LIDO_BENCH_DURATION", "100ms"),
            ("LIDO_BENCH_WARMUP", "10ms"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("JSON from LIDO_BENCH_JSON");
    assert_eq!(v["results"].as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v["duration_ms"], 100);
    assert_eq!(v["warmup_ms"], 10);

    let out = lido_env(&["bench"], &[("LIDO_BENCH_TOLERANCE", "7")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--tolerance 7 is out of range"), "{stderr}");
}

#[test]
fn a_sqlite_file_gets_its_own_table_and_keeps_the_users() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("app.db");
    let c = lido_sqlite::rusqlite::Connection::open(&path).expect("open");
    c.execute_batch("CREATE TABLE orders(id INTEGER PRIMARY KEY, note TEXT); INSERT INTO orders VALUES (1, 'mine');")
        .expect("user table");
    drop(c);
    let url = format!("sqlite:{}", path.display());
    let stdout = success(&[
        "bench",
        "--url",
        &url,
        "--duration",
        "200ms",
        "--sizes",
        "1,2",
        "--tasks",
        "4",
    ]);
    assert!(stdout.contains("lido_bench_orders"), "{stdout}");
    assert_eq!(rows(&stdout).len(), 2, "{stdout}");
    let c = lido_sqlite::rusqlite::Connection::open(&path).expect("reopen");
    let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).expect(sql) };
    assert_eq!(
        count("SELECT count(*) FROM orders"),
        1,
        "the user's table is untouched"
    );
    assert!(count("SELECT count(*) FROM lido_bench_orders") >= 20_000);
}

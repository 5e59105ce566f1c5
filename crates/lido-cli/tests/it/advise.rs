//! `lido advise` against a real PostgreSQL 15 with pg_stat_statements
//! preloaded and HypoPG installed (one server for this file, a database
//! per test), through the real binary.

use std::process::Output;
use std::sync::OnceLock;

use lido_testkit::PgServer;
use serde_json::Value;

use crate::common::{lido, text};

pub fn server() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        PgServer::builder()
            .tls(false)
            .setting("shared_preload_libraries", "pg_stat_statements")
            .start()
            .expect("start PostgreSQL")
    })
}

/// A fresh database with a `table` of 100,000 rows: `id` (primary key),
/// `customer_id` (20,000 distinct values, no index), `status` (5 values),
/// `payload`; analyzed, with pg_stat_statements and table statistics reset.
pub fn seeded(server: &PgServer, tables: &[&str]) -> String {
    let db = server.create_database().expect("create database");
    let mut sql = String::new();
    for t in tables {
        sql.push_str(&format!(
            "CREATE TABLE {t} (id bigint PRIMARY KEY, customer_id bigint NOT NULL, \
             status int NOT NULL, payload text NOT NULL);\n\
             INSERT INTO {t} SELECT g, g % 20000, g % 5, md5(g::text) \
             FROM generate_series(1, 100000) g;\n\
             ANALYZE {t};\n"
        ));
    }
    // The session's own counters reach the shared statistics when it is
    // idle after this, before the reset.
    sql.push_str("SELECT pg_stat_force_next_flush();\nSELECT 1;\nSELECT pg_stat_reset();\n");
    server.psql(&db, &sql).expect("seed");
    reset_statements(server, &db);
    db
}

pub fn reset_statements(server: &PgServer, db: &str) {
    server
        .psql(
            db,
            "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database \
             WHERE datname = current_database()), 0);",
        )
        .expect("reset pg_stat_statements");
}

/// Runs `sql_for(i)` as `n` top-level statements in one session.
pub fn workload(server: &PgServer, db: &str, n: usize, sql_for: impl Fn(usize) -> String) {
    let mut script: String = (0..n).map(|i| sql_for(i) + ";\n").collect();
    // Table statistics reach the shared ones before psql returns.
    script.push_str("SELECT pg_stat_force_next_flush();\nSELECT 1;\n");
    server.psql(db, &script).expect("workload");
}

/// `lido advise <url> --json <extra>`: exit code and document, checking the
/// password never shows.
pub fn advise(server: &PgServer, db: &str, extra: &[&str]) -> (Option<i32>, Value, String) {
    let url = server.url(db);
    let mut args = vec!["advise", url.as_str()];
    args.extend_from_slice(extra);
    let out = lido(&args, &[]);
    let (stdout, stderr) = checked(server, &out);
    let doc = if extra.contains(&"--json") {
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {stderr}"))
    } else {
        Value::Null
    };
    (out.status.code(), doc, format!("{stdout}{stderr}"))
}

/// stdout and stderr, failing if the password or a panic shows.
pub fn checked(server: &PgServer, out: &Output) -> (String, String) {
    let (stdout, stderr) = text(out);
    for s in [&stdout, &stderr] {
        assert!(!s.contains(server.password()), "password leaked: {s}");
        assert!(!s.contains("panicked"), "{s}");
    }
    (stdout, stderr)
}

/// Indexes on `table` now.
pub fn indexes_on(server: &PgServer, db: &str, table: &str) -> usize {
    let sql = format!("SELECT count(*) FROM pg_indexes WHERE tablename = '{table}';");
    let n = server.psql(db, &sql).expect("count indexes");
    n.trim().parse().expect("a count")
}

fn recommendations(doc: &Value) -> Vec<Value> {
    doc["recommendations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_selective_unindexed_column_gets_exactly_that_index_verified_by_hypopg() {
    let server = server();
    let db = seeded(server, &["orders"]);
    workload(server, &db, 40, |i| {
        format!("SELECT id, payload FROM orders WHERE customer_id = {i}")
    });
    let (code, doc, all) = advise(server, &db, &["--json"]);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(doc["verification"]["hypopg"], true, "{doc:#}");
    let recs = recommendations(&doc);
    assert_eq!(recs.len(), 1, "{doc:#}");
    let r = &recs[0];
    assert_eq!(r["table"], "orders");
    assert_eq!(r["columns"], serde_json::json!(["customer_id"]));
    assert_eq!(r["verified"], true);
    assert_eq!(
        r["sql"],
        "CREATE INDEX CONCURRENTLY ON orders (customer_id);"
    );
    let (before, after) = (
        r["cost_before"].as_f64().unwrap_or(0.0),
        r["cost_after"].as_f64().unwrap_or(f64::MAX),
    );
    assert!(after < before * 0.5, "{r:#}");
    assert!(r["cost_drop"].as_f64().unwrap_or(0.0) >= 0.5, "{r:#}");
    assert_eq!(r["statements"][0]["calls"], 40);
    let top = &doc["top_statements"][0];
    assert!(top["max_ms"].as_f64() >= top["min_ms"].as_f64(), "{top:#}");
    let seq = &doc["seq_scan_tables"][0];
    assert_eq!(seq["table"], "orders", "{doc:#}");
    assert_eq!(seq["seq_scans"], 40, "{doc:#}");
    // Seeded, then statistics reset: the table is read, not written.
    assert_eq!(r["write_penalty"], 0.0, "{r:#}");
    // The text report says the same, with the SQL to run.
    let (code, _, text) = advise(server, &db, &[]);
    assert_eq!(code, Some(0));
    println!("{text}");
    assert!(
        text.contains("CREATE INDEX CONCURRENTLY ON orders (customer_id);"),
        "{text}"
    );
    assert!(text.contains("verified with HypoPG"), "{text}");
    // Nothing was created.
    assert_eq!(indexes_on(server, &db, "orders"), 1, "nothing was created");
}

#[test]
fn a_query_already_served_by_an_index_gets_no_recommendation() {
    let server = server();
    let db = seeded(server, &["orders"]);
    server
        .psql(&db, "CREATE INDEX orders_customer ON orders (customer_id);")
        .expect("index");
    reset_statements(server, &db);
    workload(server, &db, 40, |i| {
        format!("SELECT id, payload FROM orders WHERE customer_id = {i}")
    });
    let (code, doc, all) = advise(server, &db, &["--json"]);
    assert_eq!(code, Some(0), "{all}");
    assert!(recommendations(&doc).is_empty(), "{doc:#}");
    let skipped = doc["skipped"].to_string();
    assert!(
        skipped.contains("already served by index orders_customer"),
        "{skipped}"
    );
}

#[test]
fn a_write_heavy_tables_candidate_ranks_below_a_read_mostly_one() {
    let server = server();
    let db = seeded(server, &["reads", "writes"]);
    // Rows written on one table only (then compacted, so both scan alike).
    server
        .psql(
            &db,
            "UPDATE writes SET payload = payload WHERE id <= 60000;\n\
             VACUUM FULL writes;\nANALYZE writes;\n\
             SELECT pg_stat_force_next_flush();\nSELECT 1;",
        )
        .expect("writes");
    reset_statements(server, &db);
    workload(server, &db, 60, |i| {
        let t = if i % 2 == 0 { "reads" } else { "writes" };
        format!("SELECT id FROM {t} WHERE customer_id = {i}")
    });
    let (code, doc, all) = advise(server, &db, &["--json"]);
    assert_eq!(code, Some(0), "{all}");
    let recs = recommendations(&doc);
    let tables: Vec<&str> = recs.iter().filter_map(|r| r["table"].as_str()).collect();
    assert_eq!(tables, ["reads", "writes"], "{doc:#}");
    let penalty = |i: usize| recs[i]["write_penalty"].as_f64().unwrap_or(-1.0);
    assert!(penalty(1) > 0.4 && penalty(0) < 0.01, "{doc:#}");
}

#[test]
fn unused_and_duplicate_indexes_are_listed_with_their_size() {
    let server = server();
    let db = seeded(server, &["items"]);
    server
        .psql(
            &db,
            "CREATE INDEX items_status ON items (status);\n\
             CREATE INDEX items_status_customer ON items (status, customer_id);",
        )
        .expect("indexes");
    let (code, doc, all) = advise(server, &db, &["--json"]);
    assert_eq!(code, Some(0), "{all}");
    let names = |key: &str| -> Vec<String> {
        doc[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["name"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(
        names("unused_indexes"),
        ["items_status", "items_status_customer"],
        "{doc:#}"
    );
    assert_eq!(names("duplicate_indexes"), ["items_status"], "{doc:#}");
    let dup = &doc["duplicate_indexes"][0];
    assert!(dup["size_bytes"].as_i64().unwrap_or(0) > 0, "{dup:#}");
    assert!(dup["reason"]
        .as_str()
        .unwrap_or("")
        .contains("items_status_customer"));
    assert_eq!(dup["sql"], "DROP INDEX CONCURRENTLY items_status;");
}

#[test]
fn apply_yes_creates_the_index_concurrently() {
    let server = server();
    let db = seeded(server, &["orders"]);
    workload(server, &db, 30, |i| {
        format!("SELECT id FROM orders WHERE customer_id = {i}")
    });
    let (code, doc, all) = advise(server, &db, &["--json", "--apply", "--yes"]);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(doc["applied"][0]["outcome"], "created", "{doc:#}");
    let def = server
        .psql(
            &db,
            "SELECT i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i \
             WHERE i.indrelid = 'orders'::regclass AND NOT i.indisprimary;",
        )
        .expect("indexes");
    assert_eq!(
        def.trim(),
        "t|CREATE INDEX orders_customer_id_idx ON public.orders USING btree (customer_id)"
    );
    // Now served: nothing left to recommend.
    let (_, doc, _) = advise(server, &db, &["--json"]);
    assert!(recommendations(&doc).is_empty(), "{doc:#}");
}

#[test]
fn equality_columns_are_ordered_most_selective_first_with_the_range_column_last() {
    let server = server();
    let db = server.create_database().expect("create database");
    server
        .psql(
            &db,
            "CREATE TABLE events (id bigint PRIMARY KEY, kind int NOT NULL, \
             bucket int NOT NULL, at int NOT NULL);\n\
             INSERT INTO events SELECT g, g % 7, (g / 7) % 200, g FROM generate_series(1, 100000) g;\n\
             ANALYZE events;",
        )
        .expect("seed");
    reset_statements(server, &db);
    workload(server, &db, 30, |i| {
        format!(
            "SELECT id FROM events WHERE kind = {} AND bucket = {} AND at > {}",
            i % 7,
            i % 200,
            i * 10
        )
    });
    let (code, doc, all) = advise(server, &db, &["--json"]);
    assert_eq!(code, Some(0), "{all}");
    let recs = recommendations(&doc);
    assert_eq!(recs.len(), 1, "{doc:#}");
    println!("{:#}", recs[0]);
    assert_eq!(
        recs[0]["columns"],
        serde_json::json!(["bucket", "kind", "at"]),
        "{doc:#}"
    );
}

#[test]
fn a_join_gets_both_sides_verified_together() {
    let server = server();
    let db = server.create_database().expect("create database");
    server
        .psql(
            &db,
            "CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL);\n\
             INSERT INTO customers SELECT g, 'c' || g || '@example.com' FROM generate_series(1, 100000) g;\n\
             CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL, total int NOT NULL);\n\
             INSERT INTO orders SELECT g, g % 100000 + 1, g % 1000 FROM generate_series(1, 200000) g;\n\
             ANALYZE customers;\nANALYZE orders;",
        )
        .expect("seed");
    reset_statements(server, &db);
    workload(server, &db, 20, |i| {
        format!(
            "SELECT o.id, o.total FROM customers c JOIN orders o ON o.customer_id = c.id \
             WHERE c.email = 'c{i}@example.com'"
        )
    });
    let (code, doc, all) = advise(server, &db, &["--json"]);
    assert_eq!(code, Some(0), "{all}");
    let recs = recommendations(&doc);
    println!(
        "{}",
        serde_json::to_string_pretty(&recs).unwrap_or_default()
    );
    let mut got: Vec<String> = recs
        .iter()
        .map(|r| format!("{} {}", r["table"].as_str().unwrap_or(""), r["columns"]))
        .collect();
    got.sort();
    assert_eq!(
        got,
        ["customers [\"email\"]", "orders [\"customer_id\"]"],
        "{doc:#}"
    );
    assert!(recs.iter().all(|r| r["verified"] == true), "{doc:#}");
    let skipped = doc["skipped"].to_string();
    assert!(
        skipped.contains("already served by index customers_pkey"),
        "{skipped}"
    );
}

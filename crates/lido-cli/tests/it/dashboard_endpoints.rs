//! The dashboard's endpoints through the real `lido serve` (no browser):
//! assets, `/dashboard/series`, `/statements` on SQLite and PostgreSQL.

use lido_testkit::PgServer;
use serde_json::Value;

use crate::common::{get, get_until, serve};

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn sqlite_series_statements_and_assets() {
    let s = serve(&[]);
    for (path, kind) in [
        ("/dashboard.css", "text/css"),
        ("/charts.js", "text/javascript"),
        ("/dashboard.js", "text/javascript"),
    ] {
        let r = get(s.addr, path);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.header("content-type").starts_with(kind), "{path}");
    }
    let r = get_until(s.addr, "/dashboard/series", |r| {
        json(&r.body)["pools"][0]["points"]
            .as_array()
            .is_some_and(|p| p.len() >= 2)
    });
    let doc = json(&r.body);
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(doc["format"], 1);
    let pool = &doc["pools"][0];
    assert_eq!(pool["name"], "primary");
    assert_eq!(pool["kind"], "sqlite");
    let last = pool["points"]
        .as_array()
        .and_then(|p| p.last())
        .expect("a point");
    for key in [
        "in_use",
        "idle",
        "max",
        "waiters",
        "wait_p99_ms",
        "leases",
        "breaker",
        "health",
    ] {
        assert!(!last[key].is_null(), "{key}: {last}");
    }
    let t = last["t"].as_u64().expect("t");
    let newer = json(&get(s.addr, &format!("/dashboard/series?since={t}")).body);
    assert!(newer["pools"][0]["points"]
        .as_array()
        .is_some_and(|p| p.len() <= 1));
    assert_eq!(get(s.addr, "/dashboard/series?since=x").status, 400);

    let st = json(&get(s.addr, "/statements?order=p99&limit=5").body);
    assert_eq!(st["statements"], serde_json::json!([]));
    assert!(st["note"].is_string(), "{st}");
    assert_eq!(get(s.addr, "/statements?order=nope").status, 400);
}

#[test]
fn postgres_statements_sort_and_never_show_the_password() {
    let server = PgServer::shared();
    let db = server.create_database().expect("create database");
    server.psql(&db, "SELECT 1").expect("the database answers");
    let s = serve(&[&server.url(&db)]);
    let r = get_until(s.addr, "/dashboard/series", |r| {
        json(&r.body)["pools"][0]["points"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    });
    let doc = json(&r.body);
    assert_eq!(doc["pools"][0]["kind"], "postgres");
    assert!(!r.body.contains(server.password()));
    for order in ["total_time", "calls", "p99", "errors"] {
        let r = get(s.addr, &format!("/statements?order={order}&limit=3"));
        assert_eq!(r.status, 200, "{order}: {}", r.body);
        let st = json(&r.body);
        assert_eq!(st["order"], order);
        assert!(st["statements"].is_array(), "{st}");
        assert!(!r.body.contains(server.password()));
    }
}

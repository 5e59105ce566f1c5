//! The slow-query table on real servers: rows with the right columns under
//! load, drops counted (never a blocked caller) while the database is down,
//! retention, the DDL asked for when creating is not allowed, metrics.

use crate::common;

use std::time::Duration;

use lido_postgres::{fingerprint, normalize_sql, PgPool, SlowTableConfig, SlowTableStats};
use lido_testkit::PgServer;
use tokio::time::Instant;

const SECRET: &str = "sk_live_hunter2";

fn quick() -> SlowTableConfig {
    SlowTableConfig {
        flush_interval: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(200),
        ..SlowTableConfig::default()
    }
}

/// Waits (up to 15 s) until `ok` holds for the pool's table counters.
async fn until(pool: &PgPool, what: &str, ok: impl Fn(&SlowTableStats) -> bool) -> SlowTableStats {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = pool.slow_table_stats().expect("the pool has a table");
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: {s:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn psql(server: &PgServer, db: &str, sql: &str) -> String {
    common::psql(server, db, sql)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_calls_arrive_as_rows_with_normalized_sql_and_no_secrets() {
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    let pool = common::builder(common::config(server, &db), 8)
        .application_name("slowtab")
        .slow_query_threshold(Some(Duration::from_millis(50)))
        .slow_query_table(quick())
        .build()
        .await
        .expect("pool");
    // Under load: 8 tasks, 25 calls each, one in ten slow.
    let mut tasks = Vec::new();
    for t in 0..8 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let conn = pool.get().await.expect("get");
                if i % 10 == 3 {
                    conn.query_one("SELECT $1::text AS key, pg_sleep(0.06)", &[&SECRET])
                        .await
                        .expect("slow");
                } else {
                    conn.query_one("SELECT $1::int + 1", &[&(t * 100 + i)])
                        .await
                        .expect("fast");
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    // A class with its own threshold (realtime: slow at 100 ms).
    let realtime = pool.class("realtime").expect("class");
    let conn = realtime.get().await.expect("get");
    conn.query("SELECT pg_sleep(0.12)", &[])
        .await
        .expect("sleep");
    drop(conn);
    // 24 sleeps and the class's call; on a busy machine a fast call may be
    // slow too: every call the log reported is a row.
    let slow = pool.pg_stats().slow_queries();
    assert!(slow > 8 * 3, "slow calls the log reported: {slow}");
    let s = until(&pool, "every slow call written", |s| s.written == slow).await;
    assert_eq!((s.queued, s.dropped, s.failed), (slow, 0, 0), "{s:#?}");
    assert!(s.connected && s.connects >= 1, "{s:#?}");

    let table = "lido.slow_queries";
    let count = psql(server, &db, &format!("SELECT count(*) FROM {table}"));
    assert_eq!(count, slow.to_string());
    let sleepy = "SELECT $1::text AS key, pg_sleep($2)";
    let fp = format!("{:016x}", fingerprint(&normalize_sql(sleepy)));
    let rows = psql(
        server,
        &db,
        &format!(
            "SELECT count(*), min(fingerprint), min(duration_ms) >= 50, bool_and(rows = 1), \
             bool_and(params IS NULL), bool_and(class IS NULL), min(application_name), min(database), \
             bool_and(sqlstate IS NULL) FROM {table} WHERE query = '{sleepy}'"
        ),
    );
    assert_eq!(rows, format!("24|{fp}|t|t|t|t|slowtab|{db}|t"));
    let class_row = psql(
        server,
        &db,
        &format!("SELECT query, class FROM {table} WHERE class IS NOT NULL"),
    );
    assert_eq!(class_row, "SELECT pg_sleep($1)|realtime");
    // The line that took the lease (`pool.get()` above), not lido's own.
    let sites = psql(
        server,
        &db,
        &format!("SELECT bool_and(call_site LIKE '%tests/it/slow_table.rs:%') FROM {table}"),
    );
    assert_eq!(sites, "t", "every row names this file's get() line");
    // The generic plan, fetched once per fingerprint.
    let planned = psql(
        server,
        &db,
        &format!(
            "SELECT bool_and(plans = 1), bool_and(typed = 1), count(*) >= 2 FROM (SELECT fingerprint, \
             count(plan) AS plans, count(*) FILTER (WHERE jsonb_typeof(findings) = 'array' \
             AND plan -> 0 -> 'Plan' ->> 'Node Type' IS NOT NULL) AS typed \
             FROM {table} GROUP BY fingerprint) AS f"
        ),
    );
    assert_eq!(planned, "t|t|t", "one plan per fingerprint");
    let whole = psql(
        server,
        &db,
        &format!("SELECT string_agg(t::text, ' ') FROM {table} t"),
    );
    assert!(
        !whole.contains("hunter2"),
        "a parameter value reached the table"
    );
    assert!(
        !whole.contains(server.password()),
        "the password reached the table"
    );
    pool.close(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_only_with_log_parameters_and_errors_carry_their_sqlstate() {
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    let pool = common::builder(common::config(server, &db), 2)
        .slow_query_threshold(Some(Duration::from_millis(50)))
        .log_parameters(true)
        .slow_query_table(SlowTableConfig {
            table: "audit.slow".into(),
            explain: None,
            ..quick()
        })
        .build()
        .await
        .expect("pool");
    let conn = pool.get().await.expect("get");
    conn.query_one("SELECT $1::text, pg_sleep(0.06)", &[&SECRET])
        .await
        .expect("slow");
    let err = conn
        .query("SELECT (pg_sleep(0.06) IS NULL)::int / 0", &[])
        .await
        .expect_err("division by zero");
    assert!(err.to_string().contains("22012"), "{err}");
    until(&pool, "two rows", |s| s.written == 2).await;
    let got = psql(
        server,
        &db,
        "SELECT params, rows, sqlstate, plan IS NULL FROM audit.slow ORDER BY id",
    );
    assert_eq!(got, format!("[\"{SECRET}\"]|1||t\n[]||22012|t"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_database_drops_what_the_queue_cannot_hold_and_blocks_no_one() {
    let server = PgServer::start().expect("dedicated server");
    let db = server.create_database().expect("database");
    let pool = common::builder(common::config(&server, &db), 2)
        .slow_query_threshold(Some(Duration::ZERO))
        .not_answering_after(None)
        .slow_query_table(SlowTableConfig {
            queue_capacity: 4,
            batch_size: 2,
            explain: None,
            ..quick()
        })
        .build()
        .await
        .expect("pool");
    let conn = pool.get().await.expect("get");
    conn.query("SELECT 1", &[]).await.expect("before the stop");
    until(&pool, "the first row written", |s| s.written == 1).await;

    tokio::task::block_in_place(|| server.stop()).expect("stop");
    let started = Instant::now();
    for _ in 0..40 {
        assert!(
            conn.query("SELECT 1", &[]).await.is_err(),
            "the server is down"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "callers were held up: {:?}",
        started.elapsed()
    );
    let s = until(&pool, "drops counted", |s| s.dropped > 0 && !s.connected).await;
    assert_eq!(s.queued + s.dropped, 41, "{s:#?}");
    assert!(s.queue_len <= 4, "{s:#?}");
    let text = metrics(&pool);
    assert!(
        text.lines()
            .any(|l| l.starts_with("lido_pg_slow_table_rows_total{")
                && l.contains("outcome=\"dropped\"")
                && !l.ends_with(" 0")),
        "{text}"
    );
    assert_eq!(
        value(&text, "lido_pg_slow_table_connection_up"),
        0.0,
        "{text}"
    );

    // Back up: what the queue held is written, nothing else is lost.
    tokio::task::block_in_place(|| server.start_again()).expect("start again");
    let s = until(&pool, "the queue written after the restart", |s| {
        s.connected && s.written == s.queued && s.queue_len == 0
    })
    .await;
    let count = psql(&server, &db, "SELECT count(*) FROM lido.slow_queries");
    assert_eq!(count, s.written.to_string(), "{s:#?}");
    let up = value(&metrics(&pool), "lido_pg_slow_table_connection_up");
    assert_eq!(up, 1.0);
}

/// The value of the first sample of `family` (no labels but `pool`).
fn value(text: &str, family: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(family) && !l.starts_with('#'))
        .unwrap_or_else(|| panic!("no {family}: {text}"));
    line.rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number")
}

fn metrics(pool: &PgPool) -> String {
    lido_http::Metrics::builder()
        .named(lido_http::NamedPool::new("orders", pool.clone()))
        .build()
        .expect("metrics")
        .encode()
        .expect("encodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_rows_and_close_flushes_the_queue() {
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    let pool = common::builder(common::config(server, &db), 2)
        .slow_query_threshold(Some(Duration::ZERO))
        .slow_query_table(SlowTableConfig {
            retention_days: 2,
            retention_interval: Duration::from_millis(100),
            flush_interval: Duration::from_secs(30),
            explain: None,
            ..quick()
        })
        .build()
        .await
        .expect("pool");
    // The writer connects and creates the table before any slow call.
    until(&pool, "connected", |s| s.connected).await;
    psql(
        server,
        &db,
        "INSERT INTO lido.slow_queries (logged_at, duration_ms, fingerprint, query) VALUES \
         (now() - interval '3 days', 1, '0000000000000000', 'old'), \
         (now() - interval '1 day', 1, '0000000000000000', 'recent')",
    );
    until(&pool, "the old row swept", |s| s.expired >= 1).await;
    let left = psql(
        server,
        &db,
        "SELECT string_agg(query, ',') FROM lido.slow_queries",
    );
    assert_eq!(left, "recent");

    // A batch waiting for its 30 s flush interval is written on close.
    let conn = pool.get().await.expect("get");
    conn.query("SELECT 2", &[]).await.expect("q");
    drop(conn);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(pool.slow_table_stats().expect("table").written, 0);
    let started = Instant::now();
    pool.close(Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let s = pool.slow_table_stats().expect("table");
    assert_eq!((s.written, s.dropped), (1, 0), "{s:#?}");
    let q = psql(
        server,
        &db,
        "SELECT query FROM lido.slow_queries WHERE query <> 'recent'",
    );
    assert_eq!(q, "SELECT $1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_privilege_to_create_it_says_which_ddl_to_run() {
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    let role = format!("nocreate_{}", db.replace('-', "_"));
    psql(
        server,
        &db,
        &format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'pw_{role}'; \
             REVOKE CREATE ON DATABASE \"{db}\" FROM PUBLIC; REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
        ),
    );
    let mut cfg = common::config(server, &db);
    cfg.user = Some(role.clone());
    cfg.password = Some(lido_postgres::Secret::new(format!("pw_{role}")));
    let pool = common::builder(cfg, 1)
        .slow_query_table(SlowTableConfig {
            table: "lido.slow_queries".into(),
            ..quick()
        })
        .build()
        .await
        .expect("pool");
    let s = until(&pool, "the setup error", |s| s.last_error.is_some()).await;
    let e = s.last_error.unwrap_or_default();
    assert!(e.contains("42501"), "{e}");
    assert!(
        e.contains("CREATE SCHEMA IF NOT EXISTS \"lido\";")
            && e.contains("CREATE TABLE IF NOT EXISTS \"lido\".\"slow_queries\""),
        "{e}"
    );
    assert!(!s.connected);
    // The pool itself works.
    let conn = pool.get().await.expect("get");
    conn.query("SELECT 1", &[]).await.expect("q");
    assert_eq!(
        SlowTableConfig::default()
            .ddl()
            .expect("ddl")
            .lines()
            .count(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_pgbouncer_rows_and_plans_use_unnamed_statements_only() {
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    let bouncer = lido_testkit::PgBouncer::start(server, "transaction", 3)
        .expect("pgbouncer (apt-get install -y pgbouncer)");
    let cfg = lido_postgres::PgConfig::parse(&bouncer.url(&db)).expect("url");
    let pool = common::builder(cfg, 8)
        .pgbouncer(true)
        .slow_query_threshold(Some(Duration::ZERO))
        .slow_query_table(quick())
        .build_lazy()
        .expect("pool");
    let mut tasks = Vec::new();
    for t in 0..8i32 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20i32 {
                let conn = pool.get().await.expect("get");
                let sql = match i % 4 {
                    0 => "SELECT $1::int4 + 1",
                    1 => "SELECT $1::int4 * 2",
                    2 => "SELECT $1::int4 - 3",
                    _ => "SELECT $1::int4 / 4",
                };
                conn.query_one(sql, &[&(t * 100 + i)]).await.expect("q");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let s = until(&pool, "every row written", |s| s.written == 160).await;
    assert_eq!((s.dropped, s.failed, s.plan_failures), (0, 0, 0), "{s:#?}");
    assert_eq!(s.plans, 4, "one plan per fingerprint: {s:#?}");
    let planned = psql(
        server,
        &db,
        "SELECT count(*) FROM lido.slow_queries WHERE plan IS NOT NULL",
    );
    assert_eq!(planned, "4");
}

//! Query classes against a real server: a class's deadline bounds the whole
//! call and cancels on the server, its lane is the class's priority, tags
//! and table rules classify calls that were not given a class, and each
//! class counts calls, timeouts and near timeouts.

use std::time::{Duration, Instant};

use lido_core::{Classes, Config, Priority, QueryClass};
use lido_postgres::{PgBuildError, PgError, PgPool};
use lido_testkit::PgServer;

use crate::common;

async fn pool_with(classes: Classes) -> (PgPool, String) {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let pool = PgPool::builder(common::config(server, &db))
        .classes(classes)
        .pool_config(Config {
            max_size: 4,
            leak_threshold: None,
            ..Config::default()
        })
        .build()
        .await
        .expect("pool");
    (pool, db)
}

fn tight() -> QueryClass {
    QueryClass::new("tight")
        .deadline(Some(Duration::from_millis(300)))
        .slow_threshold(Some(Duration::from_millis(100)))
}

fn stat(pool: &PgPool, class: &str) -> lido_postgres::ClassStat {
    let all = pool.class_stats();
    all.into_iter()
        .find(|s| s.class == class)
        .expect("class listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_deadline_bounds_the_call_and_cancels_it_on_the_server() {
    let (pool, _db) = pool_with(Classes::default().with(tight())).await;
    let started = Instant::now();
    let err = pool
        .class("tight")
        .expect("known")
        .query("SELECT pg_sleep(5)", &[])
        .await
        .expect_err("past the deadline");
    let took = started.elapsed();
    assert!(err.is_timeout(), "{err}");
    assert!(
        took < Duration::from_secs(3),
        "bounded by the class: {took:?}"
    );
    let s = stat(&pool, "tight");
    assert_eq!((s.calls, s.errors, s.timeouts), (1, 1, 1), "{s:?}");
    let st = pool
        .statement_stats()
        .get("SELECT pg_sleep(5)")
        .expect("tracked");
    assert_eq!(st.timeouts, 1, "per statement too: {st:?}");
    let metrics = lido_http::Metrics::builder()
        .pool("orders", pool.clone())
        .build()
        .expect("metrics");
    let text = metrics.encode().expect("encodes");
    for line in [
        "lido_pg_class_timeouts_total{pool=\"orders\",class=\"tight\"} 1",
        "lido_pg_class_calls_total{pool=\"orders\",class=\"tight\"} 1",
        "lido_pg_class_deadline_seconds{pool=\"orders\",class=\"tight\"} 0.3",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    // The server stopped the sleep: the pool's next call on any connection is quick.
    let conn = pool.get().await.expect("get");
    let active: i64 = conn
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(5)' AND state = 'active'",
            &[],
        )
        .await
        .expect("activity")
        .get(0);
    assert_eq!(active, 0, "cancelled on the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_and_table_rules_classify_calls_given_no_class() {
    let classes = Classes::default()
        .with(tight())
        .table_rule("slow_things", "tight");
    let (pool, _db) = pool_with(classes).await;
    let conn = pool.get().await.expect("get");
    conn.batch_execute("CREATE TABLE slow_things (x int); INSERT INTO slow_things VALUES (1)")
        .await
        .expect("setup");

    let err = conn
        .query("/* class=tight */ SELECT pg_sleep(5)", &[])
        .await
        .expect_err("the tag's deadline applies");
    assert!(err.is_timeout(), "{err}");
    let err = conn
        .query("SELECT pg_sleep(5) FROM slow_things", &[])
        .await
        .expect_err("the table rule's deadline applies");
    assert!(err.is_timeout(), "{err}");
    let n: i64 = conn
        .query_one("SELECT count(*) FROM public.Slow_Things", &[])
        .await
        .expect("quick")
        .get(0);
    assert_eq!(n, 1);
    let s = stat(&pool, "tight");
    // The setup batch touched slow_things too: 4 calls in the class.
    assert_eq!((s.calls, s.timeouts), (4, 2), "{s:?}");
    let st = pool
        .statement_stats()
        .get("SELECT pg_sleep(5) FROM slow_things")
        .expect("tracked");
    assert_eq!(
        st.class.as_deref(),
        Some("tight"),
        "labelled in the statement statistics"
    );
    // Untagged, unruled statements keep the pool's settings and no class.
    conn.query("SELECT pg_sleep(0.4)", &[])
        .await
        .expect("pool limit (30 s)");
    let total: u64 = pool.class_stats().iter().map(|s| s.calls).sum();
    assert_eq!(total, 4, "{:?}", pool.class_stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_timeouts_and_the_class_lane_are_counted() {
    // Near timeouts from a quarter of a 4 s deadline: a 1.3 s sleep is one,
    // with 2.7 s to spare before it would time out on a loaded machine.
    let mut near = QueryClass::new("near")
        .deadline(Some(Duration::from_secs(4)))
        .priority(Priority::Critical);
    near.near_timeout = 0.25;
    let (pool, _db) = pool_with(Classes::default().with(near)).await;
    let class = pool.class("near").expect("known");
    let conn = class.get().await.expect("lease");
    assert_eq!(
        pool.status().in_use_by_lane[Priority::Critical as usize],
        1,
        "the class's lane"
    );
    conn.execute("SELECT pg_sleep(1.3)", &[])
        .await
        .expect("within the deadline");
    let opts = conn.tx_options();
    assert_eq!(opts.max_attempts, 2, "the class's one retry");
    assert!(
        opts.timeout
            .is_some_and(|t| t <= Duration::from_millis(2700)),
        "{opts:?}"
    );
    let mut lease = conn.into_inner();
    let n: i32 = lease
        .transaction_with_retry(&opts.timeout(Duration::from_secs(5)), |tx| {
            Box::pin(async move { Ok(tx.query_one("SELECT 7", &[]).await?.get(0)) })
        })
        .await
        .expect("transaction");
    assert_eq!(n, 7);
    drop(lease);
    let s = stat(&pool, "near");
    assert_eq!((s.calls, s.errors, s.near_timeouts), (1, 0, 1), "{s:?}");
    let st = pool
        .statement_stats()
        .get("SELECT pg_sleep(1.3)")
        .expect("tracked");
    assert_eq!(
        (st.near_timeouts, st.timeouts),
        (1, 0),
        "per statement too: {st:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_classes_are_typed_errors_that_list_the_known_ones() {
    let (pool, _db) = pool_with(Classes::default()).await;
    let err = pool.class("fast").expect_err("no such class");
    assert!(matches!(err, PgError::UnknownClass(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("\"fast\"") && text.contains("realtime, standard, analytics, batch"),
        "{text}"
    );

    let server = PgServer::shared();
    let bad = PgPool::builder(common::config(server, "postgres"))
        .classes(Classes::default().table_rule("t", "fast"))
        .build_lazy()
        .expect_err("a rule naming no class");
    assert!(matches!(bad, PgBuildError::Classes(_)), "{bad:?}");
}

/// A class that learns: after enough calls a statement's deadline follows
/// its own latency (3 × p99, at least the floor), so a call that hangs is
/// cut at that deadline instead of the class's generous ceiling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_deadline_cuts_a_hanging_call_long_before_the_class_ceiling() {
    use lido_core::Learning;
    let learning = Learning {
        min_samples: 64,
        floor: Duration::from_millis(100),
        ..Learning::default()
    };
    let api = QueryClass::new("api")
        .deadline(Some(Duration::from_secs(20)))
        .learn(Some(learning));
    let (pool, _db) = pool_with(Classes::default().with(api)).await;
    let class = pool.class("api").expect("known");
    let sql = "SELECT pg_sleep($1::float8)";
    for _ in 0..96 {
        class.execute(sql, &[&0.005f64]).await.expect("quick call");
    }
    let st = pool.statement_stats().get(sql).expect("tracked");
    let learned = st.learned_deadline.expect("learned after 96 calls");
    println!(
        "learned deadline {learned:?} (p99 {:?}, class ceiling 20 s)",
        st.p99
    );
    assert!(
        learned >= Duration::from_millis(100),
        "never below the floor: {learned:?}"
    );
    assert!(learned < Duration::from_secs(2), "{learned:?}");

    let started = Instant::now();
    let err = class
        .execute(sql, &[&10.0f64])
        .await
        .expect_err("hangs past the learned deadline");
    let took = started.elapsed();
    assert!(err.is_timeout(), "{err}");
    assert!(
        took < Duration::from_secs(5),
        "cut near {learned:?}, not at 20 s: {took:?}"
    );
    assert_eq!(stat(&pool, "api").timeouts, 1);
    let metrics = lido_http::Metrics::builder()
        .named(
            lido_http::NamedPool::new("orders".to_owned(), pool.clone())
                .without_metrics()
                .with_metrics(lido_postgres::http::PgMetrics::new(&pool).top_statements(5)),
        )
        .build()
        .expect("metrics");
    let text = metrics.encode().expect("encodes");
    assert!(
        text.contains("lido_pg_statement_learned_deadline_seconds{pool=\"orders\""),
        "{text}"
    );
    assert!(
        text.lines().any(
            |l| l.starts_with("lido_pg_statement_deadline_events_total{")
                && l.contains("kind=\"timeout\"")
                && l.ends_with(" 1")
        ),
        "{text}"
    );
}

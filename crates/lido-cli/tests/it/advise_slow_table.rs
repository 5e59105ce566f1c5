//! lido's slow-query table feeding `lido advise`, end to end: a real pool
//! with `slow_query_table` writes its slow seq scans (with their generic
//! plan and findings), and `lido advise` shows them beside the index it
//! recommends for the same statement.

use std::time::Duration;

use lido_postgres::{PgConfig, PgPool, SlowTableConfig};

use crate::advise::{advise, seeded, server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_rows_written_by_a_pool_reach_the_advice_with_their_findings() {
    let server = server();
    let db = seeded(server, &["orders"]);
    let pool = PgPool::builder(PgConfig::parse(&server.url(&db)).expect("url"))
        .max_size(2)
        .slow_query_threshold(Some(Duration::from_micros(1)))
        .slow_query_table(SlowTableConfig {
            flush_interval: Duration::from_millis(50),
            ..SlowTableConfig::default()
        })
        .build()
        .await
        .expect("pool");
    let conn = pool.get().await.expect("get");
    for i in 0..20i64 {
        conn.query("SELECT id FROM orders WHERE customer_id = $1", &[&i])
            .await
            .expect("seq scan");
    }
    drop(conn);
    let mut planned = false;
    for _ in 0..300 {
        let s = pool.slow_table_stats().expect("slow table on");
        if s.written >= 20 && s.plans >= 1 {
            planned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(planned, "{:?}", pool.slow_table_stats());
    pool.close(Duration::from_secs(5)).await;

    let (code, doc, all) = tokio::task::spawn_blocking(move || advise(server, &db, &["--json"]))
        .await
        .expect("join");
    assert_eq!(code, Some(0), "{all}");
    let slow = doc["slow_queries"]
        .as_array()
        .and_then(|a| {
            a.iter().find(|q| {
                q["query"]
                    .as_str()
                    .is_some_and(|t| t.contains("customer_id"))
            })
        })
        .unwrap_or_else(|| panic!("no slow row for the scan: {doc:#}"));
    assert!(slow["count"].as_u64().is_some_and(|n| n >= 20), "{slow:#}");
    let kinds: Vec<&str> = slow["findings"]
        .as_array()
        .map(|f| f.iter().filter_map(|x| x["kind"].as_str()).collect())
        .unwrap_or_default();
    assert!(kinds.contains(&"seq_scan_selective_filter"), "{slow:#}");
    let rec = doc["recommendations"][0]["sql"]
        .as_str()
        .unwrap_or_default();
    assert!(rec.contains("orders (customer_id)"), "{doc:#}");
}

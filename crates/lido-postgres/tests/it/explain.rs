//! EXPLAIN analysis on a real server: the generic plan of a selective
//! filter on an unindexed column of a 100k-row table shows the seq-scan
//! finding; EXPLAIN ANALYZE never runs a statement that writes.

use crate::common;

use lido_postgres::explain::{
    explain_analyze, explain_generic, summarize, summarize_with, table_sizes, ExplainError,
    FindingKind, Thresholds,
};
use lido_postgres::tokio_postgres::types::Type;
use lido_testkit::PgServer;

const SEED: &str = "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS note, g % 100 AS bucket \
                    FROM generate_series(1, 100000) g; ANALYZE big; CREATE SEQUENCE seq;";

async fn seeded() -> (String, lido_postgres::PgPool) {
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    common::psql(server, &db, SEED);
    let pool = common::builder(common::config(server, &db), 1)
        .build()
        .await
        .expect("pool");
    (db, pool)
}

#[tokio::test]
async fn the_generic_plan_of_a_selective_unindexed_filter_shows_the_seq_scan() {
    let (_db, pool) = seeded().await;
    let conn = pool.get().await.expect("get");
    let sql = "SELECT id FROM big WHERE note = $1";
    let plan = explain_generic(&conn, sql, &[Type::TEXT])
        .await
        .expect("plan");
    assert!(plan[0]["Plan"]["Node Type"].is_string(), "{plan:#}");
    // A generic plan has no table sizes: pg_class gives them.
    assert!(summarize(&plan).is_empty(), "{plan:#}");
    let sizes = table_sizes(&conn, &plan).await.expect("sizes");
    assert!(sizes["big"].rows > 90_000.0, "{sizes:?}");
    let found = summarize_with(&plan, &sizes, &Thresholds::default());
    let f = found
        .iter()
        .find(|f| f.kind == FindingKind::SeqScanSelectiveFilter)
        .unwrap_or_else(|| panic!("no seq-scan finding: {found:#?} in {plan:#}"));
    assert_eq!(f.relation.as_deref(), Some("big"));
    assert!(f.message.contains("note = $1"), "{}", f.message);

    // Types inferred by the server work too; nothing is left behind.
    explain_generic(
        &conn,
        "SELECT * FROM big WHERE bucket = $1 AND id > $2",
        &[],
    )
    .await
    .expect("inferred types");
    let left = conn
        .query_one(
            "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'lido_explain_%'",
            &[],
        )
        .await
        .expect("q");
    assert_eq!(left.get::<_, i64>(0), 0, "deallocated");
    assert_eq!(conn.transaction_status(), lido_postgres::TxStatus::Idle);

    // With an index the finding goes away.
    conn.batch_execute("CREATE INDEX ON big (note)")
        .await
        .expect("index");
    let plan = explain_generic(&conn, sql, &[]).await.expect("plan");
    let sizes = table_sizes(&conn, &plan).await.expect("sizes");
    let found = summarize_with(&plan, &sizes, &Thresholds::default());
    assert!(found.is_empty(), "{found:#?}");
}

#[tokio::test]
async fn explain_analyze_reads_and_finds_the_scan_from_actual_rows() {
    let (_db, pool) = seeded().await;
    let conn = pool.get().await.expect("get");
    let plan = explain_analyze(&conn, "SELECT id FROM big WHERE note = $1", &[&"nope"])
        .await
        .expect("analyze");
    assert!(plan[0]["Execution Time"].is_number(), "{plan:#}");
    let found = summarize(&plan);
    assert!(
        found
            .iter()
            .any(|f| f.kind == FindingKind::SeqScanSelectiveFilter),
        "{found:#?} in {plan:#}"
    );
}

#[tokio::test]
async fn explain_analyze_never_runs_a_statement_that_writes() {
    let (_db, pool) = seeded().await;
    let conn = pool.get().await.expect("get");
    for sql in [
        "UPDATE big SET note = 'x' WHERE id = 1",
        "DELETE FROM big WHERE id = 1",
        "INSERT INTO big VALUES (0, 'x', 0)",
        "WITH d AS (DELETE FROM big WHERE id = 1 RETURNING id) SELECT * FROM d",
        "SELECT * INTO big2 FROM big",
    ] {
        let err = explain_analyze(&conn, sql, &[]).await.expect_err(sql);
        assert!(matches!(err, ExplainError::Writes { .. }), "{sql}: {err}");
    }
    // A read that hides a write is stopped by the read-only transaction.
    let err = explain_analyze(&conn, "SELECT nextval('seq')", &[])
        .await
        .expect_err("read-only");
    assert!(err.to_string().contains("25006"), "{err}");
    // The generic plan of a write is fine: nothing runs.
    explain_generic(&conn, "UPDATE big SET note = $1 WHERE id = $2", &[])
        .await
        .expect("generic plan of an UPDATE");
    let row = conn
        .query_one(
            "SELECT (SELECT note FROM big WHERE id = 1) = md5('1'), (SELECT count(*) FROM big), \
             (SELECT last_value FROM seq), to_regclass('big2') IS NULL",
            &[],
        )
        .await
        .expect("q");
    assert!(row.get::<_, bool>(0), "row 1 unchanged");
    assert_eq!(row.get::<_, i64>(1), 100_000);
    assert_eq!(row.get::<_, i64>(2), 1, "the sequence never advanced");
    assert!(row.get::<_, bool>(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_seq_scan_is_stored_with_its_plan_and_finding() {
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    common::psql(server, &db, SEED);
    let pool = common::builder(common::config(server, &db), 1)
        .slow_query_table(lido_postgres::SlowTableConfig {
            flush_interval: std::time::Duration::from_millis(20),
            ..Default::default()
        })
        .build()
        .await
        .expect("pool");
    let conn = pool.get().await.expect("get");
    conn.exec()
        .slow_query_threshold(Some(std::time::Duration::ZERO))
        .query("SELECT id FROM big WHERE note = $1", &[&"nope"])
        .await
        .expect("q");
    drop(conn);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    while pool.slow_table_stats().expect("table").written < 1 {
        assert!(tokio::time::Instant::now() < deadline, "not written");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let got = common::psql(
        server,
        &db,
        "SELECT query, f ->> 'kind', f ->> 'relation' FROM lido.slow_queries, \
         jsonb_array_elements(findings) AS f",
    );
    assert_eq!(
        got,
        "SELECT id FROM big WHERE note = $1|seq_scan_selective_filter|big"
    );
}

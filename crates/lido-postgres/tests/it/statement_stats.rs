//! Per-statement statistics on a real server: literals normalize to one
//! entry; calls, errors and rows add up; top-N ordering; the bound; off.

use crate::common;

use lido_postgres::{fingerprint, normalize_sql, Operation, PgPool, StatementOrder};
use lido_testkit::PgServer;

/// A pool of 2 built by `f` on a fresh database with `items` (5 rows).
pub(crate) async fn pool_with_items(
    f: impl FnOnce(lido_postgres::PgPoolBuilder) -> lido_postgres::PgPoolBuilder,
) -> PgPool {
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    let pool = f(common::builder(common::config(server, &db), 2))
        .build()
        .await
        .expect("pool");
    let conn = pool.get().await.expect("get");
    conn.batch_execute(
        "CREATE TABLE items (id int PRIMARY KEY, name text); \
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5) g",
    )
    .await
    .expect("setup");
    pool
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn literals_normalize_to_one_entry_and_counts_add_up() {
    let pool = pool_with_items(|b| b).await;
    let conn = pool.get().await.expect("get");
    for id in [1, 2, 99] {
        let sql = format!("SELECT name FROM items WHERE id = {id}");
        conn.query(sql.as_str(), &[]).await.expect("select");
    }
    conn.query("SELECT name   FROM items\n WHERE id = 3 -- by id", &[])
        .await
        .expect("select, spaced");
    for _ in 0..2 {
        let err = conn
            .query("SELECT nme FROM items WHERE id = 3", &[])
            .await
            .expect_err("no such column");
        assert_eq!(err.code().map(|c| c.code()), Some("42703"));
    }
    let changed = conn
        .execute("UPDATE items SET name = 'x' WHERE id < $1", &[&4i32])
        .await
        .expect("update");
    assert_eq!(changed, 3);

    let stats = pool.statement_stats();
    assert_eq!(stats.len(), 4, "{:#?}", stats.all());
    let st = stats
        .get("SELECT name FROM items WHERE id = 12345")
        .expect("one entry for every literal");
    assert_eq!(st.query.as_ref(), "SELECT name FROM items WHERE id = $1");
    assert_eq!((st.calls, st.errors, st.rows), (4, 0, 3));
    assert_eq!(
        st.fingerprint,
        fingerprint(&normalize_sql("SELECT name FROM items WHERE id = 1"))
    );
    assert!(st.total >= st.mean && st.max >= st.p50);
    assert!(st.p50 <= st.p95 && st.p95 <= st.p99);

    let bad = stats
        .get("SELECT nme FROM items WHERE id = 3")
        .expect("errors");
    assert_eq!((bad.calls, bad.errors, bad.rows), (2, 2, 0));
    let upd = stats
        .get("UPDATE items SET name = 'x' WHERE id < $1")
        .expect("update");
    assert_eq!((upd.calls, upd.rows), (1, 3));

    let pg = pool.pg_stats();
    assert_eq!(pg.errors_of_class("42"), 2);
    assert_eq!(pg.query_errors(), 2);
    assert_eq!(
        pg.duration(Operation::Execute).count(),
        2,
        "setup batch and update"
    );
    assert_eq!(pg.duration(Operation::Query).count(), 6);
    assert_eq!(pg.queries(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_orders_by_calls_rows_and_errors() {
    let pool = pool_with_items(|b| b).await;
    let conn = pool.get().await.expect("get");
    for i in 0..5 {
        conn.query_opt("SELECT name FROM items WHERE id = $1", &[&i])
            .await
            .expect("a");
    }
    for _ in 0..3 {
        conn.query("SELECT count(*) FROM items", &[])
            .await
            .expect("b");
    }
    conn.query("SELECT generate_series(1, 100)", &[])
        .await
        .expect("c");
    let _ = conn
        .execute("INSERT INTO items VALUES (1, 'dup')", &[])
        .await;

    let stats = pool.statement_stats();
    let by_calls: Vec<_> = stats.top(2, StatementOrder::Calls);
    let names: Vec<&str> = by_calls.iter().map(|s| s.query.as_ref()).collect();
    assert_eq!(
        names,
        [
            "SELECT name FROM items WHERE id = $1",
            "SELECT count(*) FROM items"
        ]
    );
    assert_eq!(by_calls[0].calls, 5);
    let by_rows = stats.top(1, StatementOrder::Rows);
    assert_eq!(by_rows[0].query.as_ref(), "SELECT generate_series($1, $2)");
    assert_eq!(by_rows[0].rows, 100);
    let by_errors = stats.top(1, StatementOrder::Errors);
    assert_eq!(
        by_errors[0].query.as_ref(),
        "INSERT INTO items VALUES ($1, $2)"
    );
    assert_eq!(pool.pg_stats().errors_of_class("23"), 1, "unique violation");
    assert_eq!(stats.top(100, StatementOrder::TotalTime).len(), stats.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_is_bounded_and_can_be_turned_off() {
    let pool = pool_with_items(|b| b.statement_stats_capacity(2)).await;
    let conn = pool.get().await.expect("get");
    for _ in 0..3 {
        conn.query("SELECT 1", &[]).await.expect("a");
    }
    conn.query("SELECT 2 AS b", &[]).await.expect("b");
    conn.query("SELECT 3 AS c", &[]).await.expect("c");
    let stats = pool.statement_stats();
    assert_eq!(stats.len(), 2);
    assert!(stats.evictions() >= 1);
    assert_eq!(stats.get("SELECT 1").expect("most called stays").calls, 3);

    let off = pool_with_items(|b| b.statistics(false)).await;
    let conn = off.get().await.expect("get");
    conn.query("SELECT name FROM items WHERE id = $1", &[&1i32])
        .await
        .expect("q");
    assert!(off.statement_stats().is_empty());
    assert!(!off.statement_stats().is_enabled());
    assert_eq!(off.pg_stats().queries(), 0);
    assert_eq!(off.pg_stats().duration(Operation::Query).count(), 0);
    assert_eq!(
        off.pg_stats().stmt_misses(),
        1,
        "the cache counters stay on"
    );
}

/// Per-table statistics: reads and writes per table the statements name,
/// the time spent, failures; also in the OpenMetrics output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_count_reads_writes_and_time() {
    let pool = pool_with_items(|b| b).await;
    let conn = pool.get().await.expect("get");
    conn.batch_execute("CREATE TABLE orders (id int, item int)")
        .await
        .expect("orders");
    for i in 1..=3 {
        conn.query("SELECT name FROM items WHERE id = $1", &[&i])
            .await
            .expect("read");
    }
    conn.execute("INSERT INTO orders VALUES (1, 1)", &[])
        .await
        .expect("write");
    conn.query(
        "SELECT o.id FROM public.orders o JOIN items i ON i.id = o.item",
        &[],
    )
    .await
    .expect("join");
    conn.execute("UPDATE items SET name = 1/0", &[])
        .await
        .expect_err("division by zero");
    let tables = pool.statement_stats().tables();
    let get = |name: &str| {
        tables
            .iter()
            .find(|t| t.table == name)
            .unwrap_or_else(|| panic!("{name}: {tables:?}"))
            .clone()
    };
    let items = get("items");
    // setup batch (write) + 3 reads + join + failed update (write).
    assert_eq!(
        (items.reads, items.writes, items.errors),
        (4, 2, 1),
        "{items:?}"
    );
    let orders = get("orders");
    // CREATE TABLE and the INSERT write, the join reads.
    assert_eq!((orders.reads, orders.writes), (1, 2), "{orders:?}");
    assert!(items.total > std::time::Duration::ZERO);

    let metrics = lido_http::Metrics::builder()
        .pool("shop", pool.clone())
        .build()
        .expect("metrics");
    let text = metrics.encode().expect("encodes");
    assert!(
        text.contains("lido_pg_table_calls_total{pool=\"shop\",table=\"items\",kind=\"read\"} 4"),
        "{text}"
    );
}

//! The facade's `http` feature turns on the backends' lido-http support: a
//! `PgPool` or `SqlitePool` registers through `lido::http` as it is, with
//! its own checks and metric families.

use std::time::Duration;

use lido::http::{HealthExt, HealthMonitor, Metrics, Status};
use lido::postgres::{PgConfig, PgPool};
use lido::sqlite::SqlitePool;
use lido_testkit::PgServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_and_sqlite_pools_register_through_the_facade() {
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    let pg = PgPool::builder(PgConfig::parse(&server.url(&db)).expect("url"))
        .max_size(2)
        .build()
        .await
        .expect("pg pool");
    let dir = tempfile::tempdir().expect("tempdir");
    let lite = SqlitePool::file(dir.path().join("app.db"))
        .build()
        .await
        .expect("sqlite pool");
    pg.get()
        .await
        .expect("get")
        .query_one("SELECT 1", &[])
        .await
        .expect("query");

    let monitor = HealthMonitor::builder()
        .pool("orders", pg.clone())
        .pool("cache", lite.clone())
        .interval(Duration::from_secs(3600))
        .spawn()
        .expect("monitor");
    // The background loop's first round starts at once: let it finish, so
    // the writer lane's queue gauge below is not read while that round's
    // writer ping waits in it (one binary runs the other tests alongside).
    let first = monitor.subscribe().wait_for(Option::is_some).await.is_ok();
    assert!(first, "the monitor's first round never reported");
    let report = monitor.refresh().await;
    assert_eq!(report.status, Status::Pass, "{}", report.summary());
    assert!(report.check("database:queryErrorRate", "orders").is_some());
    assert!(report.check("writer:responseTime", "cache").is_some());

    let text = Metrics::for_monitor(&monitor).encode().expect("encode");
    assert!(
        text.contains("lido_pg_queries_total{pool=\"orders\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("lido_sqlite_writes_queued{pool=\"cache\"} 0\n"),
        "{text}"
    );
    assert_eq!(pg.health().await.status, Status::Pass);
    assert_eq!(lite.health().await.status, Status::Pass);
}

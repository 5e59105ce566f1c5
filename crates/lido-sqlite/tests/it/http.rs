//! lido-http over a `SqlitePool` (feature `http`): the writer lane is part of
//! health, and its queue is exported.

use std::sync::mpsc;
use std::time::Duration;

use lido_http::{HealthConfig, HealthExt, Metrics, Status};
use lido_sqlite::http::{names, WRITER_CHECK};
use lido_sqlite::SqlitePool;

use crate::reads::hold;

const POOL: &str = lido_http::DEFAULT_POOL_NAME;

fn cfg() -> HealthConfig {
    HealthConfig {
        ping_timeout: Duration::from_millis(300),
        ..HealthConfig::default()
    }
}

fn queued_gauge(metrics: &Metrics) -> String {
    gauge(metrics, names::WRITES_QUEUED)
}

fn gauge(metrics: &Metrics, name: &str) -> String {
    let text = metrics.encode().expect("encode");
    let series = format!("{name}{{pool=\"db\"}} ");
    let line = text
        .lines()
        .find(|l| l.starts_with(&series))
        .unwrap_or_else(|| panic!("no {series}in {text}"));
    line[series.len()..].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_writer_fails_health_while_readers_pass_then_recovers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = SqlitePool::file(dir.path().join("app.db"))
        .build()
        .await
        .expect("pool");
    let metrics = Metrics::builder()
        .pool("db", db.clone())
        .build()
        .expect("metrics");
    let report = db.health_with(&cfg()).await;
    assert_eq!(report.status, Status::Pass, "{}", report.summary());
    let writer = report.check(WRITER_CHECK, POOL).expect("writer check");
    assert_eq!(writer.observed_unit.as_deref(), Some("ms"));
    assert!(
        writer.output.contains("0 writes queued ahead"),
        "{}",
        writer.output
    );
    assert_eq!(queued_gauge(&metrics), "0");

    // Wedge the writer: a write that blocks until released, one queued behind it.
    let (release, wedged) = mpsc::channel::<()>();
    let (started, running) = tokio::sync::oneshot::channel::<()>();
    let blocker = tokio::spawn({
        let db = db.clone();
        async move {
            db.write(move |_| {
                let _ = started.send(());
                Ok(wedged.recv().is_ok())
            })
            .await
        }
    });
    // Only once the blocker holds the lane does the next write queue behind it
    // (spawned tasks may start in either order).
    running.await.expect("the blocking write started");
    let behind = tokio::spawn({
        let db = db.clone();
        async move { db.write(|c| c.execute_batch("CREATE TABLE t (x)")).await }
    });
    let start = std::time::Instant::now();
    while db.writes_queued() < 1 {
        assert!(start.elapsed() < Duration::from_secs(30), "never queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(queued_gauge(&metrics), db.writes_queued().to_string());

    let report = db.health_with(&cfg()).await;
    assert_eq!(report.status, Status::Fail, "{}", report.summary());
    let writer = report.check(WRITER_CHECK, POOL).expect("writer check");
    assert_eq!(writer.status, Status::Fail);
    assert!(
        writer.output.contains("did not answer within 300ms"),
        "{}",
        writer.output
    );
    let readers = report
        .check(lido_http::health::keys::RESPONSE_TIME, POOL)
        .expect("reader ping");
    assert_eq!(
        readers.status,
        Status::Pass,
        "readers still answer: {readers:#?}"
    );
    let json = report.to_json();
    assert_eq!(json["checks"][WRITER_CHECK][0]["status"], "fail");

    release.send(()).expect("release the writer");
    assert!(blocker.await.expect("join").expect("write"));
    behind.await.expect("join").expect("queued write ran");
    let report = db.health_with(&cfg()).await;
    assert_eq!(report.status, Status::Pass, "{}", report.summary());
    assert_eq!(queued_gauge(&metrics), "0");
}

#[tokio::test]
async fn a_closed_pool_fails_the_writer_check() {
    let db = SqlitePool::memory("http_closed")
        .build()
        .await
        .expect("pool");
    db.close(Duration::from_secs(1)).await;
    let report = db.health_with(&cfg()).await;
    let writer = report.check(WRITER_CHECK, POOL).expect("writer check");
    assert_eq!(writer.status, Status::Fail, "{writer:#?}");
    assert!(
        writer.output.starts_with("writer lane failed"),
        "{}",
        writer.output
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_waiting_for_a_reader_thread_are_exported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = SqlitePool::file(dir.path().join("app.db"))
        .readers(1)
        .build()
        .await
        .expect("pool");
    let metrics = Metrics::builder()
        .pool("db", db.clone())
        .build()
        .expect("metrics");
    assert_eq!(gauge(&metrics, names::READS_QUEUED), "0");

    // Hold the one reader thread, then queue two reads behind it.
    let (release, holder) = hold(&db).await;
    let behind: Vec<_> = (0..2)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                db.read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
                    .await
            })
        })
        .collect();
    let start = std::time::Instant::now();
    while db.reads_queued() < 2 {
        assert!(start.elapsed() < Duration::from_secs(30), "never queued");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(gauge(&metrics, names::READS_QUEUED), "2");

    release.send(()).expect("release");
    holder.await.expect("join").expect("read");
    for read in behind {
        assert_eq!(read.await.expect("join").expect("read"), 1);
    }
    assert_eq!(gauge(&metrics, names::READS_QUEUED), "0");
}

//! The fault-table faults of `PgServer`: freeze/thaw, fast restart, crash
//! and restart, an outage of a given length, terminating every session.

use std::time::{Duration, Instant};

use lido_testkit::{PgServer, TestkitError};
use tokio_postgres::NoTls;

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

async fn one(client: &tokio_postgres::Client) -> Result<i32, tokio_postgres::Error> {
    Ok(client.query_one("SELECT 1", &[]).await?.get(0))
}

/// The state letter of `/proc/<pid>/stat` (`T`: stopped).
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_stops_every_server_process_and_thaw_resumes_them() {
    let server = PgServer::start().expect("server");
    let db = server.create_database().expect("db");
    let url = server.url(&db);
    let client = connect(&url).await.expect("connect");
    assert_eq!(one(&client).await.expect("query"), 1);

    let pids = server.server_pids().expect("pids");
    assert!(
        pids.len() >= 4,
        "postmaster, backends, auxiliaries: {pids:?}"
    );
    let frozen = server.freeze().expect("freeze");
    assert!(server.is_frozen());
    assert!(frozen >= pids.len(), "{frozen} < {pids:?}");
    for pid in server.server_pids().expect("pids") {
        assert_eq!(proc_state(pid), Some('T'), "pid {pid} stopped");
    }
    assert!(
        matches!(server.freeze(), Err(TestkitError::InvalidState(_))),
        "frozen twice"
    );
    assert!(
        matches!(server.stop(), Err(TestkitError::InvalidState(_))),
        "a frozen server cannot stop"
    );
    let query = tokio::time::timeout(Duration::from_millis(500), one(&client)).await;
    assert!(query.is_err(), "a query hangs on a frozen server");
    let fresh = tokio::time::timeout(Duration::from_millis(500), connect(&url)).await;
    assert!(fresh.is_err(), "a connect hangs on a frozen server");

    server.thaw().expect("thaw");
    assert!(!server.is_frozen());
    assert_eq!(one(&client).await.expect("answers again"), 1);
    let fresh = connect(&url).await.expect("connects again");
    assert_eq!(one(&fresh).await.expect("query"), 1);
    server.thaw().expect("thawing a thawed server is a no-op");
}

#[test]
fn dropping_a_frozen_server_still_tears_it_down() {
    let server = PgServer::start().expect("server");
    let dir = server.socket_dir().to_owned();
    let pids = server.server_pids().expect("pids");
    server.freeze().expect("freeze");
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(!dir.exists(), "directory removed");
    for pid in pids {
        assert!(
            proc_state(pid).is_none_or(|s| s == 'Z'),
            "pid {pid} is gone"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_restart_crash_restart_and_stop_for_keep_port_and_data() {
    let server = PgServer::start().expect("server");
    let db = server.create_database().expect("db");
    server
        .psql(
            &db,
            "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7);",
        )
        .expect("table");
    let url = server.url(&db);
    let port = server.port();
    let kept = |server: &PgServer| server.psql(&db, "SELECT v FROM kept;").expect("read");

    let client = connect(&url).await.expect("connect");
    tokio::task::block_in_place(|| server.fast_restart()).expect("fast restart");
    assert!(one(&client).await.is_err(), "the old session is gone");
    assert_eq!(kept(&server).trim(), "7");

    tokio::task::block_in_place(|| server.crash_restart()).expect("crash restart");
    let log = std::fs::read_to_string(server.log_path()).expect("log");
    assert!(
        log.contains("not properly shut down") || log.contains("automatic recovery"),
        "crash recovery ran"
    );
    assert_eq!(kept(&server).trim(), "7");

    let started = Instant::now();
    let down = Duration::from_millis(1200);
    let refused = tokio::spawn({
        let url = url.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            connect(&url).await.is_err()
        }
    });
    tokio::task::block_in_place(|| server.stop_for(down)).expect("stop for");
    assert!(started.elapsed() >= down);
    assert!(refused.await.expect("task"), "refused while down");
    assert_eq!(server.port(), port);
    let client = connect(&url).await.expect("connects after");
    assert_eq!(one(&client).await.expect("query"), 1);

    tokio::task::block_in_place(|| server.crash()).expect("crash");
    assert!(!server.is_running());
    assert!(connect(&url).await.is_err(), "refused after a crash");
    server.start_again().expect("start again");
    assert_eq!(kept(&server).trim(), "7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_all_sessions_ends_sessions_of_every_database() {
    let server = PgServer::start().expect("server");
    let (a, b) = (
        server.create_database().expect("a"),
        server.create_database().expect("b"),
    );
    let mut clients = Vec::new();
    for db in [&a, &a, &b] {
        clients.push(connect(&server.url(db)).await.expect("connect"));
    }
    let ended = server.terminate_all_sessions().expect("terminate");
    assert_eq!(ended, 3);
    for c in &clients {
        assert!(one(c).await.is_err(), "session ended");
    }
    let fresh = connect(&server.url(&b))
        .await
        .expect("new sessions still open");
    assert_eq!(one(&fresh).await.expect("query"), 1);
}

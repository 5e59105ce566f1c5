//! The blocking API from 64 OS threads on both backends: PostgreSQL (a real
//! lido-testkit server) and SQLite (a real file).

use std::sync::Arc;
use std::time::Duration;

use lido::blocking::BlockingPool;
use lido_postgres::{PgConfig, PgPool};
use lido_testkit::PgServer;

const THREADS: usize = 64;
const ROUNDS: usize = 20;

#[test]
fn postgres_from_64_threads() {
    let server = PgServer::shared();
    let db = server.create_database().expect("database");
    let cfg = PgConfig::parse(&server.url(&db)).expect("url");
    let pool = BlockingPool::from_async(|| async move {
        PgPool::builder(cfg)
            .max_size(8)
            .build()
            .await
            .map(|p| p.core().clone())
    })
    .expect("runtime")
    .expect("pool");
    {
        let conn = pool.get().expect("get");
        pool.block_on(conn.batch_execute("CREATE TABLE hits (thread int, round int)"))
            .expect("runtime")
            .expect("create");
    }
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for r in 0..ROUNDS {
                    let conn = pool.get().expect("get");
                    let sql = format!("INSERT INTO hits VALUES ({t}, {r})");
                    pool.block_on(conn.batch_execute(&sql))
                        .expect("runtime")
                        .expect("insert");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let conn = pool.get().expect("get");
    let row = pool
        .block_on(conn.query_one("SELECT count(*) FROM hits", &[]))
        .expect("runtime")
        .expect("count");
    let n: i64 = row.get(0);
    assert_eq!(n as usize, THREADS * ROUNDS);
    drop(conn);
    let s = pool.pool().status();
    assert_eq!(s.size, s.idle);
    assert!(s.size <= 8);
}

#[test]
fn sqlite_from_64_threads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pool = lido_sqlite::blocking::BlockingPool::open(
        lido_sqlite::SqlitePool::file(dir.path().join("t.db"))
            .readers(4)
            .acquire_timeout(Duration::from_secs(30))
            .on_startup(|c| c.execute_batch("CREATE TABLE hits (thread int, round int)")),
    )
    .expect("open");
    let pool = Arc::new(pool);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let pool = Arc::clone(&pool);
            std::thread::spawn(move || {
                for r in 0..ROUNDS {
                    pool.write(move |c| {
                        c.execute("INSERT INTO hits VALUES (?1, ?2)", (t as i64, r as i64))
                    })
                    .expect("write");
                    let n: i64 = pool
                        .read(|c| c.query_row("SELECT count(*) FROM hits", [], |row| row.get(0)))
                        .expect("read");
                    assert!(n >= 1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let n: i64 = pool
        .read(|c| c.query_row("SELECT count(*) FROM hits", [], |row| row.get(0)))
        .expect("read");
    assert_eq!(n as usize, THREADS * ROUNDS);
}

//! Demo load for the dashboard: with `--demo-load N` (or `LIDO_SERVE_DEMO_LOAD=N`), `lido serve`
//! runs N tasks of small, varied queries through its own pool, so the
//! charts have something to show (screenshots, the browser test, a first
//! look). Off by default; never meant for a production database (it only
//! reads, plus writes to its own `lido_demo` table on SQLite).

use std::time::Duration;

use lido_postgres::PgPool;
use lido_sqlite::SqlitePool;

/// A pool to load.
#[derive(Clone)]
pub enum LoadTarget {
    /// PostgreSQL: `pg_sleep`, `generate_series`, and one division by zero
    /// in a hundred (so the error panels have data).
    Postgres(PgPool),
    /// SQLite: recursive counts on readers, an insert now and then.
    Sqlite(SqlitePool),
    /// Nothing to load (no PostgreSQL node).
    None,
}

/// Runs `tasks` load tasks until the returned guard drops.
pub fn spawn(target: LoadTarget, tasks: usize) -> Vec<AbortOnDrop> {
    tracing::info!(tasks, "lido serve: demo load on");
    (0..tasks)
        .map(|_| {
            let target = target.clone();
            AbortOnDrop(tokio::spawn(async move {
                loop {
                    let ok = match &target {
                        LoadTarget::Postgres(pool) => pg_once(pool).await,
                        LoadTarget::Sqlite(pool) => sqlite_once(pool).await,
                        LoadTarget::None => return,
                    };
                    let pause = if ok { fastrand::u64(5..60) } else { 250 };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            }))
        })
        .collect()
}

/// Aborts its task on drop.
pub struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn pg_once(pool: &PgPool) -> bool {
    let Ok(conn) = pool.get().await else {
        return false;
    };
    let r = match fastrand::u32(0..100) {
        0 => conn.query("SELECT 1 / (random() * 0)::int", &[]).await,
        1..=40 => {
            let secs = f64::from(fastrand::u32(1..25)) / 1000.0;
            conn.query("SELECT pg_sleep($1::float8)", &[&secs]).await
        }
        _ => {
            let n = i64::from(fastrand::u32(100..50_000));
            conn.query("SELECT count(*) FROM generate_series(1, $1::int8)", &[&n])
                .await
        }
    };
    // A division by zero is the demo's own error: only an error without
    // a SQLSTATE (the database went away) slows the loop down.
    !matches!(r, Err(e) if e.code().is_none())
}

async fn sqlite_once(pool: &SqlitePool) -> bool {
    if fastrand::u32(0..20) == 0 {
        let v = i64::from(fastrand::u32(0..1_000_000));
        return pool
            .write(move |c| {
                c.execute_batch(
                    "CREATE TABLE IF NOT EXISTS lido_demo (id INTEGER PRIMARY KEY, v INTEGER)",
                )?;
                c.execute("INSERT INTO lido_demo (v) VALUES (?1)", [v])
            })
            .await
            .is_ok();
    }
    let n = i64::from(fastrand::u32(500..20_000));
    pool.read(move |c| {
        c.query_row(
            "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < ?1) SELECT count(*) FROM s",
            [n],
            |r| r.get::<_, i64>(0),
        )
    })
    .await
    .is_ok()
}

//! lido-sqlite's integration tests, in one binary (one link, one place to
//! look). The dev-dependency on lido-sqlite turns the `http` feature on for
//! [`http`].

mod blocking;
mod cache;
mod classes;
mod concurrency;
mod errors;
mod files;
mod health;
mod http;
mod lane;
mod leaks;
mod memory;
mod priority;
mod reads;
mod transactions;

/// The first column of every row `sql` returns, read through `db`.
pub(crate) async fn column<T>(db: &lido_sqlite::SqlitePool, sql: &'static str) -> Vec<T>
where
    T: rusqlite::types::FromSql + Send + 'static,
{
    db.read(move |c| {
        let mut s = c.prepare(sql)?;
        let rows = s.query_map([], |r| r.get(0))?;
        rows.collect()
    })
    .await
    .expect("rows")
}

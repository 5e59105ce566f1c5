//! A diagnostic row for the layer table: lido's pool core (`lido_core::Pool`,
//! with its defaults) around plain tokio-postgres clients, each with a
//! statement map as deadpool-postgres keeps one. Beside lido-postgres and
//! deadpool-postgres, it splits the gap between them into the core's part
//! and the part of lido-postgres's own connection (wire tracking, its
//! call futures, its statement cache and statistics).

use std::collections::HashMap;

use parking_lot::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};

use super::Query;

/// Opens plain tokio-postgres clients.
pub(crate) struct Plain(pub(crate) tokio_postgres::Config);

/// A client and its prepared statements, by SQL text.
pub(crate) struct PlainConn {
    client: Client,
    statements: Mutex<HashMap<String, Statement>>,
}

impl lido_core::Manager for Plain {
    type Connection = PlainConn;
    type Error = tokio_postgres::Error;

    async fn connect(&self) -> Result<PlainConn, tokio_postgres::Error> {
        let (client, conn) = self.0.connect(NoTls).await?;
        tokio::spawn(conn);
        Ok(PlainConn {
            client,
            statements: Mutex::default(),
        })
    }

    async fn check(&self, c: &mut PlainConn) -> Result<(), tokio_postgres::Error> {
        c.client.simple_query("").await.map(drop)
    }

    fn has_broken(&self, c: &mut PlainConn) -> bool {
        c.client.is_closed()
    }
}

pub(crate) type CorePool = lido_core::Pool<Plain>;

pub(crate) async fn core_pool(url: &str, size: usize) -> CorePool {
    let cfg: tokio_postgres::Config = url.parse().expect("tokio-postgres config");
    lido_core::Pool::builder(Plain(cfg))
        .max_size(size)
        .min_idle(size)
        .build()
        .await
        .expect("lido-core pool")
}

/// One call: `get()`, the statement from the map (prepared on a miss),
/// `query_one`.
pub(crate) async fn core_call(pool: &CorePool, q: Query, key: i32) -> bool {
    let one = [&key as &(dyn ToSql + Sync)];
    let p: &[&(dyn ToSql + Sync)] = if q == Query::Lookup { &one } else { &[] };
    let Ok(c) = pool.get().await else {
        return false;
    };
    let cached = c.statements.lock().get(q.sql()).cloned();
    let st = match cached {
        Some(st) => st,
        None => match c.client.prepare(q.sql()).await {
            Ok(st) => {
                c.statements.lock().insert(q.sql().to_owned(), st.clone());
                st
            }
            Err(_) => return false,
        },
    };
    c.client.query_one(&st, p).await.is_ok()
}

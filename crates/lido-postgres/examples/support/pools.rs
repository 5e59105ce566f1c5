//! The pools a fault table compares: lido, and with the `peers-bench`
//! feature deadpool-postgres and bb8-postgres, each with its default
//! settings but the pool size, each counting its connect attempts.

#[cfg(feature = "peers-bench")]
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(feature = "peers-bench")]
use std::sync::Arc;

use lido_postgres::{PgConfig, PgPool};

/// Which pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Lido,
    #[cfg(feature = "peers-bench")]
    Deadpool,
    #[cfg(feature = "peers-bench")]
    Bb8,
}

impl Kind {
    /// Every pool this build has (the peers need `--features peers-bench`).
    pub fn all() -> Vec<Kind> {
        vec![
            Kind::Lido,
            #[cfg(feature = "peers-bench")]
            Kind::Deadpool,
            #[cfg(feature = "peers-bench")]
            Kind::Bb8,
        ]
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Lido => "lido",
            #[cfg(feature = "peers-bench")]
            Kind::Deadpool => "deadpool-postgres",
            #[cfg(feature = "peers-bench")]
            Kind::Bb8 => "bb8-postgres",
        }
    }
}

/// A pool of one kind, and how to run the loop's query on it.
#[derive(Clone)]
pub enum Target {
    Lido(PgPool),
    #[cfg(feature = "peers-bench")]
    Deadpool(deadpool_postgres::Pool, Arc<AtomicU64>),
    #[cfg(feature = "peers-bench")]
    Bb8(bb8::Pool<peers::CountingBb8>, Arc<AtomicU64>),
}

/// The loop's statement.
pub const SQL: &str = "SELECT $1::int8 + 1";

impl Target {
    /// A pool of `kind` with `size` connections at most, default settings otherwise.
    pub async fn build(kind: Kind, url: &str, size: usize) -> Target {
        match kind {
            Kind::Lido => Target::Lido(
                PgPool::builder(PgConfig::parse(url).expect("url"))
                    .max_size(size)
                    .build()
                    .await
                    .expect("lido pool"),
            ),
            #[cfg(feature = "peers-bench")]
            Kind::Deadpool => {
                let n = Arc::new(AtomicU64::new(0));
                Target::Deadpool(peers::deadpool(url, size, Arc::clone(&n)), n)
            }
            #[cfg(feature = "peers-bench")]
            Kind::Bb8 => {
                let n = Arc::new(AtomicU64::new(0));
                Target::Bb8(peers::bb8(url, size, Arc::clone(&n)).await, n)
            }
        }
    }

    /// One call: take a connection, run [`SQL`]; the error as displayed.
    pub async fn call(&self, i: i64) -> Result<(), String> {
        let got = match self {
            Target::Lido(pool) => {
                let conn = pool.get().await.map_err(|e| e.to_string())?;
                let row = conn
                    .query_one(SQL, &[&i])
                    .await
                    .map_err(|e| e.to_string())?;
                row.get::<_, i64>(0)
            }
            #[cfg(feature = "peers-bench")]
            Target::Deadpool(pool, _) => {
                let conn = pool.get().await.map_err(|e| e.to_string())?;
                let st = conn.prepare_cached(SQL).await.map_err(|e| e.to_string())?;
                let row = conn
                    .query_one(&st, &[&i])
                    .await
                    .map_err(|e| e.to_string())?;
                row.get::<_, i64>(0)
            }
            #[cfg(feature = "peers-bench")]
            Target::Bb8(pool, _) => {
                let conn = pool.get().await.map_err(|e| e.to_string())?;
                let row = conn
                    .query_one(SQL, &[&i])
                    .await
                    .map_err(|e| e.to_string())?;
                row.get::<_, i64>(0)
            }
        };
        if got == i + 1 {
            Ok(())
        } else {
            Err(format!("wrong answer {got} for {i} + 1"))
        }
    }

    /// Connect attempts so far (lido: `PgStats::connect_attempts`; the
    /// peers: counted in their connect hooks).
    pub fn connect_attempts(&self) -> u64 {
        match self {
            Target::Lido(pool) => pool.pg_stats().connect_attempts(),
            #[cfg(feature = "peers-bench")]
            Target::Deadpool(_, n) | Target::Bb8(_, n) => n.load(Ordering::Relaxed),
        }
    }

    /// Closes the pool (its sessions end).
    pub async fn close(self) {
        match self {
            Target::Lido(pool) => drop(pool.close(std::time::Duration::from_secs(5)).await),
            #[cfg(feature = "peers-bench")]
            Target::Deadpool(pool, _) => pool.close(),
            #[cfg(feature = "peers-bench")]
            Target::Bb8(pool, _) => drop(pool),
        }
    }
}

#[cfg(feature = "peers-bench")]
mod peers {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use bb8_postgres::PostgresConnectionManager;
    use tokio_postgres::NoTls;

    type Connected = (tokio_postgres::Client, tokio::task::JoinHandle<()>);

    /// deadpool-postgres's default connect, counted.
    struct CountingConnect {
        inner: deadpool_postgres::ConfigConnectImpl<NoTls>,
        attempts: Arc<AtomicU64>,
    }

    impl deadpool_postgres::Connect for CountingConnect {
        fn connect(
            &self,
            pg_config: &tokio_postgres::Config,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<Output = Result<Connected, tokio_postgres::Error>>
                    + Send
                    + '_,
            >,
        > {
            self.attempts.fetch_add(1, Ordering::Relaxed);
            self.inner.connect(pg_config)
        }
    }

    pub fn deadpool(url: &str, size: usize, attempts: Arc<AtomicU64>) -> deadpool_postgres::Pool {
        let tp: tokio_postgres::Config = url.parse().expect("tokio-postgres config");
        let connect = CountingConnect {
            inner: deadpool_postgres::ConfigConnectImpl { tls: NoTls },
            attempts,
        };
        let mgr = deadpool_postgres::Manager::from_connect(
            tp,
            connect,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        deadpool_postgres::Pool::builder(mgr)
            .max_size(size)
            .build()
            .expect("deadpool")
    }

    /// bb8-postgres's manager, its connects counted.
    pub struct CountingBb8 {
        inner: PostgresConnectionManager<NoTls>,
        attempts: Arc<AtomicU64>,
    }

    impl bb8::ManageConnection for CountingBb8 {
        type Connection = tokio_postgres::Client;
        type Error = tokio_postgres::Error;

        async fn connect(&self) -> Result<Self::Connection, Self::Error> {
            self.attempts.fetch_add(1, Ordering::Relaxed);
            self.inner.connect().await
        }

        async fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
            self.inner.is_valid(conn).await
        }

        fn has_broken(&self, conn: &mut Self::Connection) -> bool {
            self.inner.has_broken(conn)
        }
    }

    pub async fn bb8(url: &str, size: usize, attempts: Arc<AtomicU64>) -> bb8::Pool<CountingBb8> {
        let tp: tokio_postgres::Config = url.parse().expect("tokio-postgres config");
        let mgr = CountingBb8 {
            inner: PostgresConnectionManager::new(tp, NoTls),
            attempts,
        };
        bb8::Pool::builder()
            .max_size(u32::try_from(size).unwrap_or(16))
            .build(mgr)
            .await
            .expect("bb8")
    }
}

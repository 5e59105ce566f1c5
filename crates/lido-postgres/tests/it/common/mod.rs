//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod capture;

use std::time::Duration;

use lido_postgres::{PgConfig, PgPool, PgPoolBuilder};
use lido_testkit::PgServer;

/// Settings for database `db` on `server` (plain text, SCRAM password).
pub fn config(server: &PgServer, db: &str) -> PgConfig {
    PgConfig::parse(&server.url(db)).expect("testkit URLs parse")
}

/// A builder with test-friendly pool settings: small, short acquire timeout.
pub fn builder(cfg: PgConfig, max_size: usize) -> PgPoolBuilder {
    PgPool::builder(cfg).pool_config(lido_core::Config {
        max_size,
        acquire_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        leak_threshold: None,
        ..Default::default()
    })
}

/// A pool of `max_size` on a fresh database of the shared server.
pub async fn shared_pool(max_size: usize) -> (String, PgPool) {
    let server = PgServer::shared();
    let db = server.create_database().expect("create database");
    let pool = builder(config(server, &db), max_size)
        .build()
        .await
        .expect("build pool");
    (db, pool)
}

/// Waits (up to `limit`) until `pool` has no connection leased or resetting.
pub async fn settled(pool: &PgPool, limit: Duration) -> lido_core::Status {
    let until = tokio::time::Instant::now() + limit;
    loop {
        let s = pool.status();
        if (s.in_use == 0 && s.connecting == 0) || tokio::time::Instant::now() > until {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `psql` output as a trimmed string.
pub fn psql(server: &PgServer, db: &str, sql: &str) -> String {
    server.psql(db, sql).expect("psql").trim().to_owned()
}

/// Waits (up to 10 s) until `server` has exactly as many sessions named
/// `app` as `pool` holds connections: nothing leaked on the server.
pub async fn no_leaked_sessions(server: &PgServer, pool: &PgPool, app: &str) {
    let sql = format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}';");
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let on_server: usize = psql(server, "postgres", &sql).parse().expect("count");
        let held = settled(pool, Duration::from_secs(5)).await.size;
        if on_server == held {
            return;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "{on_server} sessions named {app} on the server, {held} in the pool"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

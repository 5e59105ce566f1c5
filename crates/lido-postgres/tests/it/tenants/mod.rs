//! `PgTenants` against a real server: the global cap holds under load
//! (counted in `pg_stat_activity` too), a waiting tenant takes an idle
//! connection of another at once, a heavy tenant barely moves light
//! tenants' waits, idle tenants are evicted, and a tenant can be a
//! database, a role or a `search_path`.

mod cap;
mod fairness;
mod forms;
mod handoff;

use std::time::Duration;

use lido_postgres::tenants::{PgTenants, PgTenantsBuilder, TenantLimits};
use lido_postgres::{PgConfig, PgPool};
use lido_testkit::PgServer;

use crate::common;

/// A fresh database on the shared server, with connections named `app`.
pub fn template(app: &str) -> (&'static PgServer, String, PgConfig) {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let mut cfg = common::config(server, &db);
    cfg.application_name = Some(app.to_owned());
    (server, db, cfg)
}

/// Tenants named by strings on `cfg` (each its own `search_path`), each
/// pool with test-friendly timeouts, `limits` for all.
pub fn tenants(cfg: PgConfig, cap: usize, limits: TenantLimits) -> PgTenantsBuilder<String> {
    PgTenants::<String>::builder(cfg)
        .global_cap(cap)
        .limits(limits)
        .configure(|t, c| common::builder(c, 1).search_path(format!("{t}, public")))
}

/// Counts the server's sessions named `app`, from a pool of its own.
pub struct Sessions {
    pool: PgPool,
    app: String,
}

impl Sessions {
    pub async fn new(server: &PgServer, db: &str, app: &str) -> Self {
        let pool = common::builder(common::config(server, db), 1)
            .build()
            .await
            .expect("monitor pool");
        Sessions {
            pool,
            app: app.to_owned(),
        }
    }

    pub async fn count(&self) -> i64 {
        let conn = self.pool.get().await.expect("monitor");
        conn.query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&self.app],
        )
        .await
        .expect("count")
        .get(0)
    }

    /// Waits up to 5 s for the count to reach `n`; returns the last count.
    pub async fn settle_at(&self, n: i64) -> i64 {
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let c = self.count().await;
            if c == n || tokio::time::Instant::now() > until {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The `q` quantile of `waits` (sorted here).
pub fn quantile(waits: &mut [Duration], q: f64) -> Duration {
    waits.sort();
    let i = ((waits.len() as f64 * q) as usize).min(waits.len().saturating_sub(1));
    waits.get(i).copied().unwrap_or_default()
}

//! [`PgManager`]: lido-core's [`Manager`] for PostgreSQL.

use std::sync::Arc;

use futures::future::BoxFuture;
use lido_core::{ErrorClass, Manager};
use tracing::Instrument;

use crate::config::defaults::default_host;
use crate::config::pgconfig::{PgConfig, SslMode};
use crate::config::session::SessionSettings;
use crate::conn::pgconn::{ConnContext, GatePermit, PgConn};
use crate::error::PgError;
use crate::net::plan::ConnectPlan;
use crate::obs::spans;
use crate::obs::statements::StatementStats;
use crate::obs::stats::{bump, PgStats};

/// An async hook run on a connection: `|conn| Box::pin(async move { ... })`.
pub type Hook =
    Arc<dyn for<'a> Fn(&'a mut PgConn) -> BoxFuture<'a, Result<(), PgError>> + Send + Sync>;

/// A gate every connect of a manager goes through (the tenant set's global
/// cap): `admit` waits for a permit, which the connection keeps until it is
/// dropped (see [`GatePermit`]).
pub(crate) trait ConnectGate: Send + Sync {
    /// Waits for a permit to open one server connection.
    fn admit(&self) -> BoxFuture<'_, Result<Box<dyn GatePermit>, PgError>>;
}

/// Opens, checks and cleans PostgreSQL connections for a lido pool.
pub struct PgManager {
    plan: Arc<ConnectPlan>,
    sslmode: SslMode,
    host_label: String,
    pub(crate) ctx: Arc<ConnContext>,
    after_connect: Option<Hook>,
    on_startup: Option<Hook>,
    started: tokio::sync::OnceCell<()>,
    gate: Option<Arc<dyn ConnectGate>>,
}

impl std::fmt::Debug for PgManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgManager")
            .field("hosts", &self.host_label)
            .field("sslmode", &self.sslmode)
            .field("pgbouncer", &self.ctx.pgbouncer)
            .finish_non_exhaustive()
    }
}

/// What the builder hands the manager.
pub(crate) struct ManagerParts {
    pub(crate) config: PgConfig,
    pub(crate) session: SessionSettings,
    pub(crate) ctx: Arc<ConnContext>,
    pub(crate) after_connect: Option<Hook>,
    pub(crate) on_startup: Option<Hook>,
    pub(crate) gate: Option<Arc<dyn ConnectGate>>,
}

impl PgManager {
    pub(crate) fn new(parts: ManagerParts) -> Self {
        let ManagerParts {
            config,
            session,
            ctx,
            after_connect,
            on_startup,
            gate,
        } = parts;
        // PgBouncer rejects startup options; settings go in per transaction.
        let options = if ctx.pgbouncer {
            config.options.clone()
        } else {
            session.startup_options(config.options.as_deref())
        };
        Self {
            plan: Arc::new(ConnectPlan::new(&config, options)),
            sslmode: config.sslmode,
            host_label: config.hosts.first().cloned().unwrap_or_else(default_host),
            ctx,
            after_connect,
            on_startup,
            started: tokio::sync::OnceCell::new(),
            gate,
        }
    }

    /// The servers this manager connects to and how.
    pub fn plan(&self) -> &ConnectPlan {
        &self.plan
    }

    /// The plan, shared (the slow-query table's writer connects with it).
    pub(crate) fn plan_arc(&self) -> Arc<ConnectPlan> {
        Arc::clone(&self.plan)
    }

    /// PostgreSQL-level counters for this pool.
    pub fn stats(&self) -> &PgStats {
        &self.ctx.stats
    }

    /// Per-statement statistics of this pool.
    pub fn statement_stats(&self) -> &StatementStats {
        &self.ctx.obs.statements
    }

    /// Whether this manager runs in PgBouncer transaction mode.
    pub fn pgbouncer(&self) -> bool {
        self.ctx.pgbouncer
    }

    /// Opens a connection and runs the hooks on it.
    async fn connect_inner(&self) -> Result<PgConn, PgError> {
        // Under a gate (the tenant set's global cap) a permit comes first;
        // the connection keeps it until it is dropped.
        let permit = match &self.gate {
            Some(gate) => Some(gate.admit().await?),
            None => None,
        };
        bump(&self.ctx.stats.connect_attempts);
        // While the server is held not answering, `get()` fails before it
        // gets here; a connect already under way waits in the server's
        // listen queue (bounded by `connect_timeout`) and completes the
        // moment the server resumes, which serves the first callers after it.
        let opened = self.plan.open(&self.ctx.tls, &mut ()).await?;
        let mut conn = PgConn::new(opened, Arc::clone(&self.ctx));
        conn.permit = permit;
        crate::watchdog::start(&self.ctx, &self.plan);
        if let Some(hook) = &self.on_startup {
            self.started
                .get_or_try_init(|| async { hook(&mut conn).await })
                .await?;
        }
        if let Some(hook) = &self.after_connect {
            hook(&mut conn).await?;
        }
        Ok(conn)
    }
}

impl Manager for PgManager {
    type Connection = PgConn;
    type Error = PgError;

    async fn connect(&self) -> Result<PgConn, PgError> {
        let span = spans::connect(&self.ctx.obs.db);
        let guard = spans::Unfinished::new(&span);
        let result = self.connect_inner().instrument(span.clone()).await;
        guard.finish(
            result
                .as_ref()
                .map(|c| (c.endpoint.tls_name.as_str(), c.endpoint.port)),
        );
        result
    }

    async fn check(&self, conn: &mut PgConn) -> Result<(), PgError> {
        conn.client.simple_query("SELECT 1").await?;
        Ok(())
    }

    fn preempt_handle(&self, conn: &PgConn) -> Option<lido_core::PreemptHandle> {
        Some(conn.preempt_handle())
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.is_broken() || conn.permit.as_ref().is_some_and(|p| p.shed())
    }

    fn needs_reset(&self, conn: &mut PgConn) -> bool {
        conn.needs_reset()
    }

    async fn reset(&self, conn: &mut PgConn) -> Result<(), PgError> {
        conn.reset().await
    }

    fn classify(&self, err: &PgError) -> ErrorClass {
        err.class()
    }
}

//! `lido serve`: a sidecar that keeps a pool to the database and serves
//! lido-http's health and metrics endpoints plus a live dashboard.

mod cluster;
mod dashboard;
mod load;
mod sample;
mod scrub;
mod series;

use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use lido_http::{Endpoints, HealthConfig, HealthMonitor, Metrics, NamedPool, ServiceInfo};
use lido_postgres::cluster::PgCluster;
use lido_postgres::{PgConfig, PgPool};
use lido_sqlite::SqlitePool;
use tokio::net::TcpListener;

use crate::args::ServeArgs;
use crate::dburl::{self, DbUrl};

use self::load::LoadTarget;
use self::sample::Target;
use self::scrub::Scrubber;
use self::series::Series;

/// How long in-flight requests get after Ctrl-C / SIGTERM.
const DRAIN: Duration = Duration::from_secs(10);

/// The pool being served.
enum Db {
    Postgres {
        pool: PgPool,
        /// For scrubbing what the dashboard serves.
        password: Option<String>,
    },
    /// Several hosts: a primary and its replicas.
    Cluster {
        cluster: PgCluster,
        /// For scrubbing node reasons on `/cluster`.
        password: Option<String>,
    },
    Sqlite {
        pool: SqlitePool,
        /// Keeps the embedded database's directory alive.
        _dir: Option<tempfile::TempDir>,
    },
}

impl Db {
    /// The pool with its backend's checks and metric families: PostgreSQL's
    /// `lido_pg_*` and `database:queryErrorRate`, SQLite's writer-lane ping
    /// and `lido_sqlite_writes_queued`.
    fn named(&self, name: &str) -> NamedPool {
        match self {
            Self::Postgres { pool: p, .. } => NamedPool::new(name.to_owned(), p.clone()),
            Self::Cluster { cluster, .. } => NamedPool::new(name.to_owned(), cluster.clone()),
            Self::Sqlite { pool, .. } => NamedPool::new(name.to_owned(), pool.clone()),
        }
    }

    /// Pools exported on `/metrics` besides the monitor's: a cluster's
    /// node pools (`<name>@<host:port>`).
    fn metrics_only(&self, name: &str) -> Vec<NamedPool> {
        match self {
            Self::Cluster { cluster, .. } => cluster::node_pools(cluster, name),
            _ => Vec::new(),
        }
    }

    /// Routes besides the health, metrics and dashboard ones: `/cluster`.
    fn routes(&self, name: &str) -> Router {
        match self {
            Self::Cluster { cluster, password } => cluster::router(name, cluster, password.clone()),
            _ => Router::new(),
        }
    }

    /// The pools the dashboard samples: the served pool, and a cluster's
    /// node pools (`<name>@<host:port>`).
    fn targets(&self, name: &str) -> Vec<Target> {
        match self {
            Self::Postgres { pool: p, .. } => vec![Target {
                pool: self.named(name),
                pg: Some(p.clone()),
                kind: "postgres",
            }],
            Self::Cluster { cluster, .. } => {
                let mut all = vec![Target {
                    pool: self.named(name),
                    pg: None,
                    kind: "cluster",
                }];
                all.extend(cluster.pools().map(|(address, pool)| Target {
                    pool: NamedPool::new(format!("{name}@{address}"), pool.clone()),
                    pg: Some(pool.clone()),
                    kind: "node",
                }));
                all
            }
            Self::Sqlite { .. } => vec![Target {
                pool: self.named(name),
                pg: None,
                kind: "sqlite",
            }],
        }
    }

    /// The PostgreSQL pool whose statements `/statements` lists (a
    /// cluster's write target, else its first node).
    fn pg_pool(&self) -> Option<PgPool> {
        match self {
            Self::Postgres { pool: p, .. } => Some(p.clone()),
            Self::Cluster { cluster, .. } => {
                let primary = cluster.primary_address();
                let mut pools = cluster.pools();
                let first = pools.next();
                std::iter::once(first)
                    .flatten()
                    .chain(pools)
                    .find(|(a, _)| Some(*a) == primary)
                    .or(first)
                    .map(|(_, p)| p.clone())
            }
            Self::Sqlite { .. } => None,
        }
    }

    /// Where `--demo-load` sends its queries.
    fn load_target(&self) -> LoadTarget {
        match (self, self.pg_pool()) {
            (Self::Sqlite { pool, .. }, _) => LoadTarget::Sqlite(pool.clone()),
            (_, Some(p)) => LoadTarget::Postgres(p),
            (_, None) => LoadTarget::None,
        }
    }

    /// What never appears on the dashboard or its endpoints.
    fn scrubber(&self) -> Scrubber {
        match self {
            Self::Postgres { password, .. } | Self::Cluster { password, .. } => {
                Scrubber::new(password.as_deref())
            }
            Self::Sqlite { .. } => Scrubber::default(),
        }
    }

    async fn close(&self) {
        match self {
            Self::Postgres { pool: p, .. } => {
                let _report = p.close(Duration::from_secs(5)).await;
            }
            Self::Cluster { cluster, .. } => cluster.close(Duration::from_secs(5)).await,
            Self::Sqlite { pool, .. } => {
                let _report = pool.close(Duration::from_secs(5)).await;
            }
        }
    }
}

/// Runs `lido serve` until Ctrl-C or SIGTERM.
pub async fn run(args: ServeArgs) -> Result<ExitCode, String> {
    validate(&args)?;
    let demo_load = (args.demo_load > 0).then_some(usize::from(args.demo_load));
    let (db, describe) = open(&args).await?;
    let monitor = HealthMonitor::builder()
        .named(db.named(&args.name))
        .config(HealthConfig {
            service: ServiceInfo {
                description: Some(format!("lido serve: {describe}")),
                version: Some(env!("CARGO_PKG_VERSION").to_owned()),
                ..ServiceInfo::default()
            },
            ..HealthConfig::default()
        })
        .interval(args.health_interval)
        .spawn()
        .map_err(|e| format!("starting the health monitor: {e}"))?;
    let mut metrics = Metrics::builder().monitor(&monitor);
    for pool in db.metrics_only(&args.name) {
        metrics = metrics.named(pool);
    }
    let metrics = metrics
        .build()
        .map_err(|e| format!("setting up /metrics: {e}"))?;
    let series = Series::new(db.targets(&args.name), monitor.clone(), db.scrubber());
    let _sampler = series.spawn();
    let _load = demo_load.map(|n| load::spawn(db.load_target(), n));
    let app: Router = dashboard::router(series, db.pg_pool(), db.scrubber())
        .merge(db.routes(&args.name))
        .merge(Endpoints::new(monitor).metrics(metrics).router());
    let shutdown = Shutdown::install();
    let listener = TcpListener::bind(&args.listen).await.map_err(|e| {
        format!(
            "cannot listen on {}: {e} (set --listen or LIDO_LISTEN to a free HOST:PORT; port 0 picks one)",
            args.listen
        )
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("reading the listening address: {e}"))?;
    println!("lido serve: pool \"{}\" on {describe}", args.name);
    let extra = if matches!(db, Db::Cluster { .. }) {
        ", /cluster"
    } else {
        ""
    };
    println!(
        "listening on http://{addr}/ (dashboard), /health, /health/live, /health/ready, /metrics, /dashboard/series, /statements{extra}"
    );
    tracing::info!(%addr, "lido serve: listening");
    let served = serve(listener, app, shutdown).await;
    println!("lido serve: shutting down");
    db.close().await;
    served.map(|()| ExitCode::SUCCESS)
}

fn validate(args: &ServeArgs) -> Result<(), String> {
    if args.min_idle > args.max_size {
        return Err(format!(
            "--min-idle {} is above --max-size {}: lower --min-idle or raise --max-size",
            args.min_idle, args.max_size
        ));
    }
    if args.health_interval.is_zero() || args.acquire_timeout.is_zero() {
        return Err("--health-interval and --acquire-timeout must be above zero".into());
    }
    Ok(())
}

async fn open(args: &ServeArgs) -> Result<(Db, String), String> {
    match dburl::parse(args.url())? {
        DbUrl::Postgres(cfg) if cluster::several_hosts(&cfg) => open_cluster(*cfg, args).await,
        DbUrl::Postgres(cfg) => open_postgres(*cfg, args),
        DbUrl::Sqlite(path) => {
            let pool = open_sqlite(&path, args).await?;
            let describe = format!("SQLite file {}", path.display());
            Ok((Db::Sqlite { pool, _dir: None }, describe))
        }
        DbUrl::None => {
            let dir = tempfile::Builder::new()
                .prefix("lido-serve-")
                .tempdir()
                .map_err(|e| {
                    format!(
                        "cannot create a temporary directory for the embedded SQLite database: {e}"
                    )
                })?;
            let path = dir.path().join("lido.db");
            let pool = open_sqlite(&path, args).await?;
            let describe = format!("embedded SQLite {}", path.display());
            let db = Db::Sqlite {
                pool,
                _dir: Some(dir),
            };
            Ok((db, describe))
        }
    }
}

/// Lazy: the sidecar starts (and reports the failure) while the database is down.
fn open_postgres(cfg: PgConfig, args: &ServeArgs) -> Result<(Db, String), String> {
    let describe = format!("PostgreSQL {cfg}");
    let password = cfg.password.as_ref().map(|p| p.expose().to_owned());
    let pool = PgPool::builder(cfg)
        .application_name("lido serve")
        .max_size(usize::from(args.max_size))
        .min_idle(usize::from(args.min_idle))
        .acquire_timeout(args.acquire_timeout)
        .build_lazy()
        .map_err(|e| format!("cannot set up the PostgreSQL pool: {e}"))?;
    Ok((Db::Postgres { pool, password }, describe))
}

/// Several hosts: one pool per node, the monitor finds the primary.
async fn open_cluster(cfg: PgConfig, args: &ServeArgs) -> Result<(Db, String), String> {
    let password = cfg.password.as_ref().map(|p| p.expose().to_owned());
    let cluster = cluster::open(cfg.clone(), args).await?;
    let nodes = cluster.pools().count();
    let describe = format!("PostgreSQL cluster of {nodes} nodes {cfg}");
    Ok((Db::Cluster { cluster, password }, describe))
}

async fn open_sqlite(path: &std::path::Path, args: &ServeArgs) -> Result<SqlitePool, String> {
    SqlitePool::file(path)
        .readers(usize::from(args.max_size))
        .acquire_timeout(args.acquire_timeout)
        .build()
        .await
        .map_err(|e| format!("opening SQLite database {}: {e}", path.display()))
}

/// Serves until a shutdown signal, then drains for up to [`DRAIN`].
async fn serve(listener: TcpListener, app: Router, shutdown: Shutdown) -> Result<(), String> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    tokio::select! {
        () = shutdown.wait() => {}
        r = &mut server => return flatten(r),
    }
    let _ = stop.send(());
    match tokio::time::timeout(DRAIN, &mut server).await {
        Ok(r) => flatten(r),
        Err(_) => {
            server.abort();
            tracing::warn!("lido serve: requests still open after {DRAIN:?}; closing anyway");
            Ok(())
        }
    }
}

fn flatten(r: Result<std::io::Result<()>, tokio::task::JoinError>) -> Result<(), String> {
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("the HTTP server failed: {e}")),
        Err(e) => Err(format!("the HTTP server task failed: {e}")),
    }
}

/// Ctrl-C or SIGTERM. The handlers are installed when this is built (before
/// the listener announces itself), not when first awaited: a signal that
/// arrives before the select is polled must still be a graceful shutdown.
struct Shutdown {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Shutdown {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        let _ = s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = recv(&mut self.term) => {}
                () = recv(&mut self.int) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

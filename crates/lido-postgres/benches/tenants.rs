//! `PgTenants`: fairness at the global cap and the memory of idle tenants.
//!
//! `cargo bench -p lido-postgres --bench tenants`
//! Environment: `LIDO_BENCH_SECS` (seconds per measured phase, default 3).
//!
//! Rows:
//! - fairness: three light tenants (two loops each, one connection each)
//!   run `SELECT pg_sleep(0.002)` alone, then beside a heavy tenant with
//!   ten times one light tenant's loops (and a maximum of the whole cap),
//!   under a global cap of 6, no tenant with a guaranteed minimum; the
//!   light tenants' acquire waits (from `get` to the lease), p50 and p99,
//!   and the p99 ratio.
//! - equal tenants: eight tenants with four loops each under a cap of 6
//!   (fewer connections than tenants): calls per tenant and Jain's fairness
//!   index (1.0: perfectly even).
//! - memory: 10,000 idle tenant entries without a pool (what a tenant
//!   costs once its connections are gone), and 1,000 with an empty pool
//!   built; resident memory grown per tenant (from /proc/self/statm).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lido_postgres::tenants::{PgTenants, TenantLimits};
use lido_postgres::{PgConfig, PgPool};
use lido_testkit::PgServer;

const CAP: usize = 6;
const LIGHT: [&str; 3] = ["l1", "l2", "l3"];
const LIGHT_LOOPS: usize = 2;
const SQL: &str = "SELECT pg_sleep(0.002)";

fn secs() -> u64 {
    std::env::var("LIDO_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

fn quantile(waits: &mut [Duration], q: f64) -> Duration {
    waits.sort();
    let i = ((waits.len() as f64 * q) as usize).min(waits.len().saturating_sub(1));
    waits.get(i).copied().unwrap_or_default()
}

fn builder(cfg: PgConfig) -> lido_postgres::PgPoolBuilder {
    PgPool::builder(cfg).pool_config(lido_core::Config {
        acquire_timeout: Duration::from_secs(30),
        leak_threshold: None,
        ..lido_core::Config::default()
    })
}

/// `loops` loops on `tenant` until `stop`; each returns its waits.
fn load(
    set: &PgTenants<String>,
    tenant: &str,
    loops: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Duration>>> {
    (0..loops)
        .map(|_| {
            let (set, stop, tenant) = (set.clone(), Arc::clone(stop), tenant.to_owned());
            tokio::spawn(async move {
                let mut waits = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let conn = set.get(&tenant).await.expect("get");
                    waits.push(t.elapsed());
                    conn.execute(SQL, &[]).await.expect("query");
                }
                waits
            })
        })
        .collect()
}

async fn light_waits(set: &PgTenants<String>, heavy: usize, d: Duration) -> Vec<Duration> {
    let stop = Arc::new(AtomicBool::new(false));
    let heavy = load(set, "h", heavy, &stop);
    let light: Vec<_> = LIGHT
        .iter()
        .flat_map(|t| load(set, t, LIGHT_LOOPS, &stop))
        .collect();
    tokio::time::sleep(d).await;
    stop.store(true, Ordering::Relaxed);
    for t in heavy {
        t.await.expect("heavy");
    }
    let mut waits = Vec::new();
    for t in light {
        waits.extend(t.await.expect("light"));
    }
    waits
}

async fn fairness(cfg: &PgConfig, d: Duration) {
    let set = PgTenants::<String>::builder(cfg.clone())
        .global_cap(CAP)
        .limits_for(|t| TenantLimits {
            min: 0, // no guarantee: shares alone protect the light tenants
            max: if t == "h" { CAP } else { 1 },
            weight: 1,
        })
        .configure(|_, c| builder(c))
        .build()
        .expect("tenants");
    light_waits(&set, 0, Duration::from_millis(500)).await;
    let mut alone = light_waits(&set, 0, d).await;
    let heavy = 10 * LIGHT_LOOPS;
    let mut with = light_waits(&set, heavy, d).await;
    let (a50, a99) = (quantile(&mut alone, 0.5), quantile(&mut alone, 0.99));
    let (w50, w99) = (quantile(&mut with, 0.5), quantile(&mut with, 0.99));
    println!(
        "fairness (cap {CAP}, 3 light tenants x {LIGHT_LOOPS} loops, heavy tenant {heavy} loops):"
    );
    println!(
        "  light alone:        p50 {a50:>10.3?}  p99 {a99:>10.3?}  calls {}",
        alone.len()
    );
    println!(
        "  light + 10x heavy:  p50 {w50:>10.3?}  p99 {w99:>10.3?}  calls {}",
        with.len()
    );
    println!(
        "  p99 ratio (with / alone): {:.2}",
        w99.as_secs_f64() / a99.as_secs_f64().max(1e-9)
    );
    let snap = set.snapshot();
    println!(
        "  held {} of {}, reclaimed {}, cap waits {}",
        snap.held, snap.cap, snap.reclaimed, snap.cap_waits
    );
}

async fn equal_tenants(cfg: &PgConfig, d: Duration) {
    const TENANTS: usize = 8;
    let set = PgTenants::<String>::builder(cfg.clone())
        .global_cap(CAP)
        .limits(TenantLimits {
            min: 0,
            max: 4,
            weight: 1,
        })
        .configure(|_, c| builder(c))
        .build()
        .expect("tenants");
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Vec<Arc<AtomicU64>> = (0..TENANTS).map(|_| Arc::default()).collect();
    let mut tasks = Vec::new();
    for (i, n) in counts.iter().enumerate() {
        for _ in 0..4 {
            let (set, stop, n) = (set.clone(), Arc::clone(&stop), Arc::clone(n));
            tasks.push(tokio::spawn(async move {
                let tenant = format!("e{i}");
                while !stop.load(Ordering::Relaxed) {
                    let conn = set.get(&tenant).await.expect("get");
                    conn.execute(SQL, &[]).await.expect("query");
                    n.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    tokio::time::sleep(d).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("loop");
    }
    let x: Vec<f64> = counts
        .iter()
        .map(|n| n.load(Ordering::Relaxed) as f64)
        .collect();
    let sum: f64 = x.iter().sum();
    let squares: f64 = x.iter().map(|v| v * v).sum();
    let jain = sum * sum / (x.len() as f64 * squares.max(1e-9));
    let snap = set.snapshot();
    println!("equal tenants ({TENANTS} tenants x 4 loops, cap {CAP}):");
    println!("  calls per tenant: {x:?}");
    println!(
        "  Jain fairness index {jain:.3}; reclaimed {}, held {} of {}",
        snap.reclaimed, snap.held, snap.cap
    );
}

fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

async fn memory() {
    // Nothing listens there: nothing connects.
    let cfg = PgConfig::parse("postgres://app@127.0.0.1:1/db?sslmode=disable").expect("url");
    let set = |cfg: &PgConfig| {
        PgTenants::<String>::builder(cfg.clone())
            .global_cap(90)
            .build()
            .expect("tenants")
    };
    let warm = set(&cfg);
    for i in 0..1000 {
        warm.register(&format!("warm-{i}"));
    }
    const IDLE: usize = 10_000;
    let idle = set(&cfg);
    let before = rss();
    for i in 0..IDLE {
        idle.register(&format!("tenant-{i:05}"));
    }
    let grown = rss().saturating_sub(before);
    println!(
        "memory: {IDLE} idle tenant entries (no pool): {} KiB resident, {} bytes per tenant; tenants alive {}",
        grown / 1024,
        grown / IDLE,
        idle.len()
    );
    const POOLED: usize = 1_000;
    let pooled = set(&cfg);
    let before = rss();
    for i in 0..POOLED {
        pooled.pool(&format!("tenant-{i:05}")).expect("pool");
    }
    let grown = rss().saturating_sub(before);
    println!(
        "memory: {POOLED} tenants with an empty pool built: {} bytes per tenant; pools {}",
        grown / POOLED,
        pooled.snapshot().pools
    );
    pooled.sweep();
    println!(
        "memory: after a sweep, pools left {} (empty pools are dropped; entries stay until idle_after)",
        pooled.snapshot().pools
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    memory().await;
    let server = PgServer::start().expect("server");
    let db = server.create_database().expect("db");
    let cfg = PgConfig::parse(&server.url(&db)).expect("url");
    let d = Duration::from_secs(secs());
    fairness(&cfg, d).await;
    equal_tenants(&cfg, d).await;
}

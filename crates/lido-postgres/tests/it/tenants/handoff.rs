//! Work-conserving hand-off, the cap error, and idle eviction.

use std::time::{Duration, Instant};

use lido_postgres::tenants::{TenantLimits, TenantsError, TenantsMetrics};

use super::{template, tenants, Sessions};
use crate::common;

const LIMITS: TenantLimits = TenantLimits {
    min: 0,
    max: 4,
    weight: 1,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_tenant_takes_an_idle_connection_of_another_at_once() {
    let app = "lido-tenants-handoff";
    let (server, db, cfg) = template(app);
    // Tenant pools keep idle connections 10 minutes (lido-core's default).
    let set = tenants(cfg, 4, LIMITS).build().expect("tenants");
    let sessions = Sessions::new(server, &db, app).await;
    let a = "a".to_owned();
    let leases: Vec<_> = futures::future::join_all((0..4).map(|_| set.get(&a)))
        .await
        .into_iter()
        .map(|r| r.expect("a"))
        .collect();
    drop(leases);
    assert_eq!(set.snapshot().held, 4, "a holds the whole cap, idle");

    let started = Instant::now();
    let conn = set.get(&"b".to_owned()).await.expect("b");
    let waited = started.elapsed();
    conn.execute("SELECT 1", &[]).await.expect("b query");
    let snap = set.snapshot();
    eprintln!("b served in {waited:?}; reclaimed {}", snap.reclaimed);
    assert!(waited < Duration::from_secs(2), "b waited {waited:?}");
    assert_eq!(snap.held, 4);
    assert!(snap.reclaimed >= 1);
    let by = |t: &str| {
        snap.top
            .iter()
            .find(|s| s.tenant == t)
            .expect("tenant")
            .held
    };
    assert_eq!((by("a"), by("b")), (3, 1));
    assert!(sessions.count().await <= 4);

    let text = lido_http::Metrics::builder()
        .extension(TenantsMetrics::new(&set))
        .build()
        .expect("metrics")
        .encode()
        .expect("encode");
    for family in [
        "lido_tenants_cap 4",
        "lido_tenants_connections 4",
        "lido_tenant_connections{tenant=\"a\"} 3",
        "lido_tenant_connections{tenant=\"other\"} 0",
        "lido_tenants_events_total{event=\"reclaimed\"}",
    ] {
        assert!(text.contains(family), "{family} missing from:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_gets_the_cap_error_while_every_connection_is_leased() {
    let (_server, _db, cfg) = template("lido-tenants-full");
    let set = super::PgTenants::<String>::builder(cfg)
        .global_cap(2)
        .limits(LIMITS)
        // Room for a's two connects on a loaded machine (300 ms failed one
        // under load); b still meets the cap, after this wait.
        .configure(|_, c| common::builder(c, 1).acquire_timeout(Duration::from_secs(2)))
        .build()
        .expect("tenants");
    let a = "a".to_owned();
    let _l1 = set.get(&a).await.expect("a1");
    let _l2 = set.get(&a).await.expect("a2");
    let Err(err) = set.get(&"b".to_owned()).await else {
        panic!("b got a connection above the cap");
    };
    eprintln!("{err}");
    assert!(
        matches!(err, TenantsError::CapReached { cap: 2, .. }),
        "{err:?}"
    );
    let snap = set.snapshot();
    let b = snap.top.iter().find(|s| s.tenant == "b").expect("b");
    assert!(!b.healthy);
    assert!(b.last_error.as_deref().is_some_and(|e| !e.is_empty()));
    assert!(!format!("{err:?}").contains(_server.password()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tenants_are_evicted() {
    let app = "lido-tenants-evict";
    let (server, db, cfg) = template(app);
    let set = tenants(cfg, 4, LIMITS)
        .idle_after(Duration::from_millis(1000))
        .build()
        .expect("tenants");
    let sessions = Sessions::new(server, &db, app).await;
    for t in ["x", "y"] {
        let conn = set.get(&t.to_owned()).await.expect("get");
        conn.execute("SELECT 1", &[]).await.expect("query");
    }
    // Keep y busy; x goes idle.
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        drop(set.get(&"y".to_owned()).await.expect("y"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let snap = set.snapshot();
    assert_eq!(set.len(), 1, "x was evicted");
    assert_eq!(snap.evicted, 1);
    assert_eq!(snap.held, 1);
    assert_eq!(snap.top[0].tenant, "y");
    assert_eq!(sessions.settle_at(1).await, 1, "x's session closed");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(set.is_empty());
    assert_eq!(set.held(), 0);
    assert_eq!(sessions.settle_at(0).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_uses_build_one_pool() {
    let (_server, _db, cfg) = template("lido-tenants-first");
    let set = tenants(cfg, 4, LIMITS).build().expect("tenants");
    let t = "new".to_owned();
    let leases = futures::future::join_all((0..20).map(|_| async {
        let conn = set.get(&t).await.expect("get");
        conn.execute("SELECT 1", &[]).await.expect("query");
    }))
    .await;
    assert_eq!(leases.len(), 20);
    let snap = set.snapshot();
    assert_eq!(snap.pools_built, 1);
    assert_eq!(snap.tenants, 1);
    assert!(snap.held <= 4);
    assert_eq!(snap.top[0].gets, 20);
    assert!(snap.top[0].healthy);
}

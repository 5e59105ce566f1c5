//! The global cap under many tenants and concurrent load: never exceeded,
//! by the set's own count and by the server's `pg_stat_activity`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_postgres::tenants::TenantLimits;

use super::{template, tenants, Sessions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_holds_under_many_tenants() {
    const CAP: usize = 12;
    const TENANTS: usize = 200;
    let app = "lido-tenants-cap";
    let (server, db, cfg) = template(app);
    let limits = TenantLimits {
        min: 0,
        max: 4,
        weight: 1,
    };
    let set = tenants(cfg, CAP, limits)
        .configure(|t, c| {
            crate::common::builder(c, 1)
                .search_path(format!("{t}, public"))
                .acquire_timeout(Duration::from_secs(30))
        })
        .build()
        .expect("tenants");
    let sessions = Sessions::new(server, &db, app).await;

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..40u64 {
        let (set, stop, done) = (set.clone(), Arc::clone(&stop), Arc::clone(&done));
        workers.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                // A skewed spread: low tenants often, every tenant now and then.
                i = (i * 7 + 13) % TENANTS as u64;
                let tenant = format!("t{}", if i % 3 == 0 { i } else { i % 10 });
                match set.get(&tenant).await {
                    Ok(conn) => {
                        conn.execute("SELECT pg_sleep(0.002)", &[])
                            .await
                            .expect("query");
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => errors.push(e.to_string()),
                }
            }
            errors
        }));
    }
    let mut most_on_server = 0;
    let mut most_held = 0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        most_on_server = most_on_server.max(sessions.count().await);
        let snap = set.snapshot();
        most_held = most_held.max(snap.held);
        assert!(snap.held <= CAP, "held {} above the cap", snap.held);
    }
    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for w in workers {
        errors.extend(w.await.expect("worker"));
    }
    let snap = set.snapshot();
    eprintln!(
        "cap {CAP}: most held {most_held}, most sessions on the server {most_on_server}, \
         calls {}, tenants alive {}, pools built {}, reclaimed {}, cap waits {}, errors {}",
        done.load(Ordering::Relaxed),
        snap.tenants,
        snap.pools_built,
        snap.reclaimed,
        snap.cap_waits,
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "errors: {:?}",
        &errors[..errors.len().min(5)]
    );
    assert!(most_on_server <= CAP as i64, "{most_on_server} sessions");
    assert!(most_held <= CAP);
    assert!(snap.tenants > 10, "many tenants were used");
    assert!(done.load(Ordering::Relaxed) > 100);
    assert_eq!(snap.top.len(), 10, "top N is bounded");
    assert!(snap.other.tenants > 0);
}

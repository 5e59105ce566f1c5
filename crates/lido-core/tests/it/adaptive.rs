//! Adaptive sizing against a model server on the paused clock: work takes
//! `base * max(1, in_flight / cores)`, so the best pool size is `cores`.
//! The target must settle near it, follow a change of workload, and never
//! fail a caller while it calibrates.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_core::{AdaptiveConfig, BuildError, Config, Pool};
use lido_testkit::fake::{paused_runtime, Fake};

/// A server with `cores` cores (changeable while it runs).
struct Server {
    cores: AtomicUsize,
    base: Duration,
    in_flight: AtomicUsize,
}

impl Server {
    async fn work(&self) {
        let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let cores = self.cores.load(Ordering::SeqCst);
        let factor = (n as f64 / cores as f64).max(1.0);
        tokio::time::sleep(self.base.mul_f64(factor)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn adaptive_pool(max: usize) -> Pool<Fake> {
    let (m, _script) = Fake::new();
    let cfg = Config {
        max_size: max,
        acquire_timeout: Duration::from_secs(30),
        leak_threshold: None,
        adaptive: Some(AdaptiveConfig {
            min: 1,
            max,
            interval: Duration::from_millis(250),
            ..AdaptiveConfig::default()
        }),
        ..Config::default()
    };
    Pool::builder(m).config(cfg).build_lazy().expect("build")
}

/// Closed-loop callers: get, work, return, until `stop`.
fn callers(
    pool: &Pool<Fake>,
    server: &Arc<Server>,
    n: usize,
    stop: &Arc<AtomicBool>,
    errors: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let (pool, server) = (pool.clone(), Arc::clone(server));
            let (stop, errors) = (Arc::clone(stop), Arc::clone(errors));
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    match pool.get().await {
                        Ok(conn) => {
                            server.work().await;
                            drop(conn);
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect()
}

#[test]
fn target_settles_near_the_cores_then_follows_a_flat_workload_without_failing_a_call() {
    paused_runtime().block_on(async {
        let pool = adaptive_pool(64);
        assert_eq!(pool.target_size(), 1, "starts at min");
        let server = Arc::new(Server {
            cores: AtomicUsize::new(8),
            base: Duration::from_millis(5),
            in_flight: AtomicUsize::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let tasks = callers(&pool, &server, 48, &stop, &errors);

        tokio::time::sleep(Duration::from_secs(40)).await;
        let near_cores = pool.target_size();
        let status = pool.status();
        assert!(
            (6..=16).contains(&near_cores),
            "8 cores: target {near_cores}, {status:?}"
        );
        assert!(status.size <= near_cores + 1, "{status:?}");

        // The work stops needing the CPU (64 cores' worth): latency is flat
        // up to every caller, so the target climbs to serve them all.
        server.cores.store(64, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(40)).await;
        let flat = pool.target_size();
        assert!(flat >= 40, "flat latency: target {flat}");
        assert!(flat <= 64 && pool.status().target_size == flat);

        stop.store(true, Ordering::SeqCst);
        for t in tasks {
            t.await.expect("caller");
        }
        assert_eq!(errors.load(Ordering::SeqCst), 0, "no call failed");
        assert_eq!(pool.stats().acquire_timeouts(), 0);
        assert!(pool.stats().target_changes() >= 4);
    });
}

#[test]
fn resize_caps_the_target_at_once() {
    paused_runtime().block_on(async {
        let pool = adaptive_pool(32);
        let server = Arc::new(Server {
            cores: AtomicUsize::new(1000),
            base: Duration::from_millis(5),
            in_flight: AtomicUsize::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let tasks = callers(&pool, &server, 40, &stop, &errors);
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(pool.target_size(), 32, "flat latency: up to max");
        pool.resize(12).expect("resize");
        assert_eq!(pool.target_size(), 12, "max_size caps the target");
        tokio::time::sleep(Duration::from_secs(5)).await;
        let status = pool.status();
        assert!(status.size <= 12 && status.target_size == 12, "{status:?}");
        stop.store(true, Ordering::SeqCst);
        for t in tasks {
            t.await.expect("caller");
        }
        assert_eq!(errors.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn without_adaptive_the_target_is_max_size() {
    paused_runtime().block_on(async {
        let (m, _s) = Fake::new();
        let pool = Pool::builder(m).max_size(7).build().await.expect("pool");
        assert_eq!(pool.target_size(), 7);
        assert_eq!(pool.stats().target_changes(), 0);
    });
}

#[test]
fn adaptive_settings_are_checked_at_build() {
    paused_runtime().block_on(async {
        let build = |cfg: Config| Pool::builder(Fake::new().0).config(cfg).build_lazy();
        let adaptive = |min, max| {
            Some(AdaptiveConfig {
                min,
                max,
                ..AdaptiveConfig::default()
            })
        };
        let too_big = Config {
            max_size: 8,
            adaptive: adaptive(1, 9),
            ..Config::default()
        };
        let err = build(too_big).expect_err("max above max_size");
        assert!(matches!(err, BuildError::Adaptive(_)), "{err}");
        let no_stats = Config {
            statistics: false,
            adaptive: adaptive(1, 4),
            ..Config::default()
        };
        let err = build(no_stats).expect_err("needs statistics");
        assert!(err.to_string().contains("statistics"), "{err}");
    });
}

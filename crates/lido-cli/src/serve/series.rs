//! The dashboard's history: a task reads every pool once a second into a
//! ring buffer of the last ten minutes (so the charts survive a page
//! reload), and keeps each pool's health verdict with the times it flipped
//! and why. `GET /dashboard/series` serves it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lido_http::{HealthMonitor, HealthReport, Status};
use serde::Serialize;
use serde_json::{json, Value};

use super::sample::{self, ms, Point, Target, Totals};
use super::scrub::Scrubber;

/// How often the pools are read.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Points kept per pool: ten minutes at [`INTERVAL`].
pub const CAPACITY: usize = 600;
/// Health flips kept.
const FLIPS: usize = 100;

/// A pool's health verdict changed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Flip {
    /// Unix time, milliseconds.
    pub t: u64,
    /// The pool.
    pub pool: String,
    /// Its verdict before (`unknown` before the first report).
    pub from: &'static str,
    /// Its verdict now.
    pub to: &'static str,
    /// The checks that did not pass, `key: output` each.
    pub reasons: Vec<String>,
}

struct PoolSeries {
    target: Target,
    last: Totals,
    last_at: Instant,
    points: VecDeque<Point>,
    health: &'static str,
    reasons: Vec<String>,
}

struct Inner {
    pools: Vec<PoolSeries>,
    flips: VecDeque<Flip>,
}

/// The ring buffers of every sampled pool.
#[derive(Clone)]
pub struct Series {
    inner: Arc<Mutex<Inner>>,
    monitor: HealthMonitor,
    scrub: Scrubber,
}

impl Series {
    /// Buffers for `targets`, their verdicts read from `monitor`.
    pub fn new(targets: Vec<Target>, monitor: HealthMonitor, scrub: Scrubber) -> Self {
        let now = Instant::now();
        let pools = targets
            .into_iter()
            .map(|target| PoolSeries {
                last: sample::totals(&target),
                target,
                last_at: now,
                points: VecDeque::with_capacity(CAPACITY),
                health: "unknown",
                reasons: Vec::new(),
            })
            .collect();
        let inner = Inner {
            pools,
            flips: VecDeque::new(),
        };
        Self {
            inner: Arc::new(Mutex::new(inner)),
            monitor,
            scrub,
        }
    }

    /// Starts the sampler; it stops when the returned guard drops.
    pub fn spawn(&self) -> Sampler {
        let series = self.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            tick.tick().await;
            loop {
                tick.tick().await;
                series.sample_now();
            }
        });
        Sampler(task)
    }

    /// Reads every pool once and appends a point to each buffer.
    pub fn sample_now(&self) {
        let report = self.monitor.report();
        let t = unix_ms(SystemTime::now());
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Inner { pools, flips } = &mut *inner;
        for p in pools.iter_mut() {
            let now = sample::totals(&p.target);
            let at = Instant::now();
            let secs = at.duration_since(p.last_at).as_secs_f64();
            let mut point = sample::point(&p.target, &p.last, &now, secs, t);
            let (health, reasons) = verdict(report.as_deref(), p.target.pool.name(), &self.scrub);
            if health != p.health {
                push_capped(
                    flips,
                    Flip {
                        t,
                        pool: p.target.pool.name().to_owned(),
                        from: p.health,
                        to: health,
                        reasons: reasons.clone(),
                    },
                    FLIPS,
                );
            }
            point.health = health;
            (p.health, p.reasons) = (health, reasons);
            push_capped(&mut p.points, point, CAPACITY);
            (p.last, p.last_at) = (now, at);
        }
    }

    /// The `/dashboard/series` document; with `since`, only points after it.
    pub fn document(&self, since: Option<u64>) -> Value {
        let report = self.monitor.report();
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let pools: Vec<Value> = inner
            .pools
            .iter()
            .map(|p| pool_json(p, since, &self.scrub))
            .collect();
        let overall = report.as_ref().map_or("unknown", |r| r.status.as_str());
        let cfg = self.monitor.config();
        let doc = json!({
            "format": 1,
            "interval_ms": u64::try_from(INTERVAL.as_millis()).unwrap_or(u64::MAX),
            "capacity": CAPACITY,
            "now": unix_ms(SystemTime::now()),
            "status": overall,
            "description": report.as_ref().and_then(|r| r.service.description.clone()),
            "pools": pools,
            "health_history": inner.flips.iter().collect::<Vec<_>>(),
            "health_thresholds": {
                "window_ms": ms(cfg.window),
                "query_error_percent": cfg.query_error_percent,
                "get_error_percent": cfg.get_error_percent,
                "connect_error_percent": cfg.connect_error_percent,
                "waiters": cfg.waiters,
                "utilization_percent": cfg.utilization_percent,
            },
        });
        self.scrub.value(doc)
    }
}

/// Stops the sampler task on drop.
pub struct Sampler(tokio::task::JoinHandle<()>);

impl Drop for Sampler {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn pool_json(p: &PoolSeries, since: Option<u64>, scrub: &Scrubber) -> Value {
    let source = p.target.pool.source();
    let cfg = source.config();
    let points: Vec<&Point> = p
        .points
        .iter()
        .filter(|pt| since.is_none_or(|s| pt.t > s))
        .collect();
    let leaks: Vec<Value> = source
        .leaks()
        .iter()
        .map(|l| {
            json!({
                "conn_id": l.conn_id,
                "held_ms": ms(l.held),
                "location": format!("{}:{}:{}", l.location.file(), l.location.line(), l.location.column()),
            })
        })
        .collect();
    let classes: Vec<Value> = p.target.pg.as_ref().map_or_else(Vec::new, |pg| {
        pg.class_stats()
            .iter()
            .map(|c| {
                json!({
                    "class": scrub.text(&c.class),
                    "deadline_ms": c.deadline.map(ms),
                    "calls": c.calls,
                    "errors": c.errors,
                    "timeouts": c.timeouts,
                    "near_timeouts": c.near_timeouts,
                    "total_ms": ms(c.total),
                })
            })
            .collect()
    });
    json!({
        "name": p.target.pool.name(),
        "kind": p.target.kind,
        "max_size": cfg.max_size,
        "acquire_timeout_ms": ms(cfg.acquire_timeout),
        "leak_threshold_ms": cfg.leak_threshold.map(ms),
        "health": p.health,
        "reasons": p.reasons,
        "leaks": leaks,
        "classes": classes,
        "points": points,
    })
}

/// `name`'s verdict in `report`: the worst of its checks and of the
/// checks about no pool, with the reasons of those that did not pass;
/// `unknown` before the first report or for a pool nothing checks.
fn verdict(
    report: Option<&HealthReport>,
    name: &str,
    scrub: &Scrubber,
) -> (&'static str, Vec<String>) {
    let Some(report) = report else {
        return ("unknown", Vec::new());
    };
    let mine: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.component_id.as_deref().is_none_or(|id| id == name))
        .collect();
    if !mine.iter().any(|c| c.component_id.is_some()) {
        return ("unknown", Vec::new());
    }
    let worst = mine.iter().map(|c| c.status).max().unwrap_or(Status::Pass);
    let reasons = mine
        .iter()
        .filter(|c| c.status != Status::Pass)
        .map(|c| scrub.text(&format!("{}: {}", c.key, c.output)))
        .collect();
    (worst.as_str(), reasons)
}

fn push_capped<T>(q: &mut VecDeque<T>, item: T, cap: usize) {
    while q.len() >= cap {
        q.pop_front();
    }
    q.push_back(item);
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_keeps_the_newest() {
        let mut q = VecDeque::new();
        for i in 0..10 {
            push_capped(&mut q, i, 3);
        }
        assert_eq!(q, [7, 8, 9]);
    }

    #[tokio::test]
    async fn samples_land_in_the_document_with_rates_and_health() {
        let pool = lido_sqlite::SqlitePool::memory("series-test")
            .build()
            .await
            .expect("an in-memory database");
        let named = lido_http::NamedPool::new("primary", pool.clone());
        let monitor = HealthMonitor::builder()
            .named(named.clone())
            .interval(Duration::from_secs(3600))
            .spawn()
            .expect("a monitor");
        monitor.refresh().await;
        let target = Target {
            pool: named,
            pg: None,
            kind: "sqlite",
        };
        let series = Series::new(vec![target], monitor, Scrubber::default());
        for _ in 0..3 {
            pool.read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
                .await
                .expect("a read");
        }
        series.sample_now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        series.sample_now();
        let doc = series.document(None);
        let pool_doc = &doc["pools"][0];
        let points = pool_doc["points"].as_array().expect("points");
        assert_eq!(points.len(), 2, "{doc}");
        assert!(points[0]["leases"].as_f64() > Some(0.0), "{doc}");
        assert_eq!(points[0]["qps"], Value::Null, "SQLite counts no statements");
        assert_eq!(pool_doc["health"], "pass", "{doc}");
        assert_eq!(pool_doc["kind"], "sqlite");
        assert_eq!(doc["health_history"][0]["to"], "pass", "{doc}");
        let t = points[0]["t"].as_u64().expect("t");
        let later = series.document(Some(t));
        assert_eq!(
            later["pools"][0]["points"].as_array().map(Vec::len),
            Some(1)
        );
    }
}

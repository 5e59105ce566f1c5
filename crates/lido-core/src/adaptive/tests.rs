//! The controller against a model server: `tasks` closed-loop callers, a
//! server with `cores` cores on which work takes `base * max(1, in_flight / cores)`.

use std::time::Duration;

use super::*;

const TICK: Duration = Duration::from_millis(250);

struct Model {
    base: f64,
    cores: f64,
    tasks: usize,
    /// Relative latency noise (uniform in ±noise).
    noise: f64,
    /// Lock contention instead of cores: work holds one of this many locks
    /// (picked at random) for `base`, so throughput is
    /// `keys / base * (1 - (1 - 1/keys)^in_flight)`: a plateau, no knee.
    keys: Option<f64>,
    rng: fastrand::Rng,
}

impl Model {
    fn new(cores: f64, tasks: usize) -> Self {
        Self {
            base: 0.002,
            cores,
            tasks,
            noise: 0.0,
            keys: None,
            rng: fastrand::Rng::with_seed(7),
        }
    }

    /// One interval at `limit` leases at most.
    fn sample(&mut self, limit: usize) -> Sample {
        let conc = limit.min(self.tasks) as f64;
        let jitter = 1.0 + self.noise * (2.0 * self.rng.f64() - 1.0);
        let lat = match self.keys {
            Some(k) => conc * self.base / (k * (1.0 - (1.0 - 1.0 / k).powf(conc))),
            None => self.base * (conc / self.cores).max(1.0),
        } * jitter;
        let secs = TICK.as_secs_f64();
        let waiting = self.tasks.saturating_sub(limit) as f64;
        Sample {
            elapsed: TICK,
            completed: (conc / lat * secs).round() as u64,
            held: Duration::from_secs_f64(conc * secs),
            waited: Duration::from_secs_f64(waiting * secs),
        }
    }
}

fn cfg(min: usize, max: usize) -> AdaptiveConfig {
    AdaptiveConfig {
        min,
        max,
        interval: TICK,
        ..AdaptiveConfig::default()
    }
}

/// Runs `ticks` intervals; returns every change made.
fn run(c: &mut Controller, m: &mut Model, ticks: usize, cap: usize) -> Vec<Change> {
    (0..ticks)
        .filter_map(|_| {
            let s = m.sample(c.target());
            c.on_sample(s, cap)
        })
        .collect()
}

fn assert_bounded(changes: &[Change], max_step: f64) {
    for ch in changes {
        let bound = ((ch.from as f64 * max_step).floor() as usize).max(1);
        assert!(
            ch.to.abs_diff(ch.from) <= bound,
            "step {} -> {} is larger than {bound}: {}",
            ch.from,
            ch.to,
            ch.reason
        );
    }
}

#[test]
fn rises_to_max_when_callers_queue_with_flat_latency() {
    let mut c = Controller::new(cfg(1, 64));
    let mut m = Model::new(1000.0, 100);
    let changes = run(&mut c, &mut m, 120, 64);
    assert_eq!(c.target(), 64, "{changes:#?}");
    assert!(changes.iter().all(|ch| ch.to > ch.from), "{changes:#?}");
    assert!(changes[0].reason.contains("callers queue"), "{changes:#?}");
    assert_bounded(&changes, 0.5);
}

#[test]
fn converges_near_the_cores_from_the_start() {
    let mut c = Controller::new(cfg(1, 64));
    let mut m = Model::new(8.0, 100);
    let changes = run(&mut c, &mut m, 200, 64);
    assert!(
        (8..=14).contains(&c.target()),
        "{}: {changes:#?}",
        c.target()
    );
    assert_bounded(&changes, 0.5);
}

#[test]
fn falls_when_latency_grows_with_concurrency() {
    let mut c = Controller::new(cfg(1, 64));
    let mut m = Model::new(1000.0, 100);
    run(&mut c, &mut m, 120, 64);
    assert_eq!(c.target(), 64);
    // The workload changes: now 6 cores' worth of work at 5 ms.
    m.cores = 6.0;
    m.base = 0.005;
    let changes = run(&mut c, &mut m, 200, 64);
    assert!(
        (6..=12).contains(&c.target()),
        "{}: {changes:#?}",
        c.target()
    );
    assert!(
        changes[0].to < changes[0].from && changes[0].reason.contains("latency rose"),
        "{changes:#?}"
    );
    assert_bounded(&changes, 0.5);
}

#[test]
fn climbs_again_when_latency_turns_flat_at_a_higher_level() {
    // CPU-bound on 4 cores, then slow waits that need no CPU (pg_sleep):
    // latency rises tenfold at the same size, but not with concurrency.
    let mut c = Controller::new(cfg(1, 64));
    let mut m = Model::new(4.0, 100);
    run(&mut c, &mut m, 200, 64);
    assert!((4..=8).contains(&c.target()), "{}", c.target());
    m.cores = 1000.0;
    m.base = 0.010;
    let changes = run(&mut c, &mut m, 200, 64);
    assert_eq!(c.target(), 64, "{changes:#?}");
    assert_bounded(&changes, 0.5);
}

#[test]
fn settles_high_on_a_lock_plateau() {
    // 4 locks: 8 in flight reach 90% of the plateau, 12 reach 97%.
    let mut c = Controller::new(cfg(1, 64));
    let mut m = Model::new(1.0, 100);
    m.keys = Some(4.0);
    let changes = run(&mut c, &mut m, 300, 64);
    let n = c.target() as f64;
    let share = 1.0 - 0.75f64.powf(n);
    assert!(share >= 0.95 && n <= 32.0, "{n}: {changes:#?}");
}

#[test]
fn stays_put_under_noise() {
    let mut c = Controller::new(cfg(1, 64));
    let mut m = Model::new(8.0, 100);
    let before = run(&mut c, &mut m, 200, 64);
    // Settled: the last change was not a probe still waiting to be judged.
    let settled = before.last().map(|ch| ch.to).expect("climbed");
    assert!(!before
        .last()
        .is_some_and(|ch| ch.reason.contains("probing")));
    m.noise = 0.10;
    let changes = run(&mut c, &mut m, 400, 64);
    // Only the periodic one-step probes, each undone, may move it: no
    // descent, no climb past the probe.
    for ch in &changes {
        let probe = ch.reason.contains("probing") && ch.from == settled;
        let undo = ch.reason.contains("latency rose") && ch.to == settled;
        assert!(probe || undo, "{changes:#?}");
    }
    assert!(changes.len() <= 2 * (400 / (REPROBE_AFTER as usize * MEASURE as usize)) + 2);
    assert!([settled, changes.last().map_or(settled, |c| c.to)].contains(&c.target()));
}

#[test]
fn respects_min_max_and_the_runtime_cap() {
    let mut c = Controller::new(cfg(4, 20));
    assert_eq!(c.target(), 4);
    let mut m = Model::new(1000.0, 100);
    run(&mut c, &mut m, 120, 64);
    assert_eq!(c.target(), 20, "never above max");
    // max_size lowered at runtime to 6: the target follows at once.
    let ch = c.on_sample(m.sample(20), 6).expect("clamped");
    assert_eq!((ch.from, ch.to), (20, 6));
    let changes = run(&mut c, &mut m, 60, 6);
    assert!(changes.is_empty() && c.target() == 6, "{changes:#?}");
    // One core: latency rises with every connection, but min is min.
    m.cores = 1.0;
    let changes = run(&mut c, &mut m, 200, 64);
    assert!(changes.iter().all(|ch| ch.to >= 4), "{changes:#?}");
    assert!(c.target() >= 4);
}

#[test]
fn no_work_means_no_change() {
    let mut c = Controller::new(cfg(2, 16));
    for _ in 0..50 {
        let idle = Sample {
            elapsed: TICK,
            ..Sample::default()
        };
        assert_eq!(c.on_sample(idle, 16), None);
    }
    assert_eq!(c.target(), 2);
}

#[test]
fn validation_names_the_problem() {
    let ok = cfg(2, 8);
    assert!(ok.validate(8, 0).is_ok());
    let msg = |c: AdaptiveConfig, max: usize, min_idle: usize| {
        c.validate(max, min_idle).expect_err("invalid").to_string()
    };
    assert!(msg(cfg(0, 8), 8, 0).contains("min (0)"));
    assert!(msg(cfg(9, 8), 8, 0).contains("at most max"));
    assert!(msg(cfg(2, 16), 8, 0).contains("max_size (8)"));
    assert!(msg(cfg(2, 8), 8, 3).contains("min_idle (3)"));
    let mut c = cfg(2, 8);
    c.smoothing = 0.0;
    assert!(msg(c, 8, 0).contains("smoothing"));
    let mut c = cfg(2, 8);
    c.interval = Duration::from_millis(1);
    assert!(msg(c, 8, 0).contains("interval"));
}

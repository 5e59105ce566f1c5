//! Adaptive sizing: [`AdaptiveConfig`] and the controller that turns the
//! pool's own signals into a target size, as pure logic (samples in, a new
//! target out; no clock, no lock), so it is tested without a runtime. The
//! `tuner` task feeds it and applies its decisions.
//!
//! The controller is a gradient hill climb on the concurrency limit, with
//! the latency of work on connections (lease hold time) as the signal:
//!
//! - every change is an experiment: after it, `cooldown` samples are
//!   skipped, then [`MEASURE`] samples are summed into one measurement —
//!   mean hold time (latency), mean leases held (concurrency, by Little's
//!   law: total hold time / elapsed) and mean callers waiting;
//! - climbing while callers queue: if latency stayed flat as concurrency
//!   grew (it absorbed less than [`ELASTICITY`] of the growth, in log
//!   terms), grow again; if it rose with concurrency, step back halfway and
//!   settle;
//! - descending after latency rose: while latency falls with concurrency,
//!   shrink again; once it stops falling, the work is not waiting on itself
//!   any more: climb from there (or settle when nobody queues);
//! - settled: stay while the smoothed latency stays within `tolerance` of
//!   what it was when the pool settled; outside it, descend (latency rose)
//!   or climb (latency fell while callers queue), after one more
//!   measurement at the same size confirms it. While callers queue, a
//!   single step up is tried every [`REPROBE_AFTER`] measurements, kept
//!   only if [`PROBE_CHECKS`] measurements in a row find latency flat
//!   (with [`PROBE_MARGIN`] to spare).
//!
//! Steps are at most `max_step` of the current target (at least 1), and the
//! target stays within `min..=max` and under the pool's current `max_size`.

mod settings;

use std::time::Duration;

pub use settings::AdaptiveConfig;

/// Samples summed into one measurement after the cool-down.
pub const MEASURE: u32 = 2;
/// A climb continues while latency grows by less than concurrency raised to
/// this power (0: flat, 1: all of the added concurrency became latency); a
/// descent continues while latency falls by at least that much.
pub const ELASTICITY: f64 = 0.9;
/// Measurements in a row that must find a periodic one-step probe up flat
/// (by [`ELASTICITY`]) before it is kept: one noisy measurement must not
/// ratchet a settled pool upwards.
pub const PROBE_CHECKS: u8 = 3;
/// A probe's measurements must find latency flat with this much to spare
/// below [`ELASTICITY`].
pub const PROBE_MARGIN: f64 = 0.05;
/// Measurements spent settled, with callers queueing, before one step up is tried.
pub const REPROBE_AFTER: u32 = 20;
/// Measurements averaged into a settled pool's reference latency (one
/// alone may catch the transient of the step just made).
pub const REFERENCE_MEASURES: u32 = 3;
/// Mean callers waiting over a measurement at which the pool counts as queueing.
const QUEUE_MIN: f64 = 0.5;

/// What the pool did during one sampling interval (differences of its counters).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Sample {
    /// Time the sample covers.
    pub elapsed: Duration,
    /// Leases returned.
    pub completed: u64,
    /// Their total hold time.
    pub held: Duration,
    /// Total time callers waited in `get()` (waits that ended in the interval).
    pub waited: Duration,
}

impl Sample {
    fn add(&mut self, other: &Sample) {
        self.elapsed += other.elapsed;
        self.completed += other.completed;
        self.held += other.held;
        self.waited += other.waited;
    }
}

/// One measurement: a few samples summed up.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    limit: usize,
    /// Mean leases held.
    conc: f64,
    /// Mean hold time, seconds.
    lat: f64,
    /// Mean callers waiting.
    queue: f64,
}

impl Point {
    fn of(s: &Sample, limit: usize) -> Option<Self> {
        let elapsed = s.elapsed.as_secs_f64();
        if s.completed == 0 || elapsed <= 0.0 {
            return None;
        }
        let held = s.held.as_secs_f64();
        Some(Self {
            limit,
            conc: held / elapsed,
            lat: held / s.completed as f64,
            queue: s.waited.as_secs_f64() / elapsed,
        })
    }

    fn queueing(&self) -> bool {
        self.queue >= QUEUE_MIN
    }
}

/// A change of target, with the reason for the log.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub from: usize,
    pub to: usize,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Nothing measured yet: climb at once if callers queue.
    Start,
    /// Holding. `reference`: the latency measured once settled;
    /// `smoothed`: the latency since; `quiet`:
    /// measurements in a row with callers queueing and latency in band.
    Settled {
        reference: f64,
        smoothed: f64,
        quiet: u32,
        /// Mean latency over the `quiet` measurements: what a probe is judged against.
        mean: f64,
    },
    /// Just moved to where it settles: averaging [`REFERENCE_MEASURES`]
    /// measurements (`sum` of `n` latencies so far) into the reference.
    Settling { sum: f64, n: u32 },
    /// Growing; `prev` was measured before the last step. `checks`: for a
    /// single try up from a settled state, the measurements still to find
    /// it flat (undone as soon as one finds latency rose); 0 when climbing.
    Climb { prev: Point, checks: u8 },
    /// Shrinking after latency rose; `prev` was measured before the last step.
    Descend { prev: Point },
    /// A settled pool's latency left the band (`up`: it fell, so climb):
    /// measured once more at the same size, so that the step that follows
    /// starts from a measurement of the new workload alone.
    Confirm { up: bool, reference: f64 },
}

/// The adaptive sizing controller (pure logic; see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct Controller {
    cfg: AdaptiveConfig,
    target: usize,
    mode: Mode,
    /// Samples still to skip after a change.
    skip: u32,
    /// Samples summed so far for the next measurement.
    acc: Sample,
    ticks: u32,
}

/// How much of a concurrency change (ratio `kappa`) showed up as latency
/// change (ratio `rho`), in log terms: 0 flat, 1 all of it.
fn elasticity(rho: f64, kappa: f64) -> f64 {
    if (kappa - 1.0).abs() < 1e-9 || rho <= 0.0 {
        return 0.0;
    }
    rho.ln() / kappa.ln()
}

impl Controller {
    /// A controller starting at `min`, climbing once callers queue.
    pub fn new(cfg: AdaptiveConfig) -> Self {
        Self {
            target: cfg.min,
            mode: Mode::Start,
            skip: 0,
            acc: Sample::default(),
            ticks: 0,
            cfg,
        }
    }

    /// The current target.
    #[cfg(test)]
    pub fn target(&self) -> usize {
        self.target
    }

    /// Feeds one interval's sample; `cap` is the pool's current `max_size`.
    /// Returns the change made, if any.
    pub fn on_sample(&mut self, s: Sample, cap: usize) -> Option<Change> {
        let hi = self.cfg.max.min(cap).max(1);
        let lo = self.cfg.min.min(hi);
        if self.target > hi || self.target < lo {
            let to = self.target.clamp(lo, hi);
            let why = format!("kept within {lo}..={hi} (adaptive min and max, max_size)");
            return self.settle_at(to, why);
        }
        if self.skip > 0 {
            self.skip -= 1;
            return None;
        }
        if s.completed == 0 {
            return None; // no work, no evidence
        }
        self.acc.add(&s);
        self.ticks += 1;
        if self.ticks < MEASURE {
            return None;
        }
        let acc = std::mem::take(&mut self.acc);
        self.ticks = 0;
        let point = Point::of(&acc, self.target)?;
        match self.mode {
            Mode::Start if point.queueing() && self.target < hi => {
                self.step_up(point, 0, "callers queue; climbing".into(), hi)
            }
            Mode::Start => self.settle(point.lat),
            Mode::Settled {
                reference,
                smoothed,
                quiet,
                mean,
            } => self.settled(point, reference, smoothed, (quiet, mean), lo, hi),
            Mode::Settling { sum, n } => self.settling(point.lat, sum, n),
            Mode::Climb { prev, checks } => self.climb(point, prev, checks, hi),
            Mode::Descend { prev } => self.descend(point, prev, lo, hi),
            Mode::Confirm { up, reference } => self.confirm(point, up, reference, lo, hi),
        }
    }

    fn settled(
        &mut self,
        p: Point,
        reference: f64,
        smoothed: f64,
        (quiet, mean): (u32, f64),
        lo: usize,
        hi: usize,
    ) -> Option<Change> {
        let mut reference = reference;
        let a = self.cfg.smoothing;
        let smoothed = smoothed * (1.0 - a) + p.lat * a;
        let ratio = smoothed / reference;
        let tol = self.cfg.tolerance;
        let (mut quiet, mut mean) = (quiet, mean);
        if ratio > 1.0 + tol {
            if self.target > lo {
                self.mode = Mode::Confirm {
                    up: false,
                    reference,
                };
                return None;
            }
            reference = smoothed; // nothing to do about it: the new normal
        } else if ratio < 1.0 - tol {
            if p.queueing() && self.target < hi {
                self.mode = Mode::Confirm {
                    up: true,
                    reference,
                };
                return None;
            }
            reference = smoothed;
        } else if p.queueing() {
            quiet += 1;
            mean += (p.lat - mean) / f64::from(quiet);
            if quiet >= REPROBE_AFTER && self.target < hi {
                let why = "callers keep queueing; probing one step up".to_string();
                // Judged against the mean of many measurements, not one.
                let base = Point { lat: mean, ..p };
                return self.step_up(base, PROBE_CHECKS, why, hi);
            }
        } else {
            quiet = 0;
        }
        self.mode = Mode::Settled {
            reference,
            smoothed,
            quiet,
            mean,
        };
        None
    }

    fn settling(&mut self, lat: f64, sum: f64, n: u32) -> Option<Change> {
        let (sum, n) = (sum + lat, n + 1);
        if n < REFERENCE_MEASURES {
            self.mode = Mode::Settling { sum, n };
            return None;
        }
        self.settle(sum / f64::from(n))
    }

    fn confirm(
        &mut self,
        p: Point,
        up: bool,
        reference: f64,
        lo: usize,
        hi: usize,
    ) -> Option<Change> {
        let ratio = p.lat / reference;
        let tol = self.cfg.tolerance;
        if !up && ratio > 1.0 + tol && self.target > lo {
            let why = format!("latency rose {ratio:.2}x at this size; descending");
            return self.step_down(p, why, lo);
        }
        if up && ratio < 1.0 - tol && p.queueing() && self.target < hi {
            let why = format!("latency fell to {ratio:.2}x while callers queue; climbing");
            return self.step_up(p, 0, why, hi);
        }
        // A passing blip: back to what the pool settled with.
        self.mode = Mode::Settled {
            reference,
            smoothed: p.lat,
            quiet: 0,
            mean: 0.0,
        };
        None
    }

    fn climb(&mut self, p: Point, prev: Point, checks: u8, hi: usize) -> Option<Change> {
        let (rho, kappa) = (p.lat / prev.lat, p.conc / prev.conc);
        if !p.queueing() || kappa < 1.05 {
            // Nobody waits, or more room did not mean more work in flight:
            // the limit is not what holds callers back.
            return self.settle(p.lat);
        }
        let limit = if checks > 0 {
            ELASTICITY - PROBE_MARGIN
        } else {
            ELASTICITY
        };
        if elasticity(rho, kappa) > limit {
            let to = if checks > 0 {
                prev.limit
            } else {
                prev.limit + (self.target - prev.limit).div_ceil(2)
            };
            let why = format!("latency rose {rho:.2}x for {kappa:.2}x concurrency");
            return self.settle_at(to, why);
        }
        if checks > 1 {
            // A probe found flat once: measure it again before building on it.
            self.mode = Mode::Climb {
                prev,
                checks: checks - 1,
            };
            return None;
        }
        if self.target >= hi {
            return self.settle(p.lat);
        }
        let why =
            format!("callers queue with flat latency ({rho:.2}x for {kappa:.2}x concurrency)");
        self.step_up(p, 0, why, hi)
    }

    fn descend(&mut self, p: Point, prev: Point, lo: usize, hi: usize) -> Option<Change> {
        let (rho, kappa) = (p.lat / prev.lat, p.conc / prev.conc);
        if kappa > 0.95 {
            // Less room did not mean less work in flight: the latency is
            // not the pool's doing.
            return self.settle(p.lat);
        }
        if elasticity(rho, kappa) >= ELASTICITY {
            if self.target <= lo {
                return self.settle(p.lat);
            }
            let why = format!("latency fell {rho:.2}x with {kappa:.2}x concurrency; descending");
            return self.step_down(p, why, lo);
        }
        if p.queueing() && self.target < hi {
            let why = format!(
                "latency stayed flat ({rho:.2}x) as concurrency fell {kappa:.2}x; climbing"
            );
            return self.step_up(p, 0, why, hi);
        }
        self.settle(p.lat)
    }

    /// A step of at most `max_step` of the target, at least 1.
    fn step(&self) -> usize {
        ((self.target as f64 * self.cfg.max_step).floor() as usize).max(1)
    }

    fn step_up(&mut self, p: Point, checks: u8, reason: String, hi: usize) -> Option<Change> {
        let to = (self.target + self.step()).min(hi);
        self.mode = Mode::Climb { prev: p, checks };
        Some(self.change(to, reason))
    }

    fn step_down(&mut self, p: Point, reason: String, lo: usize) -> Option<Change> {
        let to = self.target.saturating_sub(self.step()).max(lo);
        self.mode = Mode::Descend { prev: p };
        Some(self.change(to, reason))
    }

    /// Settles at the current target with `lat` as its reference; no change.
    fn settle(&mut self, lat: f64) -> Option<Change> {
        self.mode = Mode::Settled {
            reference: lat,
            smoothed: lat,
            quiet: 0,
            mean: 0.0,
        };
        None
    }

    /// Moves to `to` and settles there (the next measurements make its reference).
    fn settle_at(&mut self, to: usize, reason: String) -> Option<Change> {
        self.mode = Mode::Settling { sum: 0.0, n: 0 };
        (to != self.target).then(|| self.change(to, reason))
    }

    fn change(&mut self, to: usize, reason: String) -> Change {
        let from = std::mem::replace(&mut self.target, to);
        self.skip = self.cfg.cooldown;
        self.acc = Sample::default();
        self.ticks = 0;
        Change { from, to, reason }
    }
}

#[cfg(test)]
mod tests;

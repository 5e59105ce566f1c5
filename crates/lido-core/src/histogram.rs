//! A lock-free log-linear latency histogram: an atomic increment per sample.
//!
//! hdrhistogram needs `&mut` to record, which would put a lock on every
//! acquire; this keeps 8 linear sub-buckets per power of two of microseconds
//! (≤ 12.5 % relative error), plenty for pool wait and hold times.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SUB: usize = 8;
const SUB_BITS: u32 = 3;
const POWERS: usize = 40;
const BUCKETS: usize = SUB + POWERS * SUB;

/// A point-in-time copy of a [`Histogram`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Non-empty buckets: (inclusive upper bound, samples), ascending.
    pub buckets: Vec<(Duration, u64)>,
    /// Samples in `buckets`.
    pub count: u64,
    /// Sum of all samples (may run slightly ahead of `buckets` under concurrent writes).
    pub sum: Duration,
}

/// A concurrent histogram of durations with microsecond resolution.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
}

fn index(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let msb = 63 - us.leading_zeros();
    let shift = msb - SUB_BITS;
    let sub = ((us >> shift) as usize) & (SUB - 1);
    let power = (shift as usize + 1).min(POWERS);
    (power * SUB + sub).min(BUCKETS - 1)
}

/// Upper bound (µs) of bucket `i`.
fn upper(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let power = i / SUB;
    let sub = (i % SUB) as u64;
    let shift = (power - 1) as u32;
    (((SUB as u64) | sub) << shift) + (1u64 << shift) - 1
}

impl Histogram {
    /// Records one duration.
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[index(us)].fetch_add(1, Ordering::Relaxed);
        if us == 0 {
            return;
        }
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        // Read first: the common case (not a new maximum) then writes nothing.
        if us > self.max_us.load(Ordering::Relaxed) {
            self.max_us.fetch_max(us, Ordering::Relaxed);
        }
    }

    /// Records a zero duration (a `get()` served without waiting): one atomic add.
    pub fn record_zero(&self) {
        self.buckets[0].fetch_add(1, Ordering::Relaxed);
    }

    /// Samples recorded (the buckets' sum; read at scrape time, so that
    /// recording is one or two atomic adds rather than three).
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Sum of all samples.
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_us.load(Ordering::Relaxed))
    }

    /// Largest sample.
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_us.load(Ordering::Relaxed))
    }

    /// The `q` quantile (0.0–1.0), as the upper bound of its bucket; zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        let total = self.count();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return Duration::from_micros(upper(i).min(self.max_us.load(Ordering::Relaxed)));
            }
        }
        self.max()
    }

    /// Every non-empty bucket as `(inclusive upper bound, count)`, in order,
    /// with the total count and sum read in the same pass: a consistent
    /// snapshot for exporters that want exact bucket edges.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets = self
            .buckets
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let c = b.load(Ordering::Relaxed);
                (c > 0).then(|| (Duration::from_micros(upper(i)), c))
            })
            .collect::<Vec<_>>();
        let count = buckets.iter().map(|(_, c)| c).sum();
        HistogramSnapshot {
            buckets,
            count,
            sum: self.sum(),
        }
    }

    /// Cumulative counts at the given upper bounds, for Prometheus-style buckets.
    pub fn cumulative(&self, bounds: &[Duration]) -> Vec<u64> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        bounds
            .iter()
            .map(|bound| {
                let us = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
                counts
                    .iter()
                    .enumerate()
                    .take_while(|(i, _)| upper(*i) <= us)
                    .map(|(_, c)| c)
                    .sum()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_cover_values() {
        let mut last = 0;
        for us in [0u64, 1, 7, 8, 9, 15, 16, 100, 1_000, 65_535, 1 << 30] {
            let i = index(us);
            assert!(i >= last);
            last = i;
            assert!(upper(i) >= us, "upper({i}) = {} < {us}", upper(i));
            assert!(upper(i) as f64 <= us as f64 * 1.125 + 1.0);
        }
    }

    #[test]
    fn quantiles_are_close() {
        let h = Histogram::default();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile(0.5).as_millis();
        let p99 = h.quantile(0.99).as_millis();
        assert!((50..=57).contains(&p50), "p50 {p50}");
        assert!((99..=100).contains(&p99), "p99 {p99}");
        assert_eq!(h.count(), 100);
        assert_eq!(h.max(), Duration::from_millis(100));
        let cum = h.cumulative(&[Duration::from_millis(10), Duration::from_secs(1)]);
        assert!(cum[0] >= 9 && cum[0] <= 11, "{cum:?}");
        assert_eq!(cum[1], 100);
    }
}

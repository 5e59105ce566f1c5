//! A lock-free log-linear latency histogram: an atomic increment per sample.
//!
//! hdrhistogram needs `&mut` to record, which would put a lock on every
//! acquire; this keeps 8 linear sub-buckets per power of two of microseconds
//! (≤ 12.5 % relative error), plenty for pool wait and hold times.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::stripe::Counter;

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
///
/// [`Histogram::default`] keeps one set of counters. [`Histogram::striped`]
/// keeps one per stripe of threads (8, about 21 KB in all), so threads on
/// different cores record without fighting over cache lines: for the few
/// histograms a pool records on every `get()` and return.
pub struct Histogram {
    shards: Box<[Shard]>,
    /// Striped histograms count [`record_zero`](Self::record_zero) here: a
    /// padded cell per stripe, so the commonest sample costs one uncontended add.
    zeros: Option<Box<Counter>>,
}

/// One set of counters. Aligned so two shards' sums never share a line.
#[repr(align(128))]
struct Shard {
    buckets: Box<[AtomicU64]>,
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl Shard {
    fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
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
        Self::with_shards(1)
    }
}

/// Whole microseconds, saturating (u64 arithmetic: `as_micros` divides in u128).
fn micros(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(d.subsec_micros()))
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
    /// A histogram with a shard per stripe of threads (see the type's docs).
    pub fn striped() -> Self {
        Self {
            zeros: Some(Box::default()),
            ..Self::with_shards(crate::stripe::STRIPES)
        }
    }

    fn with_shards(n: usize) -> Self {
        Self {
            shards: (0..n).map(|_| Shard::new()).collect(),
            zeros: None,
        }
    }

    /// Samples recorded with [`record_zero`](Self::record_zero).
    pub(crate) fn zeros(&self) -> u64 {
        match &self.zeros {
            Some(z) => z.get(),
            None => 0,
        }
    }

    fn mine(&self) -> &Shard {
        let n = self.shards.len();
        let i = if n == 1 {
            0
        } else {
            crate::stripe::current() % n
        };
        &self.shards[i]
    }

    /// Records one duration.
    pub fn record(&self, d: Duration) {
        let us = micros(d);
        let shard = self.mine();
        shard.buckets[index(us)].fetch_add(1, Ordering::Relaxed);
        if us == 0 {
            return;
        }
        shard.sum_us.fetch_add(us, Ordering::Relaxed);
        // Read first: the common case (not a new maximum) then writes nothing.
        if us > shard.max_us.load(Ordering::Relaxed) {
            shard.max_us.fetch_max(us, Ordering::Relaxed);
        }
    }

    /// Records a zero duration (a `get()` served without waiting): one atomic add.
    pub fn record_zero(&self) {
        match &self.zeros {
            Some(z) => z.bump(),
            None => {
                self.mine().buckets[0].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Samples in bucket `i`, over every shard.
    fn bucket(&self, i: usize) -> u64 {
        let zeros = if i == 0 { self.zeros() } else { 0 };
        self.shards
            .iter()
            .map(|s| s.buckets[i].load(Ordering::Relaxed))
            .sum::<u64>()
            + zeros
    }

    fn buckets(&self) -> impl Iterator<Item = u64> + '_ {
        (0..BUCKETS).map(|i| self.bucket(i))
    }

    /// Samples recorded (the buckets' sum; read at scrape time, so that
    /// recording is one or two atomic adds rather than three).
    pub fn count(&self) -> u64 {
        self.buckets().sum()
    }

    /// Sum of all samples.
    pub fn sum(&self) -> Duration {
        let us = self
            .shards
            .iter()
            .map(|s| s.sum_us.load(Ordering::Relaxed))
            .fold(0u64, u64::saturating_add);
        Duration::from_micros(us)
    }

    /// Largest sample.
    pub fn max(&self) -> Duration {
        let us = self
            .shards
            .iter()
            .map(|s| s.max_us.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        Duration::from_micros(us)
    }

    /// The `q` quantile (0.0–1.0), as the upper bound of its bucket; zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        let counts: Vec<u64> = self.buckets().collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let max = self.max();
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Duration::from_micros(upper(i)).min(max);
            }
        }
        max
    }

    /// Every non-empty bucket as `(inclusive upper bound, count)`, in order,
    /// with the total count and sum read in the same pass: a consistent
    /// snapshot for exporters that want exact bucket edges.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets = self
            .buckets()
            .enumerate()
            .filter(|(_, c)| *c > 0)
            .map(|(i, c)| (Duration::from_micros(upper(i)), c))
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
        let counts: Vec<u64> = self.buckets().collect();
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

    #[test]
    fn a_striped_histogram_merges_its_shards() {
        let h = std::sync::Arc::new(Histogram::striped());
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let h = std::sync::Arc::clone(&h);
                std::thread::spawn(move || {
                    for ms in 1..=100u64 {
                        h.record(Duration::from_millis(ms + t));
                    }
                    h.record_zero();
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(h.count(), 606);
        assert_eq!(h.max(), Duration::from_millis(105));
        assert_eq!(h.quantile(0.0), Duration::ZERO);
        let sum_ms: u64 = (0..6u64)
            .map(|t| (1..=100u64).map(|ms| ms + t).sum::<u64>())
            .sum();
        assert_eq!(h.sum(), Duration::from_millis(sum_ms));
        assert_eq!(h.snapshot().count, 606);
    }
}

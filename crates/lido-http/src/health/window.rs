//! Sliding windows over the pool's cumulative counters: a report judges what
//! happened in the last `window`, not since the pool started.

use std::collections::VecDeque;
use std::time::Duration;

use lido_core::Stats;
use tokio::time::Instant;

/// The counters the health checks take deltas of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counters {
    /// Successful `get()` calls.
    pub gets_ok: u64,
    /// `get()` calls that timed out.
    pub acquire_timeouts: u64,
    /// `get()` calls that failed otherwise.
    pub get_errors: u64,
    /// Connections opened.
    pub connects_ok: u64,
    /// Connect attempts that failed.
    pub connect_failures: u64,
    /// Leaks reported.
    pub leaks: u64,
}

impl Counters {
    pub fn read(stats: &Stats) -> Self {
        Self {
            gets_ok: stats.gets_direct() + stats.gets_waited(),
            acquire_timeouts: stats.acquire_timeouts(),
            get_errors: stats.get_errors(),
            connects_ok: stats.created(),
            connect_failures: stats.connect_failures(),
            leaks: stats.leaks(),
        }
    }

    /// `self - earlier`, field by field (never negative).
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            gets_ok: self.gets_ok.saturating_sub(earlier.gets_ok),
            acquire_timeouts: self
                .acquire_timeouts
                .saturating_sub(earlier.acquire_timeouts),
            get_errors: self.get_errors.saturating_sub(earlier.get_errors),
            connects_ok: self.connects_ok.saturating_sub(earlier.connects_ok),
            connect_failures: self
                .connect_failures
                .saturating_sub(earlier.connect_failures),
            leaks: self.leaks.saturating_sub(earlier.leaks),
        }
    }

    pub fn gets(&self) -> u64 {
        self.gets_ok + self.acquire_timeouts + self.get_errors
    }

    pub fn get_failures(&self) -> u64 {
        self.acquire_timeouts + self.get_errors
    }

    pub fn connects(&self) -> u64 {
        self.connects_ok + self.connect_failures
    }
}

/// The core counters plus each backend check's own (one list per check).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Sample {
    pub core: Counters,
    pub backend: Vec<Vec<u64>>,
}

impl Sample {
    /// `self - earlier`; a counter missing from `earlier` counts from zero.
    fn since(&self, earlier: &Self) -> Self {
        let backend = self
            .backend
            .iter()
            .enumerate()
            .map(|(i, now)| {
                let before = earlier.backend.get(i);
                now.iter()
                    .enumerate()
                    .map(|(j, n)| {
                        n.saturating_sub(before.and_then(|b| b.get(j)).copied().unwrap_or(0))
                    })
                    .collect()
            })
            .collect();
        Self {
            core: self.core.since(&earlier.core),
            backend,
        }
    }
}

/// Counter samples over the last `span`; [`Window::advance`] returns the
/// growth since the newest sample at least `span` old.
#[derive(Debug)]
pub(crate) struct Window {
    span: Duration,
    samples: VecDeque<(Instant, Sample)>,
}

/// A delta and how long it covers.
#[derive(Debug, Clone)]
pub(crate) struct Delta {
    pub counts: Counters,
    /// Each backend check's counters, grown over the window.
    pub backend: Vec<Vec<u64>>,
    /// `None` when the baseline is the pool's start (no earlier sample).
    pub covers: Option<Duration>,
}

impl Delta {
    /// Everything since the pool started.
    pub fn since_start(current: Sample) -> Self {
        Self {
            counts: current.core,
            backend: current.backend,
            covers: None,
        }
    }
}

impl Window {
    pub fn new(span: Duration) -> Self {
        Self {
            span,
            samples: VecDeque::new(),
        }
    }

    /// Records `current` at `now` and returns its growth over the window.
    pub fn advance(&mut self, now: Instant, current: Sample) -> Delta {
        while self.samples.len() >= 2 && now.duration_since(self.samples[1].0) >= self.span {
            self.samples.pop_front();
        }
        let delta = match self.samples.front() {
            Some((at, base)) => {
                let grown = current.since(base);
                Delta {
                    counts: grown.core,
                    backend: grown.backend,
                    covers: Some(now.duration_since(*at)),
                }
            }
            None => Delta::since_start(current.clone()),
        };
        self.samples.push_back((now, current));
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(n: u64) -> Sample {
        Sample {
            core: Counters {
                acquire_timeouts: n,
                ..Counters::default()
            },
            backend: vec![vec![n * 10]],
        }
    }

    #[tokio::test(start_paused = true)]
    async fn window_slides() {
        let mut w = Window::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let d = w.advance(t0, c(3));
        assert_eq!(
            d.counts.acquire_timeouts, 3,
            "first delta counts since start"
        );
        assert!(d.covers.is_none());
        let d = w.advance(t0 + Duration::from_secs(5), c(5));
        assert_eq!(d.counts.acquire_timeouts, 2);
        let d = w.advance(t0 + Duration::from_secs(12), c(6));
        assert_eq!(
            d.counts.acquire_timeouts, 3,
            "baseline still t0: t5 is younger than the span"
        );
        let d = w.advance(t0 + Duration::from_secs(16), c(6));
        assert_eq!(d.counts.acquire_timeouts, 1, "baseline moved to t5");
        assert_eq!(d.backend, vec![vec![10]], "backend counters slide too");
        assert_eq!(d.covers, Some(Duration::from_secs(11)));
        let d = w.advance(t0 + Duration::from_secs(40), c(6));
        assert_eq!(d.counts.acquire_timeouts, 0);
    }
}

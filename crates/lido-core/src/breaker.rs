//! The circuit breaker around connecting: closed → open → half-open → closed.
//!
//! The open period is short (`open_for`, 30 ms by default, jittered down by
//! up to a quarter): while the database is down, the pool fails callers fast
//! and lets one trial connect through per period, so it probes a few dozen
//! times a second in all, not once per caller, and serves again within one
//! period of the database coming back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::config::BreakerConfig;
use crate::error::ConnectFailure;

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Connects flow normally.
    Closed,
    /// Connecting failed repeatedly: `get()` fails fast unless a connection is idle.
    Open,
    /// Trial connects decide whether to close or reopen.
    HalfOpen,
}

impl BreakerState {
    /// A stable lowercase name (`closed`, `open`, `half_open`) for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Open,
            2 => Self::HalfOpen,
            _ => Self::Closed,
        }
    }
}

impl std::fmt::Display for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state change, reported to observers and counted in statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// State before.
    pub from: BreakerState,
    /// State after.
    pub to: BreakerState,
}

/// Whether a connect attempt may start.
pub(crate) enum Admission {
    Allowed { trial: bool },
    Rejected,
}

struct Inner<E> {
    state: BreakerState,
    consecutive: u32,
    window: VecDeque<(Instant, bool)>,
    open_until: Instant,
    trials: u32,
    last_error: Option<ConnectFailure<E>>,
}

pub(crate) struct Breaker<E> {
    cfg: BreakerConfig,
    state: AtomicU8,
    inner: Mutex<Inner<E>>,
}

impl<E> Breaker<E> {
    pub fn new(cfg: BreakerConfig) -> Self {
        Self {
            cfg,
            state: AtomicU8::new(0),
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                consecutive: 0,
                window: VecDeque::new(),
                open_until: Instant::now(),
                trials: 0,
                last_error: None,
            }),
        }
    }

    /// Current state, without locking.
    pub fn state(&self) -> BreakerState {
        BreakerState::from_u8(self.state.load(Ordering::Acquire))
    }

    fn set(&self, inner: &mut Inner<E>, to: BreakerState) -> Option<Transition> {
        let from = inner.state;
        if from == to {
            return None;
        }
        inner.state = to;
        self.state.store(to as u8, Ordering::Release);
        Some(Transition { from, to })
    }

    /// `Some((retry_in, last_error))` when a caller without an idle connection must fail fast.
    pub fn rejects_get(&self, now: Instant) -> Option<(Duration, Option<ConnectFailure<E>>)> {
        if self.state() != BreakerState::Open {
            return None;
        }
        let inner = self.inner.lock();
        if inner.state == BreakerState::Open && now < inner.open_until {
            return Some((inner.open_until - now, inner.last_error.clone()));
        }
        None
    }

    /// Asks to start a connect attempt.
    pub fn admit(&self, now: Instant) -> (Admission, Option<Transition>) {
        if !self.cfg.enabled {
            return (Admission::Allowed { trial: false }, None);
        }
        let mut inner = self.inner.lock();
        match inner.state {
            BreakerState::Closed => (Admission::Allowed { trial: false }, None),
            BreakerState::Open if now < inner.open_until => (Admission::Rejected, None),
            BreakerState::Open => {
                let t = self.set(&mut inner, BreakerState::HalfOpen);
                inner.trials = 1;
                (Admission::Allowed { trial: true }, t)
            }
            BreakerState::HalfOpen if inner.trials < self.cfg.half_open_trials => {
                inner.trials += 1;
                (Admission::Allowed { trial: true }, None)
            }
            BreakerState::HalfOpen => (Admission::Rejected, None),
        }
    }

    fn push(&self, inner: &mut Inner<E>, now: Instant, ok: bool) {
        inner.window.push_back((now, ok));
        while let Some((t, _)) = inner.window.front() {
            if now.duration_since(*t) > self.cfg.window {
                inner.window.pop_front();
            } else {
                break;
            }
        }
    }

    pub fn on_success(&self, now: Instant, trial: bool) -> Option<Transition> {
        let mut inner = self.inner.lock();
        inner.last_error = None;
        if !self.cfg.enabled {
            return None;
        }
        inner.consecutive = 0;
        if trial {
            inner.trials = inner.trials.saturating_sub(1);
        }
        if inner.state == BreakerState::HalfOpen {
            inner.window.clear();
            inner.trials = 0;
            return self.set(&mut inner, BreakerState::Closed);
        }
        self.push(&mut inner, now, true);
        None
    }

    pub fn on_failure(
        &self,
        now: Instant,
        err: ConnectFailure<E>,
        trial: bool,
    ) -> Option<Transition> {
        let mut inner = self.inner.lock();
        inner.last_error = Some(err);
        if !self.cfg.enabled {
            return None;
        }
        inner.consecutive += 1;
        if trial {
            inner.trials = inner.trials.saturating_sub(1);
        }
        self.push(&mut inner, now, false);
        let trip = match inner.state {
            BreakerState::HalfOpen => trial,
            BreakerState::Open => false,
            BreakerState::Closed => {
                let failed = inner.window.iter().filter(|(_, ok)| !ok).count();
                let calls = inner.window.len();
                inner.consecutive >= self.cfg.consecutive_failures
                    || (calls >= self.cfg.min_calls as usize
                        && failed as f64 / calls as f64 >= self.cfg.failure_rate)
            }
        };
        if !trip {
            return None;
        }
        inner.open_until = crate::time::add(now, open_period(self.cfg.open_for));
        inner.trials = 0;
        self.set(&mut inner, BreakerState::Open)
    }

    /// Time until a trial connect is allowed (zero unless open).
    pub fn retry_in(&self, now: Instant) -> Duration {
        let inner = self.inner.lock();
        match inner.state {
            BreakerState::Open => inner.open_until.saturating_duration_since(now),
            _ => Duration::ZERO,
        }
    }

    pub fn last_error(&self) -> Option<ConnectFailure<E>> {
        self.inner.lock().last_error.clone()
    }
}

/// How long one open period lasts: `open_for` less a random part of up to a
/// quarter of it, so pools that tripped together do not probe in step.
fn open_period(open_for: Duration) -> Duration {
    open_for.mul_f64(1.0 - 0.25 * fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail() -> ConnectFailure<std::io::Error> {
        ConnectFailure::Timeout(Duration::from_secs(1))
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_then_half_opens_and_closes() {
        let b = Breaker::new(BreakerConfig {
            consecutive_failures: 3,
            ..Default::default()
        });
        let t0 = Instant::now();
        assert!(b.on_failure(t0, fail(), false).is_none());
        assert!(b.on_failure(t0, fail(), false).is_none());
        let t = b.on_failure(t0, fail(), false).expect("trips");
        assert_eq!((t.from, t.to), (BreakerState::Closed, BreakerState::Open));
        assert!(b.rejects_get(t0).is_some());
        assert!(matches!(b.admit(t0).0, Admission::Rejected));
        let later = t0 + Duration::from_millis(35);
        assert!(b.rejects_get(later).is_none());
        let (adm, t) = b.admit(later);
        assert!(matches!(adm, Admission::Allowed { trial: true }));
        assert_eq!(t.map(|t| t.to), Some(BreakerState::HalfOpen));
        assert!(
            matches!(b.admit(later).0, Admission::Rejected),
            "one trial at a time"
        );
        let t = b.on_success(later, true).expect("closes");
        assert_eq!(t.to, BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_trial_reopens_and_rate_trips() {
        let b = Breaker::new(BreakerConfig {
            consecutive_failures: 100,
            min_calls: 4,
            failure_rate: 0.5,
            ..Default::default()
        });
        let t0 = Instant::now();
        b.on_success(t0, false);
        b.on_failure(t0, fail(), false);
        b.on_success(t0, false);
        let t = b.on_failure(t0, fail(), false).expect("rate trips at 2/4");
        assert_eq!(t.to, BreakerState::Open);
        let later = t0 + Duration::from_secs(1);
        b.admit(later);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let t = b.on_failure(later, fail(), true).expect("reopens");
        assert_eq!(t.to, BreakerState::Open);
        assert!(b.retry_in(later) > Duration::ZERO);
    }

    #[test]
    fn open_periods_are_jittered_within_the_last_quarter_below_open_for() {
        let open_for = Duration::from_millis(40);
        let periods: Vec<Duration> = (0..200).map(|_| open_period(open_for)).collect();
        assert!(periods
            .iter()
            .all(|p| *p <= open_for && *p >= open_for.mul_f64(0.75)));
        let distinct: std::collections::HashSet<_> = periods.iter().collect();
        assert!(distinct.len() > 100, "jitter spreads the periods");
    }
}

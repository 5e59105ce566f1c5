//! Whether a replica takes reads: out at once when it fails its probe or
//! lags past a threshold, back in only after it has been healthy for a
//! hold-down period (hysteresis: a replica hovering at the threshold does
//! not flap in and out).

use std::time::{Duration, Instant};

/// One replica's place in the read rotation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rotation {
    in_rotation: bool,
    /// Since when it has been healthy while out.
    healthy_since: Option<Instant>,
    /// Whether it has been judged at all (a healthy replica joins at once
    /// on the first round: there is nothing to flap from).
    judged: bool,
}

/// What a round of probing found, for one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Answered and within every lag threshold.
    Healthy,
    /// Failed its probe, is not a replica, or lags too far.
    Unhealthy,
}

impl Rotation {
    /// Applies a round's verdict at `now`; returns whether the replica
    /// changed sides (for logs and counters); joining on the very first
    /// round is not a change.
    pub(crate) fn judge(&mut self, verdict: Verdict, now: Instant, hold_down: Duration) -> bool {
        let was = self.in_rotation;
        let first = !self.judged;
        self.judged = true;
        match verdict {
            Verdict::Unhealthy => {
                self.in_rotation = false;
                self.healthy_since = None;
            }
            Verdict::Healthy if self.in_rotation => {}
            Verdict::Healthy => {
                let since = *self.healthy_since.get_or_insert(now);
                if first || now.saturating_duration_since(since) >= hold_down {
                    self.in_rotation = true;
                    self.healthy_since = None;
                }
            }
        }
        was != self.in_rotation && !first
    }

    /// Whether it takes reads.
    pub(crate) fn in_rotation(&self) -> bool {
        self.in_rotation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::{Healthy, Unhealthy};

    const HOLD: Duration = Duration::from_secs(1);

    #[test]
    fn healthy_at_start_joins_at_once() {
        let mut r = Rotation::default();
        assert!(
            !r.judge(Healthy, Instant::now(), HOLD),
            "not counted as a return"
        );
        assert!(r.in_rotation());
    }

    #[test]
    fn leaves_at_once_and_returns_after_the_hold_down() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut r = Rotation::default();
        r.judge(Healthy, t0, HOLD);
        assert!(r.judge(Unhealthy, t0 + ms(100), HOLD));
        assert!(!r.in_rotation());
        assert!(!r.judge(Healthy, t0 + ms(200), HOLD));
        assert!(
            !r.judge(Healthy, t0 + ms(1100), HOLD),
            "only 900 ms healthy"
        );
        assert!(r.judge(Healthy, t0 + ms(1200), HOLD));
        assert!(r.in_rotation());
    }

    #[test]
    fn hovering_at_the_threshold_does_not_flap() {
        let t0 = Instant::now();
        let mut r = Rotation::default();
        r.judge(Unhealthy, t0, HOLD);
        let mut changes = 0;
        for i in 1..100u64 {
            let verdict = if i % 3 == 0 { Unhealthy } else { Healthy };
            if r.judge(verdict, t0 + Duration::from_millis(150 * i), HOLD) {
                changes += 1;
            }
        }
        assert_eq!(
            changes, 0,
            "never healthy for a whole hold-down, never back in"
        );
    }
}

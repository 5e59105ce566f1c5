//! How far behind a replica is in time, measured by the monitor itself: the
//! primary's WAL position is sampled every round, so the age of the oldest
//! sample a replica has not replayed yet is its lag (to within one round).
//! This needs no clock agreement between servers, and an idle primary never
//! looks like lag (`pg_last_xact_replay_timestamp()` does: it is the time
//! of the last commit replayed, however long ago that was).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::cluster::lsn::Lsn;

/// The primary's WAL positions of recent rounds, oldest first.
#[derive(Debug, Default)]
pub(crate) struct PrimaryHistory {
    samples: VecDeque<(Instant, Lsn)>,
}

/// Samples kept: at the default 150 ms round, about 40 s.
const KEEP: usize = 256;

impl PrimaryHistory {
    /// Adds the primary's position read at `at`.
    pub(crate) fn push(&mut self, at: Instant, lsn: Lsn) {
        if let Some(&(_, last)) = self.samples.back() {
            if lsn < last {
                // A new primary (failover) with a lower position: the old
                // history says nothing about it.
                self.samples.clear();
            }
        }
        if self.samples.len() == KEEP {
            self.samples.pop_front();
        }
        self.samples.push_back((at, lsn));
    }

    /// The latest sample.
    #[cfg(test)]
    pub(crate) fn latest(&self) -> Option<(Instant, Lsn)> {
        self.samples.back().copied()
    }

    /// How long ago the primary first held WAL that a replica at `replay`
    /// has not replayed: zero when it has replayed the latest sample; at
    /// least the age of the oldest sample when it is behind all of them.
    pub(crate) fn lag(&self, replay: Lsn, now: Instant) -> Duration {
        self.samples
            .iter()
            .find(|&&(_, lsn)| lsn > replay)
            .map_or(Duration::ZERO, |&(at, _)| now.saturating_duration_since(at))
    }

    /// Forgets everything (no primary known).
    pub(crate) fn clear(&mut self) {
        self.samples.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_age_of_the_oldest_unreplayed_sample() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut h = PrimaryHistory::default();
        h.push(t0, Lsn(100));
        h.push(t0 + ms(150), Lsn(200));
        h.push(t0 + ms(300), Lsn(300));
        let now = t0 + ms(400);
        assert_eq!(h.lag(Lsn(300), now), Duration::ZERO);
        assert_eq!(h.lag(Lsn(250), now), ms(100));
        assert_eq!(h.lag(Lsn(150), now), ms(250));
        assert_eq!(h.lag(Lsn(0), now), ms(400));
    }

    #[test]
    fn an_idle_primary_shows_no_lag() {
        let t0 = Instant::now();
        let mut h = PrimaryHistory::default();
        for i in 0..10 {
            h.push(t0 + Duration::from_secs(i), Lsn(500));
        }
        assert_eq!(
            h.lag(Lsn(500), t0 + Duration::from_secs(60)),
            Duration::ZERO
        );
    }

    #[test]
    fn a_lower_position_starts_over() {
        let t0 = Instant::now();
        let mut h = PrimaryHistory::default();
        h.push(t0, Lsn(900));
        h.push(t0 + Duration::from_millis(10), Lsn(400));
        assert_eq!(h.latest(), Some((t0 + Duration::from_millis(10), Lsn(400))));
        assert_eq!(h.lag(Lsn(400), t0 + Duration::from_secs(1)), Duration::ZERO);
    }
}

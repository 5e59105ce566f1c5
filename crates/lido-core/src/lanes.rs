//! [`LaneLimits`]: capacity per [`Priority`] lane — connections a lane keeps
//! for itself (lower lanes never take them) and the most a lane may hold —
//! and [`Held`], the per-lane lease counts the pool's state checks them
//! against.

use std::time::Duration;

use crate::error::BuildError;
use crate::waiters::Priority;

/// Capacity per priority lane. Off by default (no reservation, no cap):
/// lanes then only order waiters.
///
/// `reserved[lane]` connections are kept for that lane and the ones above
/// it: lower lanes never take them. `max_share[lane]` caps what one lane
/// may hold at once, as a share of `max_size`. A returned connection goes
/// to the oldest waiter of the highest lane that is within its limits;
/// waiters stay first come, first served within a lane.
///
/// Lending ([`lend`](Self::lend), off by default): reserved connections
/// that sit idle may be lent to lower lanes (share caps still hold). When a
/// waiter of a higher lane has waited `preempt_after` and nothing else can
/// serve it, the pool asks the backend to stop the call running on the
/// lowest-lane lent lease (PostgreSQL cancels it on the server and the
/// caller gets `PgError::Preempted`); that connection is closed when its
/// lease ends, never handed on with a cancel still in flight.
///
/// ```
/// use lido_core::{Config, LaneLimits, Priority};
/// let cfg = Config {
///     max_size: 20,
///     // 4 connections only Critical may take; Background at most a quarter.
///     lanes: LaneLimits::default()
///         .reserve(Priority::Critical, 4)
///         .max_share(Priority::Background, 0.25),
///     ..Config::default()
/// };
/// assert!(cfg.validate().is_ok());
/// assert_eq!(cfg.lanes.limit(Priority::Normal, cfg.max_size), 16);
/// assert_eq!(cfg.lanes.limit(Priority::Background, cfg.max_size), 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct LaneLimits {
    /// Connections kept per lane (index: `Priority as usize`), which lanes
    /// below it never take.
    pub reserved: [usize; 3],
    /// Most a lane may hold at once, as a share of `max_size` in (0.0, 1.0]
    /// (at least one connection); `None`: no cap of its own.
    pub max_share: [Option<f64>; 3],
    /// Lending: `Some(budget)` lends idle reserved connections to lower
    /// lanes and preempts a lent call once a higher-lane waiter has waited
    /// `budget`; `None` (default): reserves are never lent.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub preempt_after: Option<Duration>,
}

impl LaneLimits {
    /// Keeps `n` connections for `lane` (and the lanes above it).
    pub fn reserve(mut self, lane: Priority, n: usize) -> Self {
        self.reserved[lane as usize] = n;
        self
    }

    /// Caps `lane` at `share` of `max_size`.
    pub fn max_share(mut self, lane: Priority, share: f64) -> Self {
        self.max_share[lane as usize] = Some(share);
        self
    }

    /// Lends idle reserved connections to lower lanes, and preempts the
    /// lowest-lane lent call once a higher-lane waiter has waited `budget`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use lido_core::{LaneLimits, Priority};
    /// let lanes = LaneLimits::default()
    ///     .reserve(Priority::Critical, 2)
    ///     .lend(Duration::from_millis(20));
    /// assert_eq!(lanes.preempt_after, Some(Duration::from_millis(20)));
    /// ```
    pub fn lend(mut self, budget: Duration) -> Self {
        self.preempt_after = Some(budget);
        self
    }

    /// Whether any limit is set.
    pub fn is_active(&self) -> bool {
        self.reserved.iter().any(|&r| r > 0) || self.max_share.iter().any(Option::is_some)
    }

    /// The lane's own cap for a pool of `max_size`.
    fn own_cap(&self, lane: usize, max_size: usize) -> usize {
        match self.max_share[lane] {
            Some(share) => ((share * max_size as f64).floor() as usize).max(1),
            None => usize::MAX,
        }
    }

    /// What `lane` and the lanes below it may hold together: `max_size`
    /// less what the lanes above keep.
    fn room_from(&self, lane: usize, max_size: usize) -> usize {
        max_size.saturating_sub(self.reserved[..lane].iter().sum())
    }

    /// The most `lane` can hold when the other lanes hold nothing.
    pub fn limit(&self, lane: Priority, max_size: usize) -> usize {
        let i = lane as usize;
        self.own_cap(i, max_size).min(self.room_from(i, max_size))
    }

    /// Whether `lane` may take one more connection when `held[i]` are held
    /// by lane `i` (`Priority as usize`) in a pool of `max_size`: the rule
    /// the pool applies (with lending on, borrowing a higher lane's reserve
    /// included), for callers that queue work of their own (such as
    /// lido-sqlite's reader threads) before they lease.
    ///
    /// ```
    /// use lido_core::{LaneLimits, Priority};
    /// let l = LaneLimits::default().reserve(Priority::Critical, 2);
    /// assert!(!l.admits(&[0, 8, 0], Priority::Normal, 10));
    /// assert!(l.admits(&[0, 8, 0], Priority::Critical, 10));
    /// ```
    pub fn admits(&self, held: &[usize; 3], lane: Priority, max_size: usize) -> bool {
        Held(*held).admits(lane, self, max_size)
    }

    /// Checks the limits against `max_size`: shares in (0, 1], and every
    /// lane left at least one connection.
    pub(crate) fn validate(&self, max_size: usize) -> Result<(), BuildError> {
        for share in self.max_share.iter().flatten() {
            if !(*share > 0.0 && *share <= 1.0) {
                return Err(BuildError::OutOfRange {
                    field: "lanes.max_share",
                    value: *share,
                    range: "above 0.0, at most 1.0",
                });
            }
        }
        for lane in Priority::ALL {
            if self.room_from(lane as usize, max_size) == 0 {
                return Err(BuildError::Lanes(format!(
                    "the lanes above {lane:?} reserve all {max_size} connections (max_size): \
                     {lane:?} could never get one; reserve less or raise max_size"
                )));
            }
        }
        Ok(())
    }
}

/// Leases held now, per lane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Held([usize; 3]);

impl Held {
    pub(crate) fn add(&mut self, lane: Priority) {
        self.0[lane as usize] += 1;
    }

    pub(crate) fn remove(&mut self, lane: Priority) {
        let n = &mut self.0[lane as usize];
        *n = n.saturating_sub(1);
    }

    /// Every lane's count.
    pub(crate) fn all(&self) -> [usize; 3] {
        self.0
    }

    /// Leases held in all lanes.
    pub(crate) fn total(&self) -> usize {
        self.0[0] + self.0[1] + self.0[2]
    }

    /// Whether `lane` may take one more connection: within the limits, or
    /// borrowed from a higher lane's reserve when lending is on.
    pub(crate) fn admits(&self, lane: Priority, limits: &LaneLimits, max_size: usize) -> bool {
        self.may_take(lane, limits, max_size) || self.may_borrow(lane, limits, max_size)
    }

    /// Whether `lane` may borrow one more connection: lending is on, the
    /// lane is within its own cap and the pool has one to spare (the
    /// reserves of the lanes above it lent out).
    pub(crate) fn may_borrow(&self, lane: Priority, limits: &LaneLimits, max_size: usize) -> bool {
        let i = lane as usize;
        limits.preempt_after.is_some()
            && self.0[i] < limits.own_cap(i, max_size)
            && self.0.iter().sum::<usize>() < max_size
    }

    /// Whether `lane` may take one more connection under `limits` in a pool
    /// of `max_size`: within its own cap, and, for it and every lane above,
    /// what those lanes and the ones below hold stays within the room the
    /// lanes further up leave.
    pub(crate) fn may_take(&self, lane: Priority, limits: &LaneLimits, max_size: usize) -> bool {
        let i = lane as usize;
        if self.0[i] >= limits.own_cap(i, max_size) {
            return false;
        }
        (0..=i).all(|x| self.0[x..].iter().sum::<usize>() < limits.room_from(x, max_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Priority::{Background, Critical, Normal};

    #[test]
    fn without_limits_any_lane_takes_while_the_pool_has_room() {
        let l = LaneLimits::default();
        let mut h = Held::default();
        for _ in 0..9 {
            h.add(Background);
        }
        assert!(h.may_take(Background, &l, 10));
        h.add(Normal);
        assert!(!h.may_take(Critical, &l, 10), "all 10 held");
    }

    #[test]
    fn reserved_connections_are_never_taken_by_lower_lanes() {
        let l = LaneLimits::default()
            .reserve(Critical, 2)
            .reserve(Normal, 1);
        let mut h = Held::default();
        for _ in 0..7 {
            assert!(h.may_take(Background, &l, 10));
            h.add(Background);
        }
        assert!(
            !h.may_take(Background, &l, 10),
            "3 are kept for the lanes above"
        );
        assert!(h.may_take(Normal, &l, 10));
        h.add(Normal);
        assert!(!h.may_take(Normal, &l, 10), "2 are kept for Critical");
        assert!(h.may_take(Critical, &l, 10));
        h.add(Critical);
        h.add(Critical);
        assert!(!h.may_take(Critical, &l, 10));
    }

    #[test]
    fn a_share_caps_one_lane() {
        let l = LaneLimits::default().max_share(Background, 0.25);
        let mut h = Held::default();
        for _ in 0..5 {
            h.add(Background);
        }
        assert!(!h.may_take(Background, &l, 20));
        assert!(h.may_take(Normal, &l, 20));
        assert_eq!(l.limit(Background, 3), 1, "at least one");
    }

    #[test]
    fn limits_that_starve_a_lane_are_refused() {
        let l = LaneLimits::default().reserve(Critical, 10);
        let e = l.validate(10).expect_err("refused").to_string();
        assert!(e.contains("Normal could never get one"), "{e}");
        assert!(LaneLimits::default()
            .max_share(Normal, 0.0)
            .validate(10)
            .is_err());
        assert!(LaneLimits::default()
            .reserve(Critical, 9)
            .validate(10)
            .is_ok());
    }
}

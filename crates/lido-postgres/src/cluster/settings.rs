//! A cluster's routing settings and the [`Fallback`] policy.

use std::time::Duration;

/// What a read does when no replica qualifies (all down, lagging past the
/// thresholds, or behind the session's last write). Never a silent "take
/// every replica back": a replica out of rotation stays out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fallback {
    /// Read on the primary, at most `max_in_flight` such reads at once
    /// (`None`: half the primary pool's `max_size`, at least 1); more wait
    /// for one to finish, up to the pool's acquire timeout.
    Primary {
        /// The cap on fallback reads the primary takes at once.
        max_in_flight: Option<usize>,
    },
    /// Read on a replica that is up and at most `max_lag` behind, even
    /// though it is out of rotation; fail when none is. A read that must
    /// see its session's own writes still goes to the primary.
    Stale {
        /// The staleness the caller accepts.
        max_lag: Duration,
    },
    /// Fail with [`ClusterError::NoReplica`](crate::cluster::ClusterError::NoReplica),
    /// which names each replica and why it does not qualify.
    Fail,
}

impl Default for Fallback {
    fn default() -> Self {
        Fallback::Primary {
            max_in_flight: None,
        }
    }
}

/// Everything the builder sets besides the nodes.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) interval: Duration,
    pub(crate) probe_timeout: Duration,
    pub(crate) max_lag_bytes: u64,
    pub(crate) max_lag: Duration,
    pub(crate) hold_down: Duration,
    pub(crate) fallback: Fallback,
    pub(crate) ryw_wait: Duration,
    pub(crate) primary_wait: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            interval: Duration::from_millis(150),
            probe_timeout: Duration::from_millis(500),
            max_lag_bytes: 16 << 20,
            max_lag: Duration::from_secs(1),
            hold_down: Duration::from_secs(1),
            fallback: Fallback::default(),
            ryw_wait: Duration::from_millis(20),
            primary_wait: Duration::from_secs(2),
        }
    }
}

impl Settings {
    /// The next wait between rounds: the interval ±20 %.
    pub(crate) fn next_wait(&self) -> Duration {
        self.interval.mul_f64(0.8 + 0.4 * fastrand::f64())
    }
}

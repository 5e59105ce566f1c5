//! [`AdaptiveConfig`]: adaptive sizing's settings and their validation.

use std::time::Duration;

use crate::error::BuildError;

/// Adaptive sizing settings (`Config::adaptive`; off when `None`).
///
/// ```
/// use std::time::Duration;
/// use lido_core::{AdaptiveConfig, Config};
/// let cfg = Config {
///     max_size: 64,
///     adaptive: Some(AdaptiveConfig {
///         min: 2,
///         max: 64,
///         interval: Duration::from_millis(250),
///         ..AdaptiveConfig::default()
///     }),
///     ..Config::default()
/// };
/// assert!(cfg.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct AdaptiveConfig {
    /// Smallest target (at least 1, at least `min_idle`).
    pub min: usize,
    /// Largest target (at most `max_size`; `Pool::resize` lowers it further).
    pub max: usize,
    /// How often the pool's signals are sampled.
    #[cfg_attr(feature = "serde", serde(with = "humantime_serde"))]
    pub interval: Duration,
    /// Weight (0.0, 1.0] of the newest measurement in the smoothed latency
    /// the settled pool watches (1.0: no smoothing).
    pub smoothing: f64,
    /// Relative latency change (0.0, 1.0] a settled pool treats as noise.
    pub tolerance: f64,
    /// Largest step, as a fraction (0.0, 1.0] of the current target (every step is at least 1).
    pub max_step: f64,
    /// Samples skipped after each change before measuring again.
    pub cooldown: u32,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        Self {
            min: 1,
            max: 10,
            interval: Duration::from_millis(500),
            smoothing: 0.5,
            tolerance: 0.25,
            max_step: 0.5,
            cooldown: 1,
        }
    }
}

fn bad(msg: String) -> BuildError {
    BuildError::Adaptive(msg)
}

impl AdaptiveConfig {
    /// Checks the settings against the pool's `max_size` and `min_idle`.
    pub(crate) fn validate(&self, max_size: usize, min_idle: usize) -> Result<(), BuildError> {
        if self.min == 0 || self.min > self.max {
            return Err(bad(format!(
                "min ({}) must be at least 1 and at most max ({})",
                self.min, self.max
            )));
        }
        if self.max > max_size {
            return Err(bad(format!(
                "max ({}) must not exceed max_size ({max_size})",
                self.max
            )));
        }
        if self.min < min_idle {
            return Err(bad(format!(
                "min ({}) must be at least min_idle ({min_idle}), or the pool would close \
                 and reopen the idle connections it keeps",
                self.min
            )));
        }
        if self.interval < Duration::from_millis(10) {
            return Err(bad(format!(
                "interval ({:?}) must be at least 10ms",
                self.interval
            )));
        }
        for (field, v) in [
            ("smoothing", self.smoothing),
            ("tolerance", self.tolerance),
            ("max_step", self.max_step),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(bad(format!(
                    "{field} = {v} is out of range: use above 0.0, at most 1.0"
                )));
            }
        }
        Ok(())
    }
}

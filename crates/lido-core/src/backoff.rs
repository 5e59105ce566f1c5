//! Capped full-jitter exponential backoff ("Exponential Backoff And Jitter", AWS, 2015).

use std::time::Duration;

use crate::config::RetryConfig;

/// The ceiling before attempt `attempt + 1`: `min(cap, base * 2^(attempt-1))`.
pub fn ceiling(cfg: &RetryConfig, attempt: u32) -> Duration {
    let shift = attempt.saturating_sub(1).min(31);
    let factor = 1u32 << shift;
    cfg.base.saturating_mul(factor).min(cfg.cap)
}

/// A random delay in `[0, ceiling]` (full jitter) to sleep after failed attempt `attempt`.
pub fn delay(cfg: &RetryConfig, attempt: u32) -> Duration {
    let ceil = ceiling(cfg, attempt);
    let nanos = u64::try_from(ceil.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        let cfg = RetryConfig {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(100),
            max_attempts: 10,
        };
        let got: Vec<u128> = (1..=6).map(|a| ceiling(&cfg, a).as_millis()).collect();
        assert_eq!(got, vec![10, 20, 40, 80, 100, 100]);
        assert_eq!(ceiling(&cfg, 1000), Duration::from_millis(100));
    }

    #[test]
    fn delay_stays_within_ceiling_and_varies() {
        let cfg = RetryConfig::default();
        let samples: Vec<Duration> = (0..200).map(|_| delay(&cfg, 3)).collect();
        assert!(samples.iter().all(|d| *d <= ceiling(&cfg, 3)));
        let distinct: std::collections::HashSet<_> = samples.iter().collect();
        assert!(distinct.len() > 100, "full jitter spreads delays");
    }
}

//! Deadline arithmetic that never panics: `Instant + Duration` overflows on
//! huge durations (`Duration::MAX` as "forever"), so deadlines saturate at a
//! far-future instant instead.

use std::time::Duration;

use tokio::time::Instant;

/// About thirty years: later than any deadline a pool will live to see.
const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// `at + d`, capped at thirty years from `at`. (Should even that overflow,
/// for an `Instant` within thirty years of its maximum, which no clock
/// reaches, `at` itself is returned rather than panicking.)
pub(crate) fn add(at: Instant, d: Duration) -> Instant {
    at.checked_add(d.min(FAR)).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_saturate() {
        let now = Instant::now();
        assert_eq!(
            add(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert!(add(now, Duration::MAX) > now + Duration::from_secs(365 * 24 * 3600));
    }
}

//! How the checks turn numbers into observations: percentages, counts and
//! rates judged against a [`Threshold`], with the reason's wording.

use std::time::Duration;

use super::config::Threshold;
use super::report::Observation;
use super::status::Status;

/// Milliseconds as a JSON-friendly float rounded to microseconds.
pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

pub(crate) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 * 1e4 / whole as f64).round() / 100.0
}

/// A count judged against `t`, reported as an integer.
pub(crate) fn count(n: u64, unit: &str, t: Threshold, why: String) -> Observation {
    let mut o = Observation::judged(n as f64, unit, t, why);
    o.value = Some(n.into());
    o
}

pub(crate) fn level(t: &Threshold, s: Status) -> String {
    t.level(s).map(|l| format!(" (>= {l})")).unwrap_or_default()
}

/// "in the last 60 s", or "since the pool started" without a baseline.
pub(crate) fn window_text(covers: Option<Duration>) -> String {
    match covers {
        Some(c) => format!("in the last {:.0} s", c.as_secs_f64()),
        None => "since the pool started".to_owned(),
    }
}

/// `failed` of `total` as a percentage judged against `t` (passes below `min` attempts).
pub(crate) fn rate(
    t: Threshold,
    min: u64,
    failed: u64,
    total: u64,
    what: &str,
    covers: Option<Duration>,
) -> Observation {
    let v = percent(failed, total);
    let when = window_text(covers);
    if total < min {
        let why =
            format!("{failed} of {total} {what} failed {when}; fewer than {min}, too few to judge");
        return Observation::pass()
            .value(v, "percent")
            .output(why)
            .threshold(t);
    }
    let s = t.judge(v);
    let why = format!("{failed} of {total} {what} failed {when}{}", level(&t, s));
    Observation::judged(v, "percent", t, why)
}

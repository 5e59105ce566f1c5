//! `application/health+json` (draft-inadarei-api-health-check) serialization
//! and RFC 3339 timestamps without a date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::health::{Check, HealthReport, Probe, Status};

/// The media type of health documents.
pub const HEALTH_JSON: &str = "application/health+json";

/// `time` as RFC 3339 in UTC with milliseconds, e.g. `2025-01-31T08:05:09.042Z`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
/// assert_eq!(lido_http::rfc3339(t), "2023-11-14T22:13:20.123Z");
/// ```
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to a (year, month, day) of the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn check_json(c: &Check) -> Value {
    let mut o = Map::new();
    if let Some(id) = &c.component_id {
        o.insert("componentId".into(), id.clone().into());
    }
    o.insert("componentType".into(), c.component_type.clone().into());
    if let Some(v) = &c.observed_value {
        o.insert("observedValue".into(), v.clone());
    }
    if let Some(u) = &c.observed_unit {
        o.insert("observedUnit".into(), u.clone().into());
    }
    o.insert("status".into(), c.status.as_str().into());
    if let Some(t) = c.threshold.as_ref().filter(|t| t.is_set()) {
        o.insert(
            "threshold".into(),
            serde_json::to_value(t).unwrap_or_default(),
        );
    }
    o.insert("time".into(), rfc3339(c.time).into());
    // The draft says output SHOULD be omitted for `pass`; lido keeps the
    // one-line reason on every check (what was measured against what), as
    // operators reading a passing report want to see why it passed.
    if !c.output.is_empty() {
        o.insert("output".into(), c.output.clone().into());
    }
    Value::Object(o)
}

/// `checks`: entries grouped under their `component:measurement` key, in first-seen order.
fn checks_json(checks: &[Check]) -> Value {
    let mut map = Map::new();
    for c in checks {
        let entry = map
            .entry(c.key.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(check_json(c));
        }
    }
    Value::Object(map)
}

fn put(o: &mut Map<String, Value>, key: &str, v: &Option<String>) {
    if let Some(v) = v {
        o.insert(key.into(), v.clone().into());
    }
}

impl HealthReport {
    /// The health+json document.
    ///
    /// ```
    /// use lido_http::{HealthReport, Observation, ServiceInfo};
    /// let check = Observation::warn("slow")
    ///     .value(250.0, "ms")
    ///     .into_check("db:responseTime", Some("primary"), "datastore");
    /// let report = HealthReport::new(vec![check], Default::default(), ServiceInfo::default());
    /// let json = report.to_json();
    /// assert_eq!(json["status"], "warn");
    /// assert_eq!(json["checks"]["db:responseTime"][0]["observedValue"], 250.0);
    /// ```
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("status".into(), self.status.as_str().into());
        put(&mut o, "version", &self.service.version);
        put(&mut o, "releaseId", &self.service.release_id);
        put(&mut o, "serviceId", &self.service.service_id);
        put(&mut o, "description", &self.service.description);
        if self.status != Status::Pass {
            o.insert("output".into(), self.summary().into());
        }
        o.insert("time".into(), rfc3339(self.time).into());
        o.insert("checks".into(), checks_json(&self.checks));
        Value::Object(o)
    }
}

impl Probe {
    /// The health+json document of the probe.
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("status".into(), self.status.as_str().into());
        if self.status != Status::Pass {
            o.insert("output".into(), self.summary().into());
        }
        o.insert("checks".into(), checks_json(&self.checks));
        Value::Object(o)
    }
}

impl serde::Serialize for HealthReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl serde::Serialize for Probe {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_dates() {
        let at = |s: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59.000Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00.000Z");
        assert_eq!(at(253_402_300_799), "9999-12-31T23:59:59.000Z");
    }
}

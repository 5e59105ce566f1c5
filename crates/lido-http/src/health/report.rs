//! What health checks produce: [`Check`], [`HealthReport`], [`Probe`]
//! (with a [`Status`] each).

use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::config::{Limits, ServiceInfo, Threshold};
use super::status::Status;

/// One measurement: an entry under `checks` in the health+json document.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The `checks` key, `component:measurement` (e.g. `database:responseTime`).
    pub key: String,
    /// `componentId`: the pool's name, when the check is about a pool.
    pub component_id: Option<String>,
    /// `componentType`: `datastore`, `component` or `system`.
    pub component_type: String,
    /// `observedValue`.
    pub observed_value: Option<Value>,
    /// `observedUnit`.
    pub observed_unit: Option<String>,
    /// The verdict.
    pub status: Status,
    /// The levels the value was judged against (an extension field).
    pub threshold: Option<Limits>,
    /// `output`: one line saying why.
    pub output: String,
    /// `time`: when it was measured.
    pub time: SystemTime,
}

/// What a custom check observed: status, value, unit, threshold and reason.
///
/// ```
/// use lido_http::{Observation, Status};
/// let o = Observation::warn("replication lag high").value(12.5, "s");
/// assert_eq!(o.status, Status::Warn);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observation {
    /// The verdict.
    pub status: Status,
    /// The observed value.
    pub value: Option<Value>,
    /// Its unit.
    pub unit: Option<String>,
    /// The levels it was judged against.
    pub threshold: Option<Limits>,
    /// One line saying why.
    pub output: String,
}

impl Observation {
    /// A passing observation.
    pub fn pass() -> Self {
        Self::default()
    }

    /// A warning with its reason.
    pub fn warn(output: impl Into<String>) -> Self {
        Self::with(Status::Warn, output)
    }

    /// A failure with its reason.
    pub fn fail(output: impl Into<String>) -> Self {
        Self::with(Status::Fail, output)
    }

    /// An observation with `status` and `output`.
    pub fn with(status: Status, output: impl Into<String>) -> Self {
        Self {
            status,
            output: output.into(),
            ..Self::default()
        }
    }

    /// Judges `value` against `threshold` (status and levels set from it).
    pub fn judged(value: f64, unit: &str, threshold: Threshold, output: impl Into<String>) -> Self {
        Self {
            status: threshold.judge(value),
            threshold: Some(threshold.into()),
            output: output.into(),
            ..Self::default()
        }
        .value(value, unit)
    }

    /// Sets the observed value and unit.
    pub fn value(mut self, value: impl Into<Value>, unit: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self.unit = Some(unit.into());
        self
    }

    /// Sets the levels the value was judged against (the status is left as
    /// is): a numeric [`Threshold`] or the [`Limits::States`] that warn and fail.
    pub fn threshold(mut self, threshold: impl Into<Limits>) -> Self {
        self.threshold = Some(threshold.into());
        self
    }

    /// Sets the reason.
    pub fn output(mut self, output: impl Into<String>) -> Self {
        self.output = output.into();
        self
    }

    /// The report entry under `key` (`component:measurement`), measured now.
    pub fn into_check(self, key: &str, component_id: Option<&str>, component_type: &str) -> Check {
        Check {
            key: key.to_owned(),
            component_id: component_id.map(str::to_owned),
            component_type: component_type.to_owned(),
            observed_value: self.value,
            observed_unit: self.unit,
            status: self.status,
            threshold: self.threshold,
            output: self.output,
            time: SystemTime::now(),
        }
    }
}

/// The result of a health check round: an overall status and every check.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReport {
    /// The worst status of any check (`pass` when there are none).
    pub status: Status,
    /// Every check, in a stable order.
    pub checks: Vec<Check>,
    /// When the round finished.
    pub time: SystemTime,
    /// How long the round took.
    pub took: Duration,
    /// Top-level service fields.
    pub service: ServiceInfo,
}

impl HealthReport {
    /// A report over `checks`, its status the worst of theirs.
    pub fn new(checks: Vec<Check>, took: Duration, service: ServiceInfo) -> Self {
        Self {
            status: worst(&checks),
            checks,
            time: SystemTime::now(),
            took,
            service,
        }
    }

    /// Checks that did not pass.
    pub fn problems(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status != Status::Pass)
    }

    /// The checks under `key` (`component:measurement`).
    pub fn checks_for<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Check> + 'a {
        self.checks.iter().filter(move |c| c.key == key)
    }

    /// The check under `key` for pool `pool`.
    pub fn check(&self, key: &str, pool: &str) -> Option<&Check> {
        self.checks
            .iter()
            .find(|c| c.key == key && c.component_id.as_deref() == Some(pool))
    }

    /// One line naming the checks that did not pass (empty when all pass).
    pub fn summary(&self) -> String {
        summarize(&self.checks)
    }
}

/// A Kubernetes probe's answer (liveness or readiness).
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// `pass` or `warn` answer 200, `fail` answers 503.
    pub status: Status,
    /// What was looked at.
    pub checks: Vec<Check>,
}

impl Probe {
    /// A probe over `checks`, its status the worst of theirs.
    pub fn new(checks: Vec<Check>) -> Self {
        Self {
            status: worst(&checks),
            checks,
        }
    }

    /// One line naming the checks that did not pass.
    pub fn summary(&self) -> String {
        summarize(&self.checks)
    }
}

fn worst(checks: &[Check]) -> Status {
    checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Pass)
}

fn summarize(checks: &[Check]) -> String {
    let mut parts = Vec::new();
    for c in checks.iter().filter(|c| c.status != Status::Pass) {
        let who = match &c.component_id {
            Some(id) => format!("{} [{id}]", c.key),
            None => c.key.clone(),
        };
        parts.push(format!("{who} {}: {}", c.status, c.output));
    }
    parts.join("; ")
}

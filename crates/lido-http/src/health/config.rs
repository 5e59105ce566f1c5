//! [`HealthConfig`]: thresholds, windows and timeouts of the health checks.

use std::time::Duration;

use serde::Serialize;

use super::status::Status;

/// Warn and fail levels for a measurement: a value at or above `warn` warns,
/// at or above `fail` fails; `None` never does.
///
/// ```
/// use lido_http::{Status, Threshold};
/// let t = Threshold::new(Some(100.0), Some(1000.0));
/// assert_eq!(t.judge(20.0), Status::Pass);
/// assert_eq!(t.judge(100.0), Status::Warn);
/// assert_eq!(t.judge(5000.0), Status::Fail);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Threshold {
    /// At or above this the check warns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warn: Option<f64>,
    /// At or above this the check fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail: Option<f64>,
}

impl Threshold {
    /// Levels `warn` and `fail`.
    pub const fn new(warn: Option<f64>, fail: Option<f64>) -> Self {
        Self { warn, fail }
    }

    /// Never warns nor fails.
    pub const NEVER: Self = Self::new(None, None);

    /// The status `value` earns.
    pub fn judge(&self, value: f64) -> Status {
        if self.fail.is_some_and(|f| value >= f) {
            Status::Fail
        } else if self.warn.is_some_and(|w| value >= w) {
            Status::Warn
        } else {
            Status::Pass
        }
    }

    /// The level `status` refers to, for reasons ("above 100").
    pub(crate) fn level(&self, status: Status) -> Option<f64> {
        match status {
            Status::Pass => None,
            Status::Warn => self.warn,
            Status::Fail => self.fail,
        }
    }
}

/// The levels a check's value was judged against, as the report shows them
/// (the `threshold` extension field of a check).
///
/// ```
/// use lido_http::{Limits, Threshold};
/// let numeric: Limits = Threshold::new(Some(100.0), Some(1000.0)).into();
/// assert_eq!(serde_json::to_value(&numeric)?, serde_json::json!({"warn": 100.0, "fail": 1000.0}));
/// let states = Limits::states(Some("half_open"), Some("open"));
/// assert_eq!(serde_json::to_value(&states)?, serde_json::json!({"warn": "half_open", "fail": "open"}));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Limits {
    /// A numeric value at or above `warn` warns, at or above `fail` fails.
    Numeric(Threshold),
    /// A state value equal to `warn` warns, equal to `fail` fails.
    States {
        /// The state that warns.
        #[serde(skip_serializing_if = "Option::is_none")]
        warn: Option<String>,
        /// The state that fails.
        #[serde(skip_serializing_if = "Option::is_none")]
        fail: Option<String>,
    },
}

impl Limits {
    /// The states that warn and fail.
    pub fn states(warn: Option<&str>, fail: Option<&str>) -> Self {
        Self::States {
            warn: warn.map(str::to_owned),
            fail: fail.map(str::to_owned),
        }
    }

    /// Whether any level is set (an empty one is left out of the report).
    pub fn is_set(&self) -> bool {
        match self {
            Self::Numeric(t) => t.warn.is_some() || t.fail.is_some(),
            Self::States { warn, fail } => warn.is_some() || fail.is_some(),
        }
    }
}

impl From<Threshold> for Limits {
    fn from(t: Threshold) -> Self {
        Self::Numeric(t)
    }
}

/// Optional top-level fields of the health+json document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceInfo {
    /// `serviceId`: a unique identifier of the service.
    pub service_id: Option<String>,
    /// `description`: a human-friendly description of the service.
    pub description: Option<String>,
    /// `version`: the public version of the service.
    pub version: Option<String>,
    /// `releaseId`: the deployed release (commit, build).
    pub release_id: Option<String>,
}

/// Thresholds, windows and timeouts of the health checks, with defaults meant
/// for production.
///
/// ```
/// use std::time::Duration;
/// use lido_http::{HealthConfig, Threshold};
/// let cfg = HealthConfig {
///     latency_ms: Threshold::new(Some(50.0), Some(500.0)),
///     window: Duration::from_secs(30),
///     ..Default::default()
/// };
/// assert_eq!(cfg.ping_timeout, Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    /// Longest the connectivity ping may take (lease + check); past it the
    /// check fails, or warns when the pool is saturated.
    pub ping_timeout: Duration,
    /// Ping round trip in milliseconds.
    pub latency_ms: Threshold,
    /// Connections in use as a percentage of `max_size`.
    pub utilization_percent: Threshold,
    /// Callers waiting for a connection.
    pub waiters: Threshold,
    /// `get()` calls that timed out within the window.
    pub acquire_timeouts: Threshold,
    /// Failed connect attempts, as a percentage of attempts within the window.
    pub connect_error_percent: Threshold,
    /// Failed `get()` calls (timeouts included), as a percentage of calls within the window.
    pub get_error_percent: Threshold,
    /// Failed statements, as a percentage of statements within the window
    /// (`database:queryErrorRate`, for backends that count statements:
    /// lido-postgres with its `http` feature). Constraint violations and
    /// other errors the application expects count too: raise it if they
    /// are routine.
    pub query_error_percent: Threshold,
    /// Fewest attempts in the window before an error rate is judged.
    pub min_samples: u64,
    /// The sliding window for counts and rates.
    pub window: Duration,
    /// Leases held past `leak_threshold` right now.
    pub leaks: Threshold,
    /// Default timeout of custom checks that name none.
    pub check_timeout: Duration,
    /// Liveness fails once the pool's maintenance task (or the health loop)
    /// has not run for this many of its intervals, plus one check timeout.
    pub liveness_intervals: u32,
    /// Top-level fields of the report.
    pub service: ServiceInfo,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            ping_timeout: Duration::from_secs(2),
            latency_ms: Threshold::new(Some(100.0), Some(1000.0)),
            utilization_percent: Threshold::new(Some(90.0), None),
            waiters: Threshold::new(Some(1.0), None),
            acquire_timeouts: Threshold::new(Some(1.0), None),
            connect_error_percent: Threshold::new(Some(10.0), Some(50.0)),
            get_error_percent: Threshold::new(Some(1.0), Some(25.0)),
            query_error_percent: Threshold::new(Some(5.0), Some(50.0)),
            min_samples: 10,
            window: Duration::from_secs(60),
            leaks: Threshold::new(Some(1.0), None),
            check_timeout: Duration::from_secs(2),
            liveness_intervals: 3,
            service: ServiceInfo::default(),
        }
    }
}

//! Health checks: built-in pool checks, custom checks, the background
//! [`HealthMonitor`], liveness and readiness.
//!
//! Layers, bottom up (a file imports only from those below it):
//! `status`, `window` -> `config` -> `report` -> `judge`, `custom` ->
//! `backend` -> (crate `source`) -> `checks` -> `checker` -> `ext`,
//! `monitor`.

pub(crate) mod backend;
mod checker;
pub(crate) mod checks;
mod config;
mod custom;
mod ext;
mod judge;
mod monitor;
mod report;
mod status;
mod window;

pub use backend::{error_rate, BackendCheck, CheckContext};
pub use checker::{health, HealthChecker, DEFAULT_POOL_NAME};
pub use checks::keys;
pub use config::{HealthConfig, Limits, ServiceInfo, Threshold};
pub use custom::{FnCheck, HealthCheck};
pub use ext::HealthExt;
pub use monitor::{HealthMonitor, HealthMonitorBuilder, MonitorError};
pub use report::{Check, HealthReport, Observation, Probe};
pub use status::Status;

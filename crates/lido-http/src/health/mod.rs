//! Health checks: built-in pool checks, custom checks, the background
//! [`HealthMonitor`], liveness and readiness.

mod backend;
mod checker;
pub(crate) mod checks;
mod config;
mod custom;
mod ext;
mod monitor;
mod report;
mod window;

pub use backend::{error_rate, BackendCheck, CheckContext};
pub use checker::{health, HealthChecker, DEFAULT_POOL_NAME};
pub use checks::keys;
pub use config::{HealthConfig, Limits, ServiceInfo, Threshold};
pub use custom::{FnCheck, HealthCheck};
pub use ext::HealthExt;
pub use monitor::{HealthMonitor, HealthMonitorBuilder, MonitorError};
pub use report::{Check, HealthReport, Observation, Probe, Status};

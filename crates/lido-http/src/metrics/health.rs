//! Health gauges from a [`HealthMonitor`]'s last report and probes.

use crate::health::{HealthMonitor, Status};

use super::sink::{MetricSink, MetricsExtension};

/// Family names written by [`HealthMetrics`].
pub mod health_names {
    /// Gauge: overall status of the last report, 0 pass, 1 warn, 2 fail.
    pub const STATUS: &str = "lido_health_status";
    /// Gauge, `pool` and `check` labels: each check's status, 0 pass, 1 warn, 2 fail.
    pub const CHECK_STATUS: &str = "lido_health_check_status";
    /// Gauge: 1 while the readiness probe passes.
    pub const READY: &str = "lido_health_ready";
    /// Gauge: 1 while the liveness probe passes.
    pub const LIVE: &str = "lido_health_live";
    /// Gauge: seconds since the last health report.
    pub const REPORT_AGE: &str = "lido_health_report_age_seconds";
}

use health_names as n;

fn code(s: Status) -> f64 {
    match s {
        Status::Pass => 0.0,
        Status::Warn => 1.0,
        Status::Fail => 2.0,
    }
}

fn up(s: Status) -> f64 {
    f64::from(u8::from(s != Status::Fail))
}

/// Exports the monitor's view as gauges (no checks run at scrape time).
#[derive(Debug, Clone)]
pub struct HealthMetrics {
    monitor: HealthMonitor,
}

impl HealthMetrics {
    /// Gauges over `monitor`.
    pub fn new(monitor: HealthMonitor) -> Self {
        Self { monitor }
    }
}

impl MetricsExtension for HealthMetrics {
    fn collect(&self, sink: &mut MetricSink<'_>) {
        let ready = up(self.monitor.readiness().status);
        sink.gauge(n::READY, "1 while the readiness probe passes.", &[], ready);
        let live = up(self.monitor.liveness().status);
        sink.gauge(n::LIVE, "1 while the liveness probe passes.", &[], live);
        let Some(report) = self.monitor.report() else {
            return;
        };
        let help = "Overall health of the last report: 0 pass, 1 warn, 2 fail.";
        sink.gauge(n::STATUS, help, &[], code(report.status));
        let age = report.time.elapsed().unwrap_or_default().as_secs_f64();
        sink.gauge(
            n::REPORT_AGE,
            "Time since the last health report.",
            &[],
            age,
        );
        let help = "Status of each health check: 0 pass, 1 warn, 2 fail.";
        for c in &report.checks {
            let pool = c.component_id.as_deref().unwrap_or("");
            let labels = [("pool", pool), ("check", c.key.as_str())];
            sink.gauge(n::CHECK_STATUS, help, &labels, code(c.status));
        }
    }
}

//! What `lido check` prints: one line per step as it completes, or one JSON
//! document at the end; one `error:` line on stderr for the step that failed.

use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

/// The steps, in order, each with its exit code when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Reading the connection settings.
    Config,
    /// The servers the pool would try, in order.
    Plan,
    /// Host name to addresses.
    Resolve,
    /// TCP or Unix socket connect.
    Connect,
    /// TLS negotiation.
    Tls,
    /// Authentication and session startup.
    Auth,
    /// Server version.
    Server,
    /// `SELECT 1` round trips.
    Latency,
    /// `max_connections` and connections in use.
    Connections,
    /// Several hosts: one node's role, rotation and lag.
    Node,
    /// Several hosts: which node is the primary, how many replicas serve.
    Cluster,
}

impl Step {
    /// The label in the step column.
    pub fn label(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Plan => "plan",
            Self::Resolve => "resolve",
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Auth => "auth",
            Self::Server => "server",
            Self::Latency => "latency",
            Self::Connections => "connections",
            Self::Node => "node",
            Self::Cluster => "cluster",
        }
    }

    /// The exit code when this step fails (documented in `lido check --help`).
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Config | Self::Plan => 2,
            Self::Resolve => 3,
            Self::Connect => 4,
            Self::Tls => 5,
            Self::Auth => 6,
            Self::Server | Self::Latency | Self::Connections | Self::Node | Self::Cluster => 7,
        }
    }
}

/// A failed step: what happened and what to do about it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The step that failed.
    pub step: Step,
    /// What happened (never a password).
    pub message: String,
    /// What to fix, when we can tell.
    pub hint: Option<String>,
    /// The server of the plan it happened on, when it was one.
    pub target: Option<String>,
}

impl Failure {
    /// A failure of `step`.
    pub fn new(step: Step, message: impl Into<String>) -> Self {
        Self {
            step,
            message: message.into(),
            hint: None,
            target: None,
        }
    }

    /// Names the server it happened on.
    pub fn on(mut self, target: impl std::fmt::Display) -> Self {
        self.target = Some(target.to_string());
        self
    }

    /// Adds what to fix.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The one `error:` line.
    pub fn line(&self) -> String {
        match &self.hint {
            Some(h) => format!("{} failed: {} — {h}", self.step.label(), self.message),
            None => format!("{} failed: {}", self.step.label(), self.message),
        }
    }
}

#[derive(Debug, Serialize)]
struct Record {
    step: Step,
    ok: bool,
    /// Passed, but with something to look at (a replica down or lagging).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    warning: bool,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    elapsed_ms: Option<f64>,
    #[serde(skip_serializing_if = "Value::is_null")]
    data: Value,
}

/// Collects the steps; prints them as they come unless `json`.
#[derive(Debug)]
pub struct Reporter {
    json: bool,
    target: String,
    records: Vec<Record>,
    /// The lines of the steps that passed with a warning.
    warnings: Vec<String>,
}

/// Milliseconds with two decimals, for text and JSON.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}

impl Reporter {
    /// A reporter for a check of `target` (already redacted).
    pub fn new(json: bool, target: String) -> Self {
        if !json {
            println!("lido check {target}");
        }
        Self {
            json,
            target,
            records: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn print(&self, r: &Record) {
        if self.json {
            return;
        }
        let mark = match (r.ok, r.warning) {
            (false, _) => "FAIL",
            (true, true) => "WARN",
            (true, false) => "ok  ",
        };
        let took = r
            .elapsed_ms
            .map(|m| format!(" ({m:.2} ms)"))
            .unwrap_or_default();
        println!("  {:<12} {mark} {}{took}", r.step.label(), r.detail);
    }

    /// A step that passed.
    pub fn ok(&mut self, step: Step, detail: String, elapsed: Option<Duration>, data: Value) {
        let r = Record {
            step,
            ok: true,
            warning: false,
            detail,
            hint: None,
            elapsed_ms: elapsed.map(ms),
            data,
        };
        self.print(&r);
        self.records.push(r);
    }

    /// A step that passed with a warning: shown as `WARN`, listed in the
    /// summary; the exit code stays 0.
    pub fn warn(&mut self, step: Step, detail: String, hint: Option<String>, data: Value) {
        self.warnings.push(format!("{}: {detail}", step.label()));
        let r = Record {
            step,
            ok: true,
            warning: true,
            detail,
            hint,
            elapsed_ms: None,
            data,
        };
        self.print(&r);
        self.records.push(r);
    }

    /// A step that failed but is not final (another attempt follows).
    pub fn failed(&mut self, f: &Failure, note: &str, data: Value) {
        let r = Record {
            step: f.step,
            ok: false,
            warning: false,
            detail: format!("{}{note}", f.message),
            hint: f.hint.clone(),
            elapsed_ms: None,
            data,
        };
        self.print(&r);
        self.records.push(r);
    }

    /// Ends the check: prints the summary (or the JSON document) and returns the exit code.
    pub fn finish(self, outcome: Result<(), Failure>) -> ExitCode {
        if self.json {
            return self.finish_json(outcome);
        }
        match outcome {
            Ok(()) => {
                match self.warnings.len() {
                    0 => println!("ok: every step passed"),
                    1 => println!("ok: every step passed, with 1 warning (WARN above)"),
                    n => println!("ok: every step passed, with {n} warnings (WARN above)"),
                }
                ExitCode::SUCCESS
            }
            Err(f) => {
                eprintln!("error: {}", f.line());
                ExitCode::from(f.step.exit_code())
            }
        }
    }

    fn finish_json(self, outcome: Result<(), Failure>) -> ExitCode {
        let (code, error) = match &outcome {
            Ok(()) => (0, Value::Null),
            Err(f) => (
                f.step.exit_code(),
                serde_json::json!({
                    "step": f.step,
                    "message": f.message,
                    "hint": f.hint,
                    "target": f.target,
                    "line": f.line(),
                }),
            ),
        };
        let doc = serde_json::json!({
            "target": self.target,
            "ok": outcome.is_ok(),
            "exit_code": code,
            "steps": self.records,
            "warnings": self.warnings,
            "error": error,
        });
        match serde_json::to_string_pretty(&doc) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: encoding JSON: {e}"),
        }
        if let Err(f) = outcome {
            eprintln!("error: {}", f.line());
        }
        ExitCode::from(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_per_connect_phase() {
        let codes: Vec<u8> = [
            Step::Config,
            Step::Resolve,
            Step::Connect,
            Step::Tls,
            Step::Auth,
            Step::Server,
        ]
        .iter()
        .map(|s| s.exit_code())
        .collect();
        let mut dedup = codes.clone();
        dedup.dedup();
        assert_eq!(codes, dedup);
        assert!(codes.iter().all(|&c| c >= 2));
    }

    #[test]
    fn failure_line_names_step_and_fix() {
        let f = Failure::new(Step::Connect, "connection refused").hint("start the server");
        assert_eq!(
            f.line(),
            "connect failed: connection refused — start the server"
        );
    }

    #[test]
    fn milliseconds_round_to_hundredths() {
        assert!((ms(Duration::from_micros(1234)) - 1.23).abs() < 1e-9);
    }
}

//! Per-connection server settings (`statement_timeout`, `search_path`, ...).
//!
//! Normally sent once, in the startup packet (`options=-c name=value`), so
//! they cost no round trip. PgBouncer in transaction mode rejects startup
//! `options` and does not keep session state, so there they are applied with
//! `set_config(..., true)` (`SET LOCAL`) at the start of every lido
//! transaction instead; statements outside a lido transaction run with the
//! server's defaults (set them with `ALTER ROLE ... SET` for those).

use std::fmt::Write as _;
use std::time::Duration;

use crate::error::ConfigError;

/// Server settings applied to every connection of a pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionSettings {
    /// Longest a statement may run on the server (`statement_timeout`).
    pub statement_timeout: Option<Duration>,
    /// Longest a statement waits for a lock (`lock_timeout`).
    pub lock_timeout: Option<Duration>,
    /// Server closes sessions idle inside a transaction this long.
    pub idle_in_transaction_session_timeout: Option<Duration>,
    /// Schema search path, as in `SET search_path` (`"app, public"`).
    pub search_path: Option<String>,
    /// Session time zone (`TimeZone`), for example `"UTC"`.
    pub timezone: Option<String>,
    /// Any other settings, by name.
    pub extra: Vec<(String, String)>,
}

fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

impl SessionSettings {
    /// Every setting as `(name, value)`, in a stable order.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let durations = [
            ("statement_timeout", self.statement_timeout),
            ("lock_timeout", self.lock_timeout),
            (
                "idle_in_transaction_session_timeout",
                self.idle_in_transaction_session_timeout,
            ),
        ];
        for (name, d) in durations {
            if let Some(d) = d {
                out.push((name.to_owned(), ms(d)));
            }
        }
        if let Some(p) = &self.search_path {
            out.push(("search_path".into(), p.clone()));
        }
        if let Some(tz) = &self.timezone {
            out.push(("TimeZone".into(), tz.clone()));
        }
        out.extend(self.extra.iter().cloned());
        out
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.pairs().is_empty()
    }

    /// Checks setting names (values are escaped, names cannot be).
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.pairs().into_iter().find(|(n, _)| !valid_name(n)) {
            Some(_) => Err(crate::error::invalid(
                "options",
                "setting names may hold only letters, digits, `_` and `.`",
            )),
            None => Ok(()),
        }
    }

    /// The startup `options` value: `base` followed by `-c name=value` for
    /// each setting, spaces and backslashes escaped as libpq does.
    pub fn startup_options(&self, base: Option<&str>) -> Option<String> {
        let mut out = base.unwrap_or_default().to_owned();
        for (name, value) in self.pairs() {
            if !out.is_empty() {
                out.push(' ');
            }
            let _ = write!(out, "-c {name}={}", escape_option(&value));
        }
        (!out.is_empty()).then_some(out)
    }

    /// One statement applying every setting for the current transaction only.
    pub fn set_local_sql(&self) -> Option<String> {
        let calls: Vec<String> = self
            .pairs()
            .into_iter()
            .map(|(n, v)| format!("set_config({}, {}, true)", quote(&n), quote(&v)))
            .collect();
        (!calls.is_empty()).then(|| format!("SELECT {}", calls.join(", ")))
    }
}

fn escape_option(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if c == '\\' || c.is_whitespace() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A SQL string literal.
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SessionSettings {
        SessionSettings {
            statement_timeout: Some(Duration::from_secs(5)),
            lock_timeout: Some(Duration::from_millis(250)),
            search_path: Some("app, public".into()),
            timezone: Some("UTC".into()),
            ..Default::default()
        }
    }

    #[test]
    fn startup_options_escape_spaces() {
        let o = sample().startup_options(Some("-c geqo=off")).unwrap();
        assert_eq!(
            o,
            "-c geqo=off -c statement_timeout=5000 -c lock_timeout=250 -c search_path=app,\\ public -c TimeZone=UTC"
        );
        assert_eq!(SessionSettings::default().startup_options(None), None);
    }

    #[test]
    fn set_local_quotes_values() {
        let mut s = SessionSettings::default();
        s.extra.push(("application_name".into(), "it's".into()));
        assert_eq!(
            s.set_local_sql().unwrap(),
            "SELECT set_config('application_name', 'it''s', true)"
        );
        assert!(sample()
            .set_local_sql()
            .unwrap()
            .contains("'search_path', 'app, public'"));
    }

    #[test]
    fn names_are_validated() {
        let mut s = sample();
        assert!(s.validate().is_ok());
        s.extra.push(("x; DROP TABLE t".into(), "1".into()));
        assert!(s.validate().is_err());
    }
}

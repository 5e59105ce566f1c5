//! Naming errors for metrics (`class`) and spans (`error.type`,
//! `db.response.status_code`), and counting them by class without locks.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::PgError;

/// What went wrong, as observability names it (borrowed from the error:
/// naming a failed call allocates nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind<'e> {
    /// The server answered with this SQLSTATE.
    Sql(&'e str),
    /// A client-side query timeout.
    Timeout,
    /// A transaction ran past its deadline.
    TransactionTimeout,
    /// The connection closed or its socket failed.
    Connection,
    /// A TLS failure.
    Tls,
    /// Anything else (settings, parameters, cancels, the application).
    Other,
}

impl<'e> ErrorKind<'e> {
    pub(crate) fn of(e: &'e PgError) -> Self {
        if let Some(code) = e.code() {
            return Self::Sql(code.code());
        }
        match e {
            PgError::QueryTimeout { .. } => Self::Timeout,
            PgError::TransactionTimeout { .. } => Self::TransactionTimeout,
            PgError::RetriesExhausted { last, .. } => Self::of(last),
            PgError::Tls(_) => Self::Tls,
            PgError::Postgres(pe) | PgError::Startup { source: pe, .. }
                if pe.is_closed() || is_io(pe) =>
            {
                Self::Connection
            }
            PgError::Cancel { .. }
            | PgError::Connect { .. }
            | PgError::WrongSession { .. }
            | PgError::NotAnswering { .. } => Self::Connection,
            _ => Self::Other,
        }
    }

    /// The OpenTelemetry `error.type`: the SQLSTATE for server errors.
    pub(crate) fn error_type(&self) -> &'e str {
        match *self {
            Self::Sql(code) => code,
            Self::Timeout => "timeout",
            Self::TransactionTimeout => "transaction_timeout",
            Self::Connection => "connection",
            Self::Tls => "tls",
            Self::Other => "_OTHER",
        }
    }

    /// The metric `class` label.
    pub(crate) fn class(&self) -> &'e str {
        match *self {
            Self::Sql(code) => code.get(..2).unwrap_or("other"),
            Self::Timeout | Self::TransactionTimeout => "timeout",
            Self::Connection | Self::Tls => "connection",
            Self::Other => "other",
        }
    }
}

fn is_io(e: &tokio_postgres::Error) -> bool {
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

/// Digits and upper-case letters: the alphabet of SQLSTATE codes.
fn base36(c: u8) -> Option<usize> {
    match c {
        b'0'..=b'9' => Some(usize::from(c - b'0')),
        b'A'..=b'Z' => Some(usize::from(c - b'A') + 10),
        _ => None,
    }
}

fn digit(i: usize) -> char {
    char::from(if i < 10 {
        b'0' + i as u8
    } else {
        b'A' + (i - 10) as u8
    })
}

const NAMED: [&str; 3] = ["timeout", "connection", "other"];

/// Counters per SQLSTATE class (36 × 36 slots) plus the named classes.
#[derive(Debug)]
pub(crate) struct ErrorClasses {
    sqlstate: Box<[AtomicU64]>,
    named: [AtomicU64; 3],
}

impl Default for ErrorClasses {
    fn default() -> Self {
        Self {
            sqlstate: (0..36 * 36).map(|_| AtomicU64::new(0)).collect(),
            named: Default::default(),
        }
    }
}

impl ErrorClasses {
    fn slot(&self, class: &str) -> Option<&AtomicU64> {
        if let Some(i) = NAMED.iter().position(|n| *n == class) {
            return Some(&self.named[i]);
        }
        match class.as_bytes() {
            [a, b] => Some(&self.sqlstate[base36(*a)? * 36 + base36(*b)?]),
            _ => None,
        }
    }

    pub(crate) fn record(&self, kind: &ErrorKind<'_>) {
        let slot = self.slot(kind.class()).unwrap_or(&self.named[2]);
        slot.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self, class: &str) -> u64 {
        self.slot(class).map_or(0, |s| s.load(Ordering::Relaxed))
    }

    /// Non-zero classes: SQLSTATE classes ascending, then the named ones.
    pub(crate) fn snapshot(&self) -> Vec<(String, u64)> {
        let codes = self.sqlstate.iter().enumerate().filter_map(|(i, n)| {
            let n = n.load(Ordering::Relaxed);
            (n > 0).then(|| (format!("{}{}", digit(i / 36), digit(i % 36)), n))
        });
        let named = NAMED.iter().zip(&self.named).filter_map(|(name, n)| {
            let n = n.load(Ordering::Relaxed);
            (n > 0).then(|| ((*name).to_owned(), n))
        });
        codes.chain(named).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn classes_count_and_list() {
        let c = ErrorClasses::default();
        c.record(&ErrorKind::Sql("42P01"));
        c.record(&ErrorKind::Sql("42703"));
        c.record(&ErrorKind::Sql("23505"));
        c.record(&ErrorKind::Sql("zz"));
        let refused = PgError::Connect {
            address: "127.0.0.1:1".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(ErrorKind::of(&refused).class(), "connection");
        let timeout = PgError::QueryTimeout {
            timeout: Duration::from_millis(1),
            cancelled: true,
        };
        let t = ErrorKind::of(&timeout);
        assert_eq!(t.error_type(), "timeout");
        c.record(&t);
        let want: Vec<(String, u64)> = vec![
            ("23".into(), 1),
            ("42".into(), 2),
            ("timeout".into(), 1),
            ("other".into(), 1),
        ];
        assert_eq!(c.snapshot(), want);
        assert_eq!(c.get("42"), 2);
        assert_eq!(c.get("HV"), 0);
    }
}

//! How a transaction starts and ends, as SQL: [`TxOptions`] (isolation,
//! read-only, deferrable, timeout, retry attempts) and its BEGIN statement,
//! savepoint names and the ROLLBACK that undoes one level.

use std::time::Duration;

use lido_core::RetryConfig;

/// Transaction isolation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    /// READ UNCOMMITTED (behaves as READ COMMITTED in PostgreSQL).
    ReadUncommitted,
    /// READ COMMITTED (PostgreSQL's default).
    ReadCommitted,
    /// REPEATABLE READ.
    RepeatableRead,
    /// SERIALIZABLE.
    Serializable,
}

impl IsolationLevel {
    fn sql(self) -> &'static str {
        match self {
            Self::ReadUncommitted => "READ UNCOMMITTED",
            Self::ReadCommitted => "READ COMMITTED",
            Self::RepeatableRead => "REPEATABLE READ",
            Self::Serializable => "SERIALIZABLE",
        }
    }
}

/// How to run a transaction (and, for `transaction_with_retry`, how to retry it).
#[derive(Debug, Clone, PartialEq)]
pub struct TxOptions {
    /// Isolation level (`None`: the server's default).
    pub isolation: Option<IsolationLevel>,
    /// READ ONLY.
    pub read_only: bool,
    /// DEFERRABLE (with SERIALIZABLE READ ONLY: wait for a safe snapshot).
    pub deferrable: bool,
    /// Longest the whole transaction may take; on expiry the running
    /// statement is cancelled and the transaction rolled back.
    pub timeout: Option<Duration>,
    /// Attempts for `transaction_with_retry` (1 = no retry).
    pub max_attempts: u32,
    /// Backoff between attempts (full jitter, `lido_core::retry::delay`).
    pub backoff: RetryConfig,
}

impl Default for TxOptions {
    fn default() -> Self {
        Self {
            isolation: None,
            read_only: false,
            deferrable: false,
            timeout: None,
            max_attempts: 5,
            backoff: RetryConfig {
                base: Duration::from_millis(10),
                cap: Duration::from_millis(500),
                max_attempts: 5,
            },
        }
    }
}

impl TxOptions {
    /// Defaults: server isolation, read-write, no timeout, 5 attempts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the isolation level.
    pub fn isolation(mut self, level: IsolationLevel) -> Self {
        self.isolation = Some(level);
        self
    }

    /// SERIALIZABLE.
    pub fn serializable(self) -> Self {
        self.isolation(IsolationLevel::Serializable)
    }

    /// READ ONLY.
    pub fn read_only(mut self, yes: bool) -> Self {
        self.read_only = yes;
        self
    }

    /// DEFERRABLE.
    pub fn deferrable(mut self, yes: bool) -> Self {
        self.deferrable = yes;
        self
    }

    /// Overall transaction timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Attempts for `transaction_with_retry` (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The BEGIN statement.
    pub fn begin_sql(&self) -> String {
        let mut modes = Vec::new();
        if let Some(level) = self.isolation {
            modes.push(format!("ISOLATION LEVEL {}", level.sql()));
        }
        modes.push(
            if self.read_only {
                "READ ONLY"
            } else {
                "READ WRITE"
            }
            .to_owned(),
        );
        if self.deferrable {
            modes.push("DEFERRABLE".to_owned());
        }
        format!("BEGIN {}", modes.join(", "))
    }
}

pub(crate) fn savepoint_name(level: u32) -> String {
    format!("lido_sp_{level}")
}

/// SQL that undoes transaction level `level` (1 = the whole transaction).
pub(crate) fn rollback_sql(level: u32) -> String {
    if level <= 1 {
        "ROLLBACK".to_owned()
    } else {
        let sp = savepoint_name(level);
        format!("ROLLBACK TO SAVEPOINT {sp}; RELEASE SAVEPOINT {sp}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_statements() {
        assert_eq!(TxOptions::new().begin_sql(), "BEGIN READ WRITE");
        assert_eq!(
            TxOptions::new()
                .serializable()
                .read_only(true)
                .deferrable(true)
                .begin_sql(),
            "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE"
        );
        assert_eq!(
            TxOptions::new()
                .isolation(IsolationLevel::RepeatableRead)
                .begin_sql(),
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ WRITE"
        );
    }

    #[test]
    fn rollback_statements() {
        assert_eq!(rollback_sql(1), "ROLLBACK");
        assert_eq!(
            rollback_sql(3),
            "ROLLBACK TO SAVEPOINT lido_sp_3; RELEASE SAVEPOINT lido_sp_3"
        );
    }

    #[test]
    fn attempts_at_least_one() {
        assert_eq!(TxOptions::new().max_attempts(0).max_attempts, 1);
    }
}

//! The phases' workloads on PostgreSQL: CPU-bound short queries, IO-like
//! waits, and lock contention.

use std::time::Duration;

use lido_postgres::{PgError, PgPool};

/// Advisory lock keys the `locks` phase contends on.
pub const LOCK_KEYS: u32 = 4;

/// A workload phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Short CPU-bound queries (about 1.5 ms of server CPU each).
    Cpu,
    /// `pg_sleep(0.01)`: waiting that costs the server nothing.
    Sleep,
    /// A transaction that takes one of [`LOCK_KEYS`] advisory locks and holds it 2 ms.
    Locks,
}

const CPU: &str = "SELECT sum(i) FROM generate_series(1, 20000) AS s(i)";
const SLEEP: &str = "SELECT pg_sleep(0.01)";

impl Phase {
    /// Parses a `--phases` entry.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "cpu" => Ok(Self::Cpu),
            "sleep" => Ok(Self::Sleep),
            "locks" => Ok(Self::Locks),
            other => Err(format!(
                "--phases: unknown phase {other:?}; use cpu, sleep and locks, e.g. --phases cpu,sleep,locks"
            )),
        }
    }

    /// The phase's name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Sleep => "sleep",
            Self::Locks => "locks",
        }
    }

    /// What one operation runs.
    pub fn describe(self) -> String {
        match self {
            Self::Cpu => CPU.to_string(),
            Self::Sleep => SLEEP.to_string(),
            Self::Locks => format!(
                "BEGIN; SELECT pg_advisory_xact_lock(<one of {LOCK_KEYS} keys>); SELECT pg_sleep(0.002); COMMIT"
            ),
        }
    }

    /// Runs one operation; returns how long it waited for a connection.
    pub async fn run(self, pool: &PgPool) -> Result<Duration, PgError> {
        let started = std::time::Instant::now();
        let conn = pool.get().await?;
        let waited = started.elapsed();
        match self {
            Self::Cpu => conn.batch_execute(CPU).await?,
            Self::Sleep => conn.batch_execute(SLEEP).await?,
            Self::Locks => {
                let key = 7_411_600 + fastrand::u32(0..LOCK_KEYS);
                let sql = format!(
                    "BEGIN; SELECT pg_advisory_xact_lock({key}); SELECT pg_sleep(0.002); COMMIT"
                );
                conn.batch_execute(&sql).await?;
            }
        }
        Ok(waited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_parse_by_name() {
        for p in [Phase::Cpu, Phase::Sleep, Phase::Locks] {
            assert_eq!(Phase::parse(p.name()), Ok(p));
        }
        assert!(Phase::parse("disk")
            .expect_err("no such phase")
            .contains("unknown phase"));
    }
}

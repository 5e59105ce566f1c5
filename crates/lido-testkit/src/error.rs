//! The error type of every fallible testkit operation.

use std::io;

/// Why a testkit operation failed.
///
/// Messages are written for a person reading a failed test's output: they
/// say what was being done and, for missing programs, what to install.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// The PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`,
    /// `psql`) could not be found.
    #[error(
        "PostgreSQL server binaries not found: run scripts/setup, which \
         installs Debian's postgresql and postgresql-contrib packages \
         (PostgreSQL 15 on Debian 12: apt-get install -y postgresql \
         postgresql-contrib), or set LIDO_PG_BIN=/path/to/bin (searched: {searched})"
    )]
    PgBinariesNotFound {
        /// Where the search looked.
        searched: String,
    },

    /// The `pgbouncer` binary could not be found.
    #[error(
        "pgbouncer not found: install it with `apt-get install -y pgbouncer` \
         or set LIDO_PGBOUNCER=/path/to/pgbouncer ({searched})"
    )]
    PgBouncerNotFound {
        /// Where the search looked.
        searched: String,
    },

    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// An external program exited unsuccessfully.
    #[error("`{command}` failed ({status}):\n{output}")]
    CommandFailed {
        /// The command line that ran.
        command: String,
        /// Its exit status.
        status: String,
        /// Its stderr and stdout, plus the server log's tail where relevant.
        output: String,
    },

    /// Generating the test certificates failed.
    #[error("generating test TLS certificates failed: {0}")]
    Certificate(#[from] rcgen::Error),

    /// Something did not happen within its deadline.
    #[error("timed out: {0}")]
    Timeout(String),

    /// The operation does not fit the server's current state.
    #[error("invalid state: {0}")]
    InvalidState(String),
}

impl TestkitError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        TestkitError::Io {
            context: context.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TestkitError;

    #[test]
    fn missing_binaries_say_what_to_install() {
        let pg = TestkitError::PgBinariesNotFound {
            searched: "/nowhere".to_owned(),
        }
        .to_string();
        assert!(pg.contains("scripts/setup"), "{pg}");
        assert!(
            pg.contains("apt-get install -y postgresql postgresql-contrib"),
            "{pg}"
        );
        assert!(pg.contains("LIDO_PG_BIN=/path/to/bin"), "{pg}");
        let bouncer = TestkitError::PgBouncerNotFound {
            searched: "PATH".to_owned(),
        }
        .to_string();
        assert!(
            bouncer.contains("apt-get install -y pgbouncer"),
            "{bouncer}"
        );
    }
}

//! The one session `lido advise` works on, and its errors.

use lido_postgres::tokio_postgres::types::ToSql;
use lido_postgres::tokio_postgres::{Client, Row, SimpleQueryMessage};
use lido_postgres::{PgConfig, PgError};

/// What can stop `lido advise`, each with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum AdviseError {
    /// Unusable arguments or connection settings (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// No session could be opened, or a query failed (exit code 3).
    #[error("{0}")]
    Database(String),
    /// pg_stat_statements is not preloaded or not created (exit code 4).
    #[error("{0}")]
    NoStatStatements(String),
    /// `--apply` could not create an index (exit code 5).
    #[error("{0}")]
    Apply(String),
}

impl AdviseError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            AdviseError::Usage(_) => 2,
            AdviseError::Database(_) => 3,
            AdviseError::NoStatStatements(_) => 4,
            AdviseError::Apply(_) => 5,
        }
    }
}

/// Marks lido advise's own statements, so pg_stat_statements' view of the
/// workload can leave them out.
pub const MARK: &str = "/* lido advise */";

/// One session to the database.
pub struct Db {
    client: Client,
}

impl Db {
    /// Opens a session the way a lido pool does.
    pub async fn connect(cfg: &PgConfig) -> Result<Db, AdviseError> {
        let dialed = lido_postgres::connect_traced(cfg, &mut ())
            .await
            .map_err(|e| AdviseError::Database(format!("cannot connect to {cfg}: {e}")))?;
        Ok(Db {
            client: dialed.client,
        })
    }

    /// Rows of a marked query (`sql` without the mark).
    pub async fn rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, String> {
        let marked = format!("{MARK} {sql}");
        self.client
            .query(marked.as_str(), params)
            .await
            .map_err(|e| PgError::from(e).to_string())
    }

    /// Runs `sql` (any number of statements, simple protocol) and returns
    /// the first column of every row, as text.
    pub async fn simple(&self, sql: &str) -> Result<Vec<Option<String>>, String> {
        let marked = format!("{MARK} {sql}");
        let msgs = self
            .client
            .simple_query(&marked)
            .await
            .map_err(|e| PgError::from(e).to_string())?;
        Ok(msgs
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
                _ => None,
            })
            .collect())
    }
}

/// Column `i` of `row` as `T`, or a message naming it.
pub fn col<'a, T: lido_postgres::tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    i: usize,
) -> Result<T, String> {
    row.try_get(i)
        .map_err(|e| format!("unexpected catalog value in column {i}: {e}"))
}

//! The slow-query table's name, DDL, setup, insert and retention SQL.

use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::Client;

use crate::error::PgError;
use crate::explain::quote_ident;

/// Why the slow-query table could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SlowTableError {
    /// The table name is not `table` or `schema.table`.
    #[error("invalid slow-query table name {0:?}: expected `table` or `schema.table`")]
    InvalidName(String),
    /// A setting is out of range.
    #[error("invalid slow-query table setting: {0}")]
    Setting(&'static str),
    /// The table does not exist and creating it is off.
    #[error("the slow-query table {table} does not exist and `create` is off; run:\n{ddl}")]
    Missing {
        /// The table, quoted.
        table: String,
        /// The DDL to run.
        ddl: String,
    },
    /// Creating the table failed (typically SQLSTATE 42501, no privilege).
    #[error("lido could not create the slow-query table {table} ({source}); run as a role that may:\n{ddl}")]
    CannotCreate {
        /// The table, quoted.
        table: String,
        /// The DDL to run.
        ddl: String,
        /// What the server said.
        source: PgError,
    },
    /// Any other database error.
    #[error(transparent)]
    Db(#[from] PgError),
}

/// A parsed `schema.table` (or `table`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableName {
    schema: Option<String>,
    table: String,
}

impl TableName {
    /// Parses `table` or `schema.table` (no quotes, no more dots).
    pub(crate) fn parse(s: &str) -> Result<Self, SlowTableError> {
        let bad = || SlowTableError::InvalidName(s.to_owned());
        let parts: Vec<&str> = s.split('.').collect();
        let ok = |p: &str| !p.is_empty() && !p.contains(['"', '\0']) && p.trim() == p;
        if !parts.iter().all(|p| ok(p)) {
            return Err(bad());
        }
        match parts.as_slice() {
            [t] => Ok(Self {
                schema: None,
                table: (*t).to_owned(),
            }),
            [s, t] => Ok(Self {
                schema: Some((*s).to_owned()),
                table: (*t).to_owned(),
            }),
            _ => Err(bad()),
        }
    }

    /// The quoted, qualified name.
    pub(crate) fn quoted(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&self.table)),
            None => quote_ident(&self.table),
        }
    }

    fn index(&self, column: &str) -> String {
        quote_ident(&format!("{}_{column}_idx", self.table))
    }

    /// The schema (when named), table and index DDL, one statement a line.
    pub(crate) fn ddl(&self) -> String {
        let t = self.quoted();
        let mut out = String::new();
        if let Some(s) = &self.schema {
            out.push_str(&format!(
                "CREATE SCHEMA IF NOT EXISTS {};\n",
                quote_ident(s)
            ));
        }
        out.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {t} (id bigserial PRIMARY KEY, \
             logged_at timestamptz NOT NULL DEFAULT now(), \
             duration_ms double precision NOT NULL, fingerprint text NOT NULL, \
             query text NOT NULL, rows bigint, sqlstate text, class text, \
             application_name text, database text, call_site text, params text, \
             plan jsonb, findings jsonb);\n"
        ));
        for col in ["logged_at", "fingerprint"] {
            out.push_str(&format!(
                "CREATE INDEX IF NOT EXISTS {} ON {t} ({col});\n",
                self.index(col)
            ));
        }
        out
    }

    /// One batch's insert: arrays unnested into rows; `$12`, `$13` are the
    /// application name and database of every row.
    pub(crate) fn insert_sql(&self) -> String {
        format!(
            "INSERT INTO {} (logged_at, duration_ms, fingerprint, query, rows, sqlstate, \
             class, call_site, params, plan, findings, application_name, database) \
             SELECT a, b, c, d, e, f, g, h, i, j, k, $12::text, $13::text FROM unnest(\
             $1::timestamptz[], $2::float8[], $3::text[], $4::text[], $5::int8[], \
             $6::text[], $7::text[], $8::text[], $9::text[], $10::jsonb[], $11::jsonb[]) \
             AS u(a, b, c, d, e, f, g, h, i, j, k)",
            self.quoted()
        )
    }

    /// Deletes rows older than `$1` days.
    pub(crate) fn retention_sql(&self) -> String {
        format!(
            "DELETE FROM {} WHERE logged_at < now() - make_interval(days => $1::int4)",
            self.quoted()
        )
    }

    /// Makes sure the table exists: creates it when `create` is on.
    pub(crate) async fn setup(&self, client: &Client, create: bool) -> Result<(), SlowTableError> {
        if self.exists(client).await? {
            return Ok(());
        }
        if !create {
            return Err(SlowTableError::Missing {
                table: self.quoted(),
                ddl: self.ddl(),
            });
        }
        match client.batch_execute(&self.ddl()).await {
            Ok(()) => Ok(()),
            // Another pool created it at the same time.
            Err(_) if self.exists(client).await? => Ok(()),
            Err(e) => Err(SlowTableError::CannotCreate {
                table: self.quoted(),
                ddl: self.ddl(),
                source: e.into(),
            }),
        }
    }

    async fn exists(&self, client: &Client) -> Result<bool, PgError> {
        let name = self.quoted();
        let rows = client
            .query_typed(
                "SELECT to_regclass($1::text) IS NOT NULL",
                &[(&name, Type::TEXT)],
            )
            .await?;
        Ok(rows.first().is_some_and(|r| r.get(0)))
    }
}

/// Whether `e` means the table is gone (dropped while the writer ran).
pub(crate) fn is_undefined_table(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNDEFINED_TABLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_quote() {
        let t = TableName::parse("lido.slow_queries").unwrap();
        assert_eq!(t.quoted(), "\"lido\".\"slow_queries\"");
        let ddl = t.ddl();
        assert!(ddl.starts_with("CREATE SCHEMA IF NOT EXISTS \"lido\";\n"));
        assert!(
            ddl.contains("\"slow_queries_logged_at_idx\" ON \"lido\".\"slow_queries\" (logged_at)")
        );
        assert!(ddl.contains(
            "\"slow_queries_fingerprint_idx\" ON \"lido\".\"slow_queries\" (fingerprint)"
        ));
        let plain = TableName::parse("Slow").unwrap();
        assert_eq!(plain.quoted(), "\"Slow\"");
        assert!(!plain.ddl().contains("SCHEMA"));
        for bad in ["", "a.b.c", "a.", ".b", "a\"b", " a"] {
            assert!(TableName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_insert_names_every_column_once() {
        let sql = TableName::parse("s.t").unwrap().insert_sql();
        let open = sql.find('(').unwrap();
        let close = sql.find(')').unwrap();
        let mut cols: Vec<&str> = sql[open + 1..close].split(", ").collect();
        cols.sort_unstable();
        let mut want = vec![
            "logged_at",
            "duration_ms",
            "fingerprint",
            "query",
            "rows",
            "sqlstate",
            "class",
            "application_name",
            "database",
            "call_site",
            "params",
            "plan",
            "findings",
        ];
        want.sort_unstable();
        assert_eq!(cols, want);
    }
}

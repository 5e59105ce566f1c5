//! Chooses the benchmark target from the URL.

mod postgres;
mod sqlite;

use super::target::BenchTarget;
use crate::dburl::{self, DbUrl};

/// The target for `url` (none: the embedded SQLite default).
pub fn for_url(url: Option<&str>, query: Option<String>) -> Result<Box<dyn BenchTarget>, String> {
    Ok(match dburl::parse(url)? {
        DbUrl::None => Box::new(sqlite::SqliteTarget::embedded(query)?),
        DbUrl::Sqlite(path) => Box::new(sqlite::SqliteTarget::file(path, query)),
        DbUrl::Postgres(cfg) => Box::new(postgres::PgTarget::new(*cfg, query)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_schemes_without_leaking_secrets() {
        let err = for_url(Some("mysql://u:hunter2@h/db"), None)
            .err()
            .expect("error");
        assert!(err.contains("unsupported"));
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn picks_postgres_for_postgres_urls() {
        let t = for_url(Some("postgres://u:hunter2@db.invalid/app"), None).expect("target");
        let d = t.describe();
        assert!(d.contains("PostgreSQL") && !d.contains("hunter2"), "{d}");
    }
}

//! pg_stat_statements: is it there, and the current database's statements.

use serde::Serialize;

use super::db::{col, AdviseError, Db, MARK};

/// One statement as pg_stat_statements counts it (this database, top level).
#[derive(Debug, Clone, Serialize)]
pub struct TopStatement {
    /// pg_stat_statements' query id.
    pub queryid: String,
    /// The normalized text (`$n` for constants).
    pub query: String,
    /// Times executed.
    pub calls: i64,
    /// Total execution time, ms.
    pub total_ms: f64,
    /// Mean execution time, ms.
    pub mean_ms: f64,
    /// Standard deviation of the execution time, ms.
    pub stddev_ms: f64,
    /// Fastest execution, ms.
    pub min_ms: f64,
    /// Slowest execution, ms.
    pub max_ms: f64,
    /// Rows returned or affected, all calls.
    pub rows: i64,
    /// `shared_blks_hit / (hit + read)`; `None` when no block was touched.
    pub cache_hit_ratio: Option<f64>,
    /// lido's fingerprint of the text (matches lido's own statistics).
    pub fingerprint: String,
}

/// The view's schema-qualified name, or what to change when
/// pg_stat_statements cannot be read.
pub async fn check(db: &Db) -> Result<String, AdviseError> {
    let rows = db
        .rows(
            "SELECT quote_ident(n.nspname) || '.pg_stat_statements' FROM pg_extension e \
             JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'",
            &[],
        )
        .await
        .map_err(AdviseError::Database)?;
    let view: Option<String> = rows
        .first()
        .map(|r| col(r, 0))
        .transpose()
        .map_err(AdviseError::Database)?;
    let preloaded = match db.simple("SHOW shared_preload_libraries").await {
        Ok(v) => Some(
            v.first()
                .cloned()
                .flatten()
                .unwrap_or_default()
                .split(',')
                .any(|l| l.trim().trim_matches('"') == "pg_stat_statements"),
        ),
        // Only superusers and pg_read_all_settings may read it: ask the view.
        Err(_) => match &view {
            Some(v) => probe(db, v).await,
            None => None,
        },
    };
    match view {
        Some(v) if preloaded != Some(false) => Ok(v),
        view => Err(AdviseError::NoStatStatements(how_to_enable(
            preloaded != Some(true),
            view.is_none(),
        ))),
    }
}

/// Whether reading the view works (`Some(false)`: not preloaded).
async fn probe(db: &Db, view: &str) -> Option<bool> {
    match db.simple(&format!("SELECT 1 FROM {view} LIMIT 1")).await {
        Ok(_) => Some(true),
        Err(e) if e.contains("shared_preload_libraries") => Some(false),
        Err(_) => None,
    }
}

/// The instructions, for what is missing.
pub fn how_to_enable(preload: bool, create: bool) -> String {
    let mut out = String::from(
        "pg_stat_statements is not enabled on this database: lido advise reads the workload from it.\n",
    );
    let mut step = 1;
    if preload {
        out.push_str(&format!(
            "  {step}. add to postgresql.conf (or ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'):\n\
             \x20      shared_preload_libraries = 'pg_stat_statements'\n\
             \x20    keeping any libraries already listed there (comma-separated), then restart PostgreSQL\n"
        ));
        step += 1;
    }
    if create {
        out.push_str(&format!(
            "  {step}. in this database, as a superuser:\n\x20      CREATE EXTENSION pg_stat_statements;\n"
        ));
    }
    out.push_str("Then let the application run for a while and run lido advise again.");
    out
}

/// Up to `limit` statements of the current database by total time, from
/// `view` (as [`check`] named it).
pub async fn statements(db: &Db, view: &str, limit: i64) -> Result<Vec<TopStatement>, AdviseError> {
    let sql = format!(
        "SELECT queryid::text, query, calls, total_exec_time, mean_exec_time, rows, \
               shared_blks_hit, shared_blks_read, stddev_exec_time, min_exec_time, max_exec_time \
               FROM {view} \
               WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND toplevel AND query NOT LIKE $1 AND query <> '<insufficient privilege>' \
               AND query !~ '(lido_advise_q|SAVEPOINT lido_|hypopg_create_index|hypopg_reset)' \
               ORDER BY total_exec_time DESC LIMIT $2"
    );
    let mark = format!("{MARK}%");
    let rows = db
        .rows(&sql, &[&mark, &limit])
        .await
        .map_err(|e| AdviseError::Database(format!("reading pg_stat_statements: {e}")))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let query: String = col(r, 1).map_err(AdviseError::Database)?;
        let (hit, read): (i64, i64) = (
            col(r, 6).map_err(AdviseError::Database)?,
            col(r, 7).map_err(AdviseError::Database)?,
        );
        out.push(TopStatement {
            queryid: col::<Option<String>>(r, 0)
                .map_err(AdviseError::Database)?
                .unwrap_or_default(),
            fingerprint: fingerprint_of(&query),
            query,
            calls: col(r, 2).map_err(AdviseError::Database)?,
            total_ms: col(r, 3).map_err(AdviseError::Database)?,
            mean_ms: col(r, 4).map_err(AdviseError::Database)?,
            stddev_ms: col(r, 8).map_err(AdviseError::Database)?,
            min_ms: col(r, 9).map_err(AdviseError::Database)?,
            max_ms: col(r, 10).map_err(AdviseError::Database)?,
            rows: col(r, 5).map_err(AdviseError::Database)?,
            cache_hit_ratio: hit_ratio(hit, read),
        });
    }
    Ok(out)
}

/// lido's fingerprint of a statement's text, as 16 hex digits.
pub fn fingerprint_of(query: &str) -> String {
    let normalized = lido_postgres::normalize_sql(query);
    format!("{:016x}", lido_postgres::fingerprint(&normalized))
}

fn hit_ratio(hit: i64, read: i64) -> Option<f64> {
    let total = hit.saturating_add(read);
    (total > 0).then(|| hit as f64 / total as f64)
}

/// The `n` first of `all` by `order` (`--order`).
pub fn top(all: &[TopStatement], order: &str, n: usize) -> Vec<TopStatement> {
    let key = |s: &TopStatement| -> f64 {
        match order {
            "mean" => s.mean_ms,
            "calls" => s.calls as f64,
            "rows" => s.rows as f64,
            // The worst cache hit ratio first.
            "hit" => -s.cache_hit_ratio.unwrap_or(1.0),
            _ => s.total_ms,
        }
    };
    let mut v = all.to_vec();
    v.sort_by(|a, b| key(b).total_cmp(&key(a)));
    v.truncate(n);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_name_the_setting_and_the_extension() {
        let both = how_to_enable(true, true);
        assert!(both.contains("shared_preload_libraries = 'pg_stat_statements'"));
        assert!(both.contains("CREATE EXTENSION pg_stat_statements;"));
        assert!(both.contains("restart"));
        assert!(!how_to_enable(false, true).contains("postgresql.conf"));
        assert_eq!(hit_ratio(3, 1), Some(0.75));
        assert_eq!(hit_ratio(0, 0), None);
    }

    fn stmt(query: &str, calls: i64, total_ms: f64, hit: Option<f64>) -> TopStatement {
        TopStatement {
            queryid: String::new(),
            query: query.into(),
            calls,
            total_ms,
            mean_ms: total_ms / calls as f64,
            stddev_ms: 0.0,
            min_ms: 0.0,
            max_ms: 0.0,
            rows: calls,
            cache_hit_ratio: hit,
            fingerprint: fingerprint_of(query),
        }
    }

    #[test]
    fn orders_by_each_figure() {
        let all = [
            stmt("a", 10, 100.0, Some(0.5)),
            stmt("b", 1000, 50.0, Some(1.0)),
            stmt("c", 1, 60.0, None),
        ];
        let order =
            |by: &str| -> Vec<String> { top(&all, by, 2).into_iter().map(|s| s.query).collect() };
        assert_eq!(order("total"), ["a", "c"]);
        assert_eq!(order("mean"), ["c", "a"]);
        assert_eq!(order("calls"), ["b", "a"]);
        assert_eq!(order("hit"), ["a", "b"]);
        assert_eq!(fingerprint_of("SELECT  1"), fingerprint_of("SELECT $1"));
    }
}

//! The catalog side: tables named by the statements (columns, selectivity,
//! reads and writes), existing indexes, and which of those look unused or
//! duplicated.

use serde::Serialize;

use super::db::{col, AdviseError, Db};

/// A user table a statement reads.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Its oid.
    pub oid: u32,
    /// Its name as `regclass` prints it (quoted, schema when needed).
    pub display: String,
    /// Its columns with `pg_stats.n_distinct` as a count (`None`: no statistics).
    pub columns: Vec<(String, Option<f64>)>,
    /// Rows written (`n_tup_ins + n_tup_upd + n_tup_del`).
    pub writes: i64,
    /// Scans (`seq_scan + idx_scan`).
    pub reads: i64,
}

impl TableInfo {
    /// The number of distinct values of `column`, when analyzed.
    pub fn distinct(&self, column: &str) -> Option<f64> {
        self.columns
            .iter()
            .find(|(c, _)| c == column)
            .and_then(|(_, d)| *d)
    }

    /// Whether the table has `column`.
    pub fn has(&self, column: &str) -> bool {
        self.columns.iter().any(|(c, _)| c == column)
    }

    /// Writes as a share of writes plus reads (0 when neither).
    pub fn write_share(&self) -> f64 {
        let total = self.writes.saturating_add(self.reads);
        if total <= 0 {
            0.0
        } else {
            self.writes as f64 / total as f64
        }
    }
}

/// Quotes each name part for `to_regclass`.
fn regclass_text(parts: &[String]) -> String {
    parts
        .iter()
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// Looks a written table name up (`None`: not a plain user table, e.g. a CTE).
pub async fn table(db: &Db, written: &[String]) -> Result<Option<TableInfo>, AdviseError> {
    let sql = "SELECT c.oid, c.oid::regclass::text, \
               coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0), \
               coalesce(s.seq_scan, 0) + coalesce(s.idx_scan, 0), c.reltuples::float8 \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
               LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid \
               WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p', 'm') \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')";
    let name = regclass_text(written);
    let rows = db
        .rows(sql, &[&name])
        .await
        .map_err(AdviseError::Database)?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let oid: u32 = col(r, 0).map_err(AdviseError::Database)?;
    let reltuples: f64 = col(r, 4).map_err(AdviseError::Database)?;
    let cols = db
        .rows(
            "SELECT a.attname::text, s.n_distinct::float8 FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname \
             AND s.attname = a.attname \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(AdviseError::Database)?;
    let mut columns = Vec::with_capacity(cols.len());
    for c in &cols {
        let nd: Option<f64> = col(c, 1).map_err(AdviseError::Database)?;
        // Negative: minus the fraction of rows that are distinct.
        let distinct = nd.map(|d| if d < 0.0 { -d * reltuples.max(1.0) } else { d });
        columns.push((col(c, 0).map_err(AdviseError::Database)?, distinct));
    }
    Ok(Some(TableInfo {
        oid,
        display: col(r, 1).map_err(AdviseError::Database)?,
        columns,
        writes: col(r, 2).map_err(AdviseError::Database)?,
        reads: col(r, 3).map_err(AdviseError::Database)?,
    }))
}

/// An existing index.
#[derive(Debug, Clone, Serialize)]
pub struct Index {
    /// Its name as `regclass` prints it.
    pub name: String,
    /// The table's oid.
    #[serde(skip)]
    pub table_oid: u32,
    /// The table's name.
    pub table: String,
    /// Key columns, in order (empty entries never: see `expression`).
    pub columns: Vec<String>,
    /// Whether it is `UNIQUE`.
    pub unique: bool,
    /// Whether it backs the primary key.
    pub primary: bool,
    /// Whether it has expressions or a `WHERE` (left out of comparisons).
    pub expression: bool,
    /// The access method (`btree`, …).
    pub method: String,
    /// `pg_stat_user_indexes.idx_scan`.
    pub scans: i64,
    /// Its size in bytes.
    pub size_bytes: i64,
    /// Its size, `pg_size_pretty`.
    pub size: String,
    /// `pg_get_indexdef`.
    pub definition: String,
}

/// Every index on user tables of this database.
pub async fn all(db: &Db) -> Result<Vec<Index>, AdviseError> {
    let sql = "SELECT i.indexrelid::regclass::text, i.indrelid, i.indrelid::regclass::text, \
               ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n) \
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                     WHERE k.n <= i.indnkeyatts ORDER BY k.n), \
               i.indisunique, i.indisprimary, \
               (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL OR NOT i.indisvalid), am.amname::text, \
               coalesce(s.idx_scan, 0), pg_relation_size(i.indexrelid), \
               pg_size_pretty(pg_relation_size(i.indexrelid)), pg_get_indexdef(i.indexrelid) \
               FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
               JOIN pg_am am ON am.oid = ic.relam JOIN pg_class t ON t.oid = i.indrelid \
               JOIN pg_namespace n ON n.oid = t.relnamespace \
               LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid \
               WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 3, 1";
    let rows = db.rows(sql, &[]).await.map_err(AdviseError::Database)?;
    rows.iter()
        .map(|r| {
            Ok(Index {
                name: col(r, 0)?,
                table_oid: col(r, 1)?,
                table: col(r, 2)?,
                columns: col(r, 3)?,
                unique: col(r, 4)?,
                primary: col(r, 5)?,
                expression: col(r, 6)?,
                method: col(r, 7)?,
                scans: col(r, 8)?,
                size_bytes: col(r, 9)?,
                size: col(r, 10)?,
                definition: col(r, 11)?,
            })
        })
        .collect::<Result<_, String>>()
        .map_err(AdviseError::Database)
}

/// The existing btree index on `table` that serves `columns` (its first
/// `eq` columns, in any order, are `columns`' equality columns, and the rest
/// follow in order), if any.
pub fn covering<'a>(
    indexes: &'a [Index],
    table: u32,
    columns: &[String],
    eq: usize,
) -> Option<&'a Index> {
    indexes.iter().find(|i| {
        i.table_oid == table
            && !i.expression
            && i.method == "btree"
            && serves(&i.columns, columns, eq)
    })
}

fn serves(index: &[String], columns: &[String], eq: usize) -> bool {
    if index.len() < columns.len() {
        return false;
    }
    let eq = eq.min(columns.len());
    let mut head: Vec<&String> = index[..eq].iter().collect();
    let mut want: Vec<&String> = columns[..eq].iter().collect();
    head.sort();
    want.sort();
    head == want && index[eq..columns.len()] == columns[eq..]
}

/// A drop candidate.
#[derive(Debug, Clone, Serialize)]
pub struct DropCandidate {
    /// The index.
    #[serde(flatten)]
    pub index: Index,
    /// Why: `unused`, or `duplicate of <other>`.
    pub reason: String,
    /// The SQL to drop it.
    pub sql: String,
}

/// Indexes never scanned since the statistics were reset (not unique, not
/// primary keys).
pub fn unused(indexes: &[Index]) -> Vec<DropCandidate> {
    indexes
        .iter()
        .filter(|i| i.scans == 0 && !i.unique && !i.primary)
        .map(|i| drop_candidate(i, "unused: idx_scan = 0".to_owned()))
        .collect()
}

/// Indexes whose key columns are a leading prefix of another index's on the
/// same table (same method, no expressions); a unique index is never the
/// one to drop, and of two equal ones the later name goes.
pub fn duplicates(indexes: &[Index]) -> Vec<DropCandidate> {
    let mut out = Vec::new();
    for a in indexes.iter().filter(|i| !i.unique && !i.expression) {
        let other = indexes.iter().find(|b| {
            b.name != a.name
                && b.table_oid == a.table_oid
                && !b.expression
                && b.method == a.method
                && b.columns.len() >= a.columns.len()
                && b.columns[..a.columns.len()] == a.columns[..]
                && (b.columns.len() > a.columns.len() || b.unique || b.name < a.name)
        });
        if let Some(b) = other {
            out.push(drop_candidate(
                a,
                format!("duplicate: its columns lead {}", b.name),
            ));
        }
    }
    out
}

fn drop_candidate(i: &Index, reason: String) -> DropCandidate {
    DropCandidate {
        sql: format!("DROP INDEX CONCURRENTLY {};", i.name),
        index: i.clone(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(name: &str, cols: &[&str], unique: bool) -> Index {
        Index {
            name: name.into(),
            table_oid: 1,
            table: "t".into(),
            columns: cols.iter().map(|c| (*c).to_owned()).collect(),
            unique,
            primary: false,
            expression: false,
            method: "btree".into(),
            scans: 0,
            size_bytes: 8192,
            size: "8192 bytes".into(),
            definition: String::new(),
        }
    }

    fn v(cols: &[&str]) -> Vec<String> {
        cols.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn an_index_covers_the_same_leading_columns() {
        let all = [idx("t_ab", &["a", "b", "c"], false)];
        assert!(covering(&all, 1, &v(&["a"]), 1).is_some());
        assert!(covering(&all, 1, &v(&["b", "a"]), 2).is_some());
        assert!(covering(&all, 1, &v(&["a", "b"]), 1).is_some());
        assert!(covering(&all, 1, &v(&["b"]), 1).is_none());
        assert!(covering(&all, 2, &v(&["a"]), 1).is_none());
        assert!(covering(&all, 1, &v(&["a", "c"]), 1).is_none());
    }

    #[test]
    fn prefixes_and_twins_are_duplicates() {
        let all = [
            idx("t_a", &["a"], false),
            idx("t_ab", &["a", "b"], false),
            idx("t_b", &["b"], true),
            idx("t_b2", &["b"], false),
        ];
        let d: Vec<String> = duplicates(&all).into_iter().map(|d| d.index.name).collect();
        assert_eq!(d, v(&["t_a", "t_b2"]));
        assert_eq!(unused(&all).len(), 3);
    }
}

//! From the workload's statements to the candidates to verify: parse each
//! statement, find its tables in the catalog, assign its columns, build the
//! column lists and leave out those an existing index already serves.

use std::collections::HashMap;

use serde::Serialize;

use super::candidates::{self, TableUse};
use super::db::{col, AdviseError, Db};
use super::hypo::param_count;
use super::indexes::{self, Index, TableInfo};
use super::rank::{self, ColumnList};

/// A statement of the workload, with the time it costs.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    /// Its normalized text.
    pub query: String,
    /// Calls.
    pub calls: u64,
    /// Mean time, ms.
    pub mean_ms: f64,
    /// Time it costs the workload, ms: lido's calls × mean when lido saw
    /// it, else pg_stat_statements' total.
    pub weight_ms: f64,
    /// Where `weight_ms` comes from: `pg_stat_statements` or `lido`.
    pub weight_from: &'static str,
}

/// One column list to verify for one table of one statement.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The table.
    pub table: TableInfo,
    /// The columns.
    pub list: ColumnList,
    /// `CREATE INDEX ON table (cols)`, quoted by the server.
    pub create: String,
}

/// A statement and its candidates, grouped per table.
#[derive(Debug, Clone)]
pub struct Work {
    /// The statement.
    pub statement: Workload,
    /// How many `$n` parameters it has.
    pub params: usize,
    /// Per table, the lists to try (fewest columns first).
    pub tables: Vec<Vec<Candidate>>,
}

/// A statement or column list left out, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// The statement.
    pub query: String,
    /// The table, when it got that far.
    pub table: Option<String>,
    /// The columns, when it got that far.
    pub columns: Vec<String>,
    /// Why.
    pub reason: String,
}

/// Builds the work for `statements`; what it leaves out goes to `skipped`.
pub async fn build(
    db: &Db,
    statements: &[Workload],
    existing: &[Index],
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<Work>, AdviseError> {
    let mut tables: HashMap<Vec<String>, Option<TableInfo>> = HashMap::new();
    let mut out = Vec::new();
    for s in statements {
        let scopes = match candidates::extract(&s.query) {
            Ok(scopes) => scopes,
            Err(e) => {
                skip(skipped, s, None, &[], format!("not parsed: {e}"));
                continue;
            }
        };
        for scope in &scopes {
            for t in &scope.tables {
                if !tables.contains_key(&t.name) {
                    let info = indexes::table(db, &t.name).await?;
                    tables.insert(t.name.clone(), info);
                }
            }
        }
        let has = |name: &[String], c: &str| {
            tables
                .get(name)
                .and_then(Option::as_ref)
                .is_some_and(|t| t.has(c))
        };
        let uses: Vec<TableUse> = scopes.iter().flat_map(|sc| sc.resolve(&has)).collect();
        let mut work = Work {
            statement: s.clone(),
            params: param_count(&s.query),
            tables: Vec::new(),
        };
        for u in &uses {
            let Some(Some(info)) = tables.get(&u.table) else {
                continue;
            };
            let lists = lists_for(db, u, info, existing, s, skipped).await?;
            if !lists.is_empty() {
                work.tables.push(lists);
            }
        }
        if !work.tables.is_empty() {
            out.push(work);
        }
    }
    Ok(out)
}

async fn lists_for(
    db: &Db,
    u: &TableUse,
    info: &TableInfo,
    existing: &[Index],
    s: &Workload,
    skipped: &mut Vec<Skipped>,
) -> Result<Vec<Candidate>, AdviseError> {
    let mut out = Vec::new();
    for list in rank::column_lists(u, info) {
        if let Some(i) = indexes::covering(existing, info.oid, &list.columns, list.eq) {
            let why = format!("already served by index {}", i.name);
            skip(skipped, s, Some(&info.display), &list.columns, why);
            continue;
        }
        let create = create_sql(db, info, &list.columns).await?;
        out.push(Candidate {
            table: info.clone(),
            list,
            create,
        });
    }
    Ok(out)
}

/// `CREATE INDEX ON table (columns)`, identifiers quoted by the server.
async fn create_sql(db: &Db, t: &TableInfo, columns: &[String]) -> Result<String, AdviseError> {
    let cols = columns.to_vec();
    let rows = db
        .rows(
            "SELECT string_agg(quote_ident(c), ', ' ORDER BY n) \
             FROM unnest($1::text[]) WITH ORDINALITY u(c, n)",
            &[&cols],
        )
        .await
        .map_err(AdviseError::Database)?;
    let quoted: String = rows
        .first()
        .map(|r| col::<Option<String>>(r, 0))
        .transpose()
        .map_err(AdviseError::Database)?
        .flatten()
        .unwrap_or_default();
    Ok(format!("CREATE INDEX ON {} ({quoted})", t.display))
}

fn skip(out: &mut Vec<Skipped>, s: &Workload, table: Option<&str>, cols: &[String], why: String) {
    out.push(Skipped {
        query: s.query.clone(),
        table: table.map(str::to_owned),
        columns: cols.to_vec(),
        reason: why,
    });
}

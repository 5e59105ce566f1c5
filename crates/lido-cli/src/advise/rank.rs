//! Candidate column lists for one table of one statement, and the score
//! that ranks recommendations across the workload.

use super::candidates::TableUse;
use super::indexes::TableInfo;

/// Most columns in one candidate index.
const MAX_COLUMNS: usize = 3;

/// A column list to try, with how many leading columns are equality ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnList {
    /// Columns, in index order.
    pub columns: Vec<String>,
    /// How many leading columns are compared with `=`.
    pub eq: usize,
}

/// The column lists worth trying for `u` on `t`, fewest columns first:
/// the most selective filter column (else range column) alone, the most
/// selective join key alone (the inner side of a nested loop), then the
/// equality columns and join keys (most selective first,
/// `pg_stats.n_distinct`) followed by the most selective range column or
/// else the `ORDER BY` columns.
pub fn column_lists(u: &TableUse, t: &TableInfo) -> Vec<ColumnList> {
    let known = |cols: &[String]| -> Vec<String> {
        let mut v: Vec<String> = cols.iter().filter(|c| t.has(c)).cloned().collect();
        // Most distinct values first; unknown statistics keep their place last.
        v.sort_by(|a, b| {
            let (da, db) = (t.distinct(a).unwrap_or(0.0), t.distinct(b).unwrap_or(0.0));
            db.total_cmp(&da)
        });
        v
    };
    let filters = known(&u.eq);
    let mut both = u.eq.clone();
    both.extend(u.join.iter().filter(|c| !u.eq.contains(c)).cloned());
    let eq = known(&both);
    let join = eq
        .iter()
        .find(|c| u.join.contains(c) && !filters.contains(c));
    let range: Vec<String> = known(&u.range)
        .into_iter()
        .filter(|c| !eq.contains(c))
        .collect();
    let order: Vec<String> = u
        .order
        .iter()
        .filter(|c| t.has(c) && !eq.contains(c))
        .cloned()
        .collect();
    let mut out: Vec<ColumnList> = Vec::new();
    let mut push = |columns: Vec<String>, eq: usize| {
        let columns: Vec<String> = columns.into_iter().take(MAX_COLUMNS).collect();
        let eq = eq.min(columns.len());
        if !columns.is_empty() && !out.iter().any(|c| c.columns == columns) {
            out.push(ColumnList { columns, eq });
        }
    };
    if let Some(first) = filters.first() {
        push(vec![first.clone()], 1);
    } else if let Some(first) = range.first() {
        push(vec![first.clone()], 0);
    }
    if let Some(j) = join {
        push(vec![j.clone()], 1);
    }
    let mut full = eq.clone();
    let n_eq = full.len().min(MAX_COLUMNS);
    if let Some(r) = range.first() {
        full.truncate(MAX_COLUMNS - 1);
        full.push(r.clone());
    } else if !full.is_empty() || !order.is_empty() {
        full.truncate(MAX_COLUMNS.saturating_sub(order.len()).max(1));
        full.extend(order.iter().cloned());
    }
    push(full, n_eq);
    out.sort_by_key(|c| c.columns.len());
    out
}

/// The write penalty of a table: half its write share (rows written
/// against scans), so that an index on a table that is mostly written
/// counts for at most half of what it saves.
pub fn write_penalty(t: &TableInfo) -> f64 {
    0.5 * t.write_share()
}

/// The score of a recommendation: the time it saves (ms), less the penalty.
pub fn score(saved_ms: f64, penalty: f64) -> f64 {
    saved_ms * (1.0 - penalty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableInfo {
        TableInfo {
            oid: 1,
            display: "orders".into(),
            columns: vec![
                ("id".into(), Some(100_000.0)),
                ("status".into(), Some(5.0)),
                ("customer_id".into(), Some(10_000.0)),
                ("created_at".into(), Some(90_000.0)),
            ],
            writes: 30,
            reads: 10,
        }
    }

    fn v(cols: &[&str]) -> Vec<String> {
        cols.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn equality_columns_go_first_most_selective_first_then_one_range_column() {
        let u = TableUse {
            table: v(&["orders"]),
            eq: v(&["status", "customer_id"]),
            join: vec![],
            range: v(&["created_at"]),
            order: vec![],
        };
        let lists = column_lists(&u, &table());
        assert_eq!(lists[0].columns, v(&["customer_id"]));
        assert_eq!(
            lists[1].columns,
            v(&["customer_id", "status", "created_at"])
        );
        assert_eq!(lists[1].eq, 2);
    }

    #[test]
    fn order_by_columns_follow_equality_ones() {
        let u = TableUse {
            table: v(&["orders"]),
            eq: v(&["customer_id", "nope"]),
            join: vec![],
            range: vec![],
            order: v(&["created_at"]),
        };
        let lists = column_lists(&u, &table());
        assert_eq!(lists[0].columns, v(&["customer_id"]));
        assert_eq!(lists[1].columns, v(&["customer_id", "created_at"]));
        assert!((write_penalty(&table()) - 0.375).abs() < 1e-9);
    }

    #[test]
    fn a_join_key_is_tried_alone_and_with_the_filters() {
        let u = TableUse {
            table: v(&["orders"]),
            eq: v(&["status"]),
            join: v(&["customer_id"]),
            range: vec![],
            order: vec![],
        };
        let lists: Vec<Vec<String>> = column_lists(&u, &table())
            .into_iter()
            .map(|l| l.columns)
            .collect();
        assert_eq!(
            lists,
            [
                v(&["status"]),
                v(&["customer_id"]),
                v(&["customer_id", "status"])
            ]
        );
        assert_eq!(score(100.0, 0.25), 75.0);
    }
}

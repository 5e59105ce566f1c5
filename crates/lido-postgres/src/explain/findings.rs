//! [`summarize`]: a plan turned into [`Finding`]s a person can act on.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::node::Node;

/// What a [`Finding`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FindingKind {
    /// A sequential scan of a large table that keeps few of its rows.
    SeqScanSelectiveFilter,
    /// The planner's row estimate is off by [`Thresholds::estimate_factor`]
    /// or more (needs `ANALYZE` figures).
    RowEstimateOff,
    /// A sort that spilled to disk.
    SortSpill,
    /// A hash (join or aggregate) that spilled to disk in batches.
    HashSpill,
    /// A nested loop whose inner side reads many rows in all.
    NestedLoopLargeInner,
}

impl FindingKind {
    /// A stable snake_case name (the `kind` in the stored JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SeqScanSelectiveFilter => "seq_scan_selective_filter",
            Self::RowEstimateOff => "row_estimate_off",
            Self::SortSpill => "sort_spill",
            Self::HashSpill => "hash_spill",
            Self::NestedLoopLargeInner => "nested_loop_large_inner",
        }
    }
}

/// One thing a plan shows that is worth acting on.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// What it is about.
    pub kind: FindingKind,
    /// The relation concerned, when there is one.
    pub relation: Option<String>,
    /// The plan node: `Seq Scan on orders`, `Sort`, ...
    pub node: String,
    /// What the plan shows, with its numbers.
    pub message: String,
    /// What to do about it.
    pub suggestion: String,
}

impl Finding {
    /// As JSON: `{"kind", "relation", "node", "message", "suggestion"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "kind": self.kind.as_str(),
            "relation": self.relation,
            "node": self.node,
            "message": self.message,
            "suggestion": self.suggestion,
        })
    }
}

/// A table's size as `pg_class` has it (`reltuples`, `relpages`), for
/// judging scans in plans without `ANALYZE` figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableSize {
    /// Estimated rows (`reltuples`; negative: never analyzed).
    pub rows: f64,
    /// Pages of 8 kB (`relpages`).
    pub pages: f64,
}

/// Where [`summarize_with`] draws its lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// A table with at least this many rows is large (default 10 000).
    pub large_table_rows: f64,
    /// A filter keeping at most this share of the rows is selective
    /// (default 0.05).
    pub selective_share: f64,
    /// An estimate off by this factor or more is reported (default 10).
    pub estimate_factor: f64,
    /// Estimates are compared only where either side has at least this
    /// many rows (default 100).
    pub estimate_min_rows: f64,
    /// A nested loop whose inner side reads this many rows in all is
    /// reported (default 100 000).
    pub nested_loop_rows: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            large_table_rows: 10_000.0,
            selective_share: 0.05,
            estimate_factor: 10.0,
            estimate_min_rows: 100.0,
            nested_loop_rows: 100_000.0,
        }
    }
}

/// The findings of `plan` (`EXPLAIN (FORMAT JSON)` output), with the
/// default [`Thresholds`] and table sizes only from `ANALYZE` figures.
///
/// ```
/// use serde_json::json;
/// use lido_postgres::explain::{summarize, FindingKind};
/// let plan = json!([{"Plan": {"Node Type": "Sort", "Plan Rows": 1000.0,
///     "Actual Rows": 1000.0, "Actual Loops": 1.0,
///     "Sort Method": "external merge", "Sort Space Used": 2048, "Sort Space Type": "Disk"}}]);
/// let findings = summarize(&plan);
/// assert_eq!(findings[0].kind, FindingKind::SortSpill);
/// ```
pub fn summarize(plan: &Value) -> Vec<Finding> {
    summarize_with(plan, &HashMap::new(), &Thresholds::default())
}

/// The findings of `plan`, with table sizes by relation name (see
/// [`table_sizes`](super::table_sizes)) for plans without `ANALYZE`.
pub fn summarize_with(
    plan: &Value,
    sizes: &HashMap<String, TableSize>,
    t: &Thresholds,
) -> Vec<Finding> {
    let mut nodes = Vec::new();
    if let Some(root) = Node::root(plan) {
        root.walk(&mut nodes);
    }
    let mut out = Vec::new();
    for n in &nodes {
        out.extend(seq_scan(n, sizes, t));
        out.extend(estimate(n, t));
        out.extend(sort_spill(n));
        out.extend(hash_spill(n));
        out.extend(nested_loop(n, t));
    }
    out
}

/// Rows in `n`'s table: from `sizes`, else what an `ANALYZE` scan read.
fn table_rows(n: &Node<'_>, sizes: &HashMap<String, TableSize>) -> Option<f64> {
    let rel = n.relation()?;
    let known = sizes
        .get(&rel)
        .or_else(|| rel.rsplit('.').next().and_then(|r| sizes.get(r)))
        .map(|s| s.rows)
        .filter(|r| *r >= 0.0);
    known.or_else(|| n.analyzed().then(|| n.rows_read()))
}

fn seq_scan(n: &Node<'_>, sizes: &HashMap<String, TableSize>, t: &Thresholds) -> Option<Finding> {
    if !n.kind().ends_with("Seq Scan") {
        return None;
    }
    let filter = n.text("Filter")?;
    let table = table_rows(n, sizes)?;
    let kept = n.rows();
    if table < t.large_table_rows || kept > table * t.selective_share {
        return None;
    }
    let rel = n.relation().unwrap_or_default();
    let share = if table > 0.0 {
        kept / table * 100.0
    } else {
        0.0
    };
    Some(Finding {
        kind: FindingKind::SeqScanSelectiveFilter,
        relation: Some(rel.clone()),
        node: n.label(),
        message: format!(
            "{} reads all of about {table:.0} rows to keep about {kept:.0} ({share:.2} %) with filter {filter}",
            n.label()
        ),
        suggestion: format!(
            "an index on the filtered column(s) of {rel} ({filter}) lets the planner skip the scan; \
             `lido advise` checks candidates with HypoPG"
        ),
    })
}

fn estimate(n: &Node<'_>, t: &Thresholds) -> Option<Finding> {
    let (actual, planned) = (n.num("Actual Rows")?, n.num("Plan Rows")?);
    if n.loops() == 0.0 || actual.max(planned) < t.estimate_min_rows {
        return None;
    }
    let factor = actual.max(planned) / actual.min(planned).max(1.0);
    if factor < t.estimate_factor {
        return None;
    }
    let rel = n.relation().or_else(|| n.first_relation());
    let what = rel.as_deref().unwrap_or("the tables involved");
    Some(Finding {
        kind: FindingKind::RowEstimateOff,
        relation: rel.clone(),
        node: n.label(),
        message: format!(
            "{}: the planner expected {planned:.0} rows per loop, {actual:.0} came ({factor:.0}x off)",
            n.label()
        ),
        suggestion: format!(
            "ANALYZE {what}; if the estimate stays off, raise the column's statistics target \
             or add extended statistics (CREATE STATISTICS) on correlated columns"
        ),
    })
}

fn sort_spill(n: &Node<'_>) -> Option<Finding> {
    if n.text("Sort Space Type") != Some("Disk") {
        return None;
    }
    let kb = n.num("Sort Space Used").unwrap_or(0.0);
    let method = n.text("Sort Method").unwrap_or("external");
    Some(Finding {
        kind: FindingKind::SortSpill,
        relation: n.first_relation(),
        node: n.label(),
        message: format!("{} ({method}) spilled {kb:.0} kB to disk", n.label()),
        suggestion: format!(
            "raise work_mem above {kb:.0} kB for this statement (SET LOCAL work_mem), \
             or serve the ORDER BY from an index"
        ),
    })
}

fn hash_spill(n: &Node<'_>) -> Option<Finding> {
    let batches = n.num("Hash Batches").or_else(|| n.num("HashAgg Batches"))?;
    if batches <= 1.0 {
        return None;
    }
    let peak = n.num("Peak Memory Usage").unwrap_or(0.0);
    Some(Finding {
        kind: FindingKind::HashSpill,
        relation: n.first_relation(),
        node: n.label(),
        message: format!(
            "{} ran in {batches:.0} batches (peak memory {peak:.0} kB): it spilled to disk",
            n.label()
        ),
        suggestion: "raise work_mem (or hash_mem_multiplier) for this statement so the hash \
                     fits in memory, or reduce the rows hashed with a more selective filter"
            .to_owned(),
    })
}

fn nested_loop(n: &Node<'_>, t: &Thresholds) -> Option<Finding> {
    if n.kind() != "Nested Loop" {
        return None;
    }
    let inner = n.child("Inner")?;
    let loops = if inner.analyzed() {
        inner.loops()
    } else {
        n.child("Outer").map_or(1.0, |o| o.rows())
    };
    let per_loop = inner.rows_read();
    let total = loops * per_loop;
    let cheap_lookup = inner.kind().contains("Index") && per_loop <= 10.0;
    if total < t.nested_loop_rows || cheap_lookup {
        return None;
    }
    let rel = inner.first_relation();
    let what = rel.as_deref().unwrap_or("the inner side");
    Some(Finding {
        kind: FindingKind::NestedLoopLargeInner,
        relation: rel.clone(),
        node: n.label(),
        message: format!(
            "Nested Loop runs its inner side ({}) about {loops:.0} times, reading about {total:.0} rows in all",
            inner.label()
        ),
        suggestion: format!(
            "an index on the join column(s) of {what} turns each loop into a lookup; \
             if the outer row count is misestimated, ANALYZE so the planner can pick a hash join"
        ),
    })
}

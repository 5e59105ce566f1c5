//! Findings from hand-written plans (the shapes PostgreSQL 15 writes).

use std::collections::HashMap;

use serde_json::json;

use super::*;

fn kinds(f: &[Finding]) -> Vec<FindingKind> {
    f.iter().map(|f| f.kind).collect()
}

#[test]
fn a_selective_seq_scan_on_a_large_table_is_found_with_analyze_figures() {
    let plan = json!([{"Plan": {
        "Node Type": "Seq Scan", "Relation Name": "orders", "Alias": "orders",
        "Plan Rows": 5.0, "Actual Rows": 3.0, "Actual Loops": 1.0,
        "Filter": "(note = 'x'::text)", "Rows Removed by Filter": 199997.0
    }}]);
    let f = summarize(&plan);
    assert_eq!(kinds(&f), vec![FindingKind::SeqScanSelectiveFilter]);
    assert_eq!(f[0].relation.as_deref(), Some("orders"));
    assert_eq!(f[0].node, "Seq Scan on orders");
    assert!(f[0].message.contains("200000 rows"), "{}", f[0].message);
    assert!(f[0].message.contains("keep about 3"), "{}", f[0].message);
    assert!(f[0].suggestion.contains("index"), "{}", f[0].suggestion);
}

#[test]
fn a_generic_seq_scan_needs_the_table_size() {
    let plan = json!([{"Plan": {
        "Node Type": "Seq Scan", "Relation Name": "orders",
        "Plan Rows": 1.0, "Filter": "(note = $1)"
    }}]);
    assert!(summarize(&plan).is_empty(), "no size, no finding");
    let mut sizes = HashMap::new();
    sizes.insert(
        "orders".to_owned(),
        TableSize {
            rows: 100_000.0,
            pages: 1000.0,
        },
    );
    let f = summarize_with(&plan, &sizes, &Thresholds::default());
    assert_eq!(kinds(&f), vec![FindingKind::SeqScanSelectiveFilter]);
    // Small tables and unselective filters are left alone.
    sizes.get_mut("orders").unwrap().rows = 500.0;
    assert!(summarize_with(&plan, &sizes, &Thresholds::default()).is_empty());
    let wide = json!({"Node Type": "Seq Scan", "Relation Name": "orders",
        "Plan Rows": 90000.0, "Filter": "(note <> $1)"});
    sizes.get_mut("orders").unwrap().rows = 100_000.0;
    assert!(summarize_with(&wide, &sizes, &Thresholds::default()).is_empty());
    // No filter: reading the whole table is what was asked.
    let all = json!({"Node Type": "Seq Scan", "Relation Name": "orders", "Plan Rows": 100000.0});
    assert!(summarize_with(&all, &sizes, &Thresholds::default()).is_empty());
}

#[test]
fn row_estimates_off_tenfold_either_way() {
    let plan = json!([{"Plan": {
        "Node Type": "Index Scan", "Relation Name": "items", "Index Name": "items_pkey",
        "Plan Rows": 10.0, "Actual Rows": 5000.0, "Actual Loops": 1.0
    }}]);
    let f = summarize(&plan);
    assert_eq!(kinds(&f), vec![FindingKind::RowEstimateOff]);
    assert!(
        f[0].message.contains("expected 10 rows"),
        "{}",
        f[0].message
    );
    assert!(
        f[0].message.contains("5000 came (500x off)"),
        "{}",
        f[0].message
    );
    assert!(f[0].suggestion.starts_with("ANALYZE items"));
    let close = json!({"Node Type": "Index Scan", "Relation Name": "items",
        "Plan Rows": 1000.0, "Actual Rows": 200.0, "Actual Loops": 1.0});
    assert!(summarize(&close).is_empty(), "5x is not reported");
    let tiny = json!({"Node Type": "Index Scan", "Relation Name": "items",
        "Plan Rows": 1.0, "Actual Rows": 50.0, "Actual Loops": 1.0});
    assert!(summarize(&tiny).is_empty(), "too few rows to matter");
    let never = json!({"Node Type": "Index Scan", "Relation Name": "items",
        "Plan Rows": 1000.0, "Actual Rows": 0.0, "Actual Loops": 0.0});
    assert!(summarize(&never).is_empty(), "a node that never ran");
}

#[test]
fn sorts_and_hashes_that_spill_to_disk() {
    let plan = json!([{"Plan": {
        "Node Type": "Sort", "Plan Rows": 100000.0, "Actual Rows": 100000.0, "Actual Loops": 1.0,
        "Sort Method": "external merge", "Sort Space Used": 3520, "Sort Space Type": "Disk",
        "Plans": [{
            "Node Type": "Hash Join", "Parent Relationship": "Outer",
            "Plan Rows": 100000.0, "Actual Rows": 100000.0, "Actual Loops": 1.0,
            "Plans": [
                {"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "a",
                 "Plan Rows": 100000.0, "Actual Rows": 100000.0, "Actual Loops": 1.0},
                {"Node Type": "Hash", "Parent Relationship": "Inner",
                 "Plan Rows": 100000.0, "Actual Rows": 100000.0, "Actual Loops": 1.0,
                 "Hash Buckets": 32768, "Original Hash Buckets": 32768,
                 "Hash Batches": 8, "Original Hash Batches": 8, "Peak Memory Usage": 1100,
                 "Plans": [{"Node Type": "Seq Scan", "Parent Relationship": "Outer",
                   "Relation Name": "b", "Plan Rows": 100000.0,
                   "Actual Rows": 100000.0, "Actual Loops": 1.0}]}
            ]
        }]
    }, "Execution Time": 120.5}]);
    let f = summarize(&plan);
    assert_eq!(
        kinds(&f),
        vec![FindingKind::SortSpill, FindingKind::HashSpill]
    );
    assert!(f[0].message.contains("external merge"), "{}", f[0].message);
    assert!(f[0].message.contains("3520 kB"), "{}", f[0].message);
    assert!(f[0].suggestion.contains("work_mem"));
    assert!(f[1].message.contains("8 batches"), "{}", f[1].message);
    assert_eq!(f[1].relation.as_deref(), Some("b"));
    let in_memory =
        json!({"Node Type": "Sort", "Sort Space Type": "Memory", "Sort Space Used": 25});
    assert!(summarize(&in_memory).is_empty());
    let agg = json!({"Node Type": "Aggregate", "Strategy": "Hashed", "HashAgg Batches": 5,
        "Peak Memory Usage": 4200});
    assert_eq!(kinds(&summarize(&agg)), vec![FindingKind::HashSpill]);
}

#[test]
fn nested_loops_over_a_large_inner_side() {
    let plan = json!({"Node Type": "Nested Loop",
    "Plan Rows": 1000.0, "Actual Rows": 1000.0, "Actual Loops": 1.0,
    "Plans": [
        {"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "users",
         "Plan Rows": 1000.0, "Actual Rows": 1000.0, "Actual Loops": 1.0},
        {"Node Type": "Seq Scan", "Parent Relationship": "Inner", "Relation Name": "events",
         "Plan Rows": 1.0, "Actual Rows": 1.0, "Actual Loops": 1000.0,
         "Filter": "(events.user_id = users.id)", "Rows Removed by Filter": 4999.0}
    ]});
    let f: Vec<Finding> = summarize(&plan)
        .into_iter()
        .filter(|f| f.kind == FindingKind::NestedLoopLargeInner)
        .collect();
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].relation.as_deref(), Some("events"));
    assert!(f[0].message.contains("1000 times"), "{}", f[0].message);
    assert!(f[0].message.contains("5000000 rows"), "{}", f[0].message);
    // An index lookup per loop is what a nested loop is for.
    let lookup = json!({"Node Type": "Nested Loop", "Plans": [
        {"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "users",
         "Plan Rows": 100000.0},
        {"Node Type": "Index Scan", "Parent Relationship": "Inner", "Relation Name": "events",
         "Plan Rows": 2.0}]});
    assert!(summarize(&lookup).is_empty());
    // Estimated: outer rows times inner rows.
    let est = json!({"Node Type": "Nested Loop", "Plans": [
        {"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "users",
         "Plan Rows": 1000.0},
        {"Node Type": "Materialize", "Parent Relationship": "Inner", "Plan Rows": 500.0,
         "Plans": [{"Node Type": "Seq Scan", "Parent Relationship": "Outer",
            "Relation Name": "events", "Plan Rows": 500.0}]}]});
    let f = summarize(&est);
    assert_eq!(kinds(&f), vec![FindingKind::NestedLoopLargeInner]);
    assert_eq!(f[0].relation.as_deref(), Some("events"));
}

#[test]
fn findings_serialize_and_relations_are_listed_once() {
    let plan = json!([{"Plan": {"Node Type": "Append", "Plans": [
        {"Node Type": "Seq Scan", "Relation Name": "a", "Schema": "s"},
        {"Node Type": "Seq Scan", "Relation Name": "a", "Schema": "s"},
        {"Node Type": "Index Scan", "Relation Name": "b"}]}}]);
    assert_eq!(relations(&plan), vec!["s.a".to_owned(), "b".to_owned()]);
    let f = Finding {
        kind: FindingKind::SortSpill,
        relation: None,
        node: "Sort".into(),
        message: "m".into(),
        suggestion: "s".into(),
    };
    assert_eq!(
        f.to_json(),
        json!({"kind": "sort_spill", "relation": null, "node": "Sort", "message": "m", "suggestion": "s"})
    );
    assert!(summarize(&json!("not a plan")).is_empty());
    assert!(summarize(&json!([])).is_empty());
}

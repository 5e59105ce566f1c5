//! Reading `EXPLAIN (FORMAT JSON)` output: the plan's root and its nodes.

use serde_json::{Map, Value};

/// One plan node (an object with `"Node Type"`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'a>(&'a Map<String, Value>);

impl<'a> Node<'a> {
    /// The root node of `plan`: the array `EXPLAIN` returns, its first
    /// element (`{"Plan": ...}`), or a node itself.
    pub(crate) fn root(plan: &'a Value) -> Option<Self> {
        match plan {
            Value::Array(items) => items.first().and_then(Self::root),
            Value::Object(map) => match map.get("Plan") {
                Some(inner) => Self::root(inner),
                None => map.contains_key("Node Type").then_some(Self(map)),
            },
            _ => None,
        }
    }

    /// A text field.
    pub(crate) fn text(&self, key: &str) -> Option<&'a str> {
        self.0.get(key).and_then(Value::as_str)
    }

    /// A number field.
    pub(crate) fn num(&self, key: &str) -> Option<f64> {
        self.0.get(key).and_then(Value::as_f64)
    }

    /// `Node Type`.
    pub(crate) fn kind(&self) -> &'a str {
        self.text("Node Type").unwrap_or("?")
    }

    /// The relation scanned, schema-qualified when the plan says so.
    pub(crate) fn relation(&self) -> Option<String> {
        let rel = self.text("Relation Name")?;
        Some(match self.text("Schema") {
            Some(s) => format!("{s}.{rel}"),
            None => rel.to_owned(),
        })
    }

    /// `Seq Scan on orders`, or the node type alone.
    pub(crate) fn label(&self) -> String {
        match self.relation() {
            Some(r) => format!("{} on {r}", self.kind()),
            None => self.kind().to_owned(),
        }
    }

    /// Whether the plan has `ANALYZE` figures (actual rows and loops).
    pub(crate) fn analyzed(&self) -> bool {
        self.0.contains_key("Actual Rows")
    }

    /// Rows per loop: actual with `ANALYZE`, else the planner's estimate.
    pub(crate) fn rows(&self) -> f64 {
        self.num("Actual Rows")
            .or_else(|| self.num("Plan Rows"))
            .unwrap_or(0.0)
    }

    /// Loops run (`ANALYZE` only; 1 otherwise).
    pub(crate) fn loops(&self) -> f64 {
        self.num("Actual Loops").unwrap_or(1.0)
    }

    /// Rows read per loop before filters: returned plus removed.
    pub(crate) fn rows_read(&self) -> f64 {
        self.rows()
            + self.num("Rows Removed by Filter").unwrap_or(0.0)
            + self.num("Rows Removed by Join Filter").unwrap_or(0.0)
    }

    /// The child nodes.
    pub(crate) fn children(&self) -> Vec<Node<'a>> {
        match self.0.get("Plans") {
            Some(Value::Array(plans)) => plans
                .iter()
                .filter_map(|p| p.as_object().map(Node))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The child with this `Parent Relationship` (`Outer`, `Inner`).
    pub(crate) fn child(&self, relationship: &str) -> Option<Node<'a>> {
        self.children()
            .into_iter()
            .find(|c| c.text("Parent Relationship") == Some(relationship))
    }

    /// The first relation in this subtree, depth first.
    pub(crate) fn first_relation(&self) -> Option<String> {
        self.relation()
            .or_else(|| self.children().iter().find_map(Node::first_relation))
    }

    /// This node and every node under it, depth first.
    pub(crate) fn walk(&self, out: &mut Vec<Node<'a>>) {
        out.push(*self);
        for c in self.children() {
            c.walk(out);
        }
    }
}

/// Every relation a plan scans (`schema.table` when the plan names the
/// schema, as with `VERBOSE`; else the table), once each.
pub fn relations(plan: &Value) -> Vec<String> {
    let mut nodes = Vec::new();
    if let Some(root) = Node::root(plan) {
        root.walk(&mut nodes);
    }
    let mut out: Vec<String> = Vec::new();
    for r in nodes.iter().filter_map(Node::relation) {
        if !out.contains(&r) {
            out.push(r);
        }
    }
    out
}

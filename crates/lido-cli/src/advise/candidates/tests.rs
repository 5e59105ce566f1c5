//! Candidate extraction from SQL.

use super::*;

fn uses(sql: &str) -> Vec<TableUse> {
    let scopes = extract(sql).expect("parses");
    let catalog = |t: &[String], c: &str| match t.last().map(String::as_str) {
        Some("orders") => ["customer_id", "created_at", "status", "id"].contains(&c),
        Some("customers") => ["id", "email", "region"].contains(&c),
        _ => false,
    };
    scopes.iter().flat_map(|s| s.resolve(&catalog)).collect()
}

fn v(cols: &[&str]) -> Vec<String> {
    cols.iter().map(|c| (*c).to_owned()).collect()
}

#[test]
fn equality_and_range_columns_of_one_table() {
    let t = uses("SELECT * FROM orders WHERE customer_id = $1 AND created_at >= $2 ORDER BY created_at DESC LIMIT $3");
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].table, v(&["orders"]));
    assert_eq!(t[0].eq, v(&["customer_id"]));
    assert_eq!(t[0].range, v(&["created_at"]));
    assert_eq!(t[0].order, v(&["created_at"]));
}

#[test]
fn aliases_and_join_keys_resolve_to_their_tables() {
    let t = uses(
        "SELECT o.id FROM public.orders o JOIN customers AS c ON c.id = o.customer_id \
         WHERE c.email = $1 AND status IN ($2, $3)",
    );
    let orders = t.iter().find(|u| u.table == v(&["public", "orders"]));
    let customers = t.iter().find(|u| u.table == v(&["customers"]));
    let cols = |u: Option<&TableUse>| u.map(|u| (u.eq.clone(), u.join.clone()));
    assert_eq!(cols(orders), Some((v(&["status"]), v(&["customer_id"]))));
    assert_eq!(cols(customers), Some((v(&["email"]), v(&["id"]))));
}

#[test]
fn subqueries_updates_and_deletes_have_their_own_blocks() {
    let t = uses(
        "SELECT * FROM customers c WHERE EXISTS \
         (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.status = $1)",
    );
    let orders = t.iter().find(|u| u.table == v(&["orders"]));
    let cols = orders.map(|u| (u.eq.clone(), u.join.clone()));
    assert_eq!(cols, Some((v(&["status"]), v(&["customer_id"]))));
    let t = uses("UPDATE orders SET status = $1 WHERE customer_id = $2 AND id BETWEEN $3 AND $4");
    assert_eq!(t[0].eq, v(&["customer_id"]));
    assert_eq!(t[0].range, v(&["id"]));
    let t = uses("DELETE FROM \"Orders\" WHERE created_at < now() - $1::interval");
    assert_eq!(t[0].table, v(&["Orders"]));
    assert_eq!(t[0].range, v(&["created_at"]));
}

#[test]
fn functions_of_columns_and_inequalities_are_not_candidates() {
    let t = uses("SELECT * FROM customers WHERE lower(email) = $1 AND region <> $2");
    assert!(t.is_empty(), "{t:?}");
    let t = uses("SELECT * FROM orders WHERE customer_id = ANY($1) OR status IS NULL");
    assert_eq!(t[0].eq, v(&["customer_id", "status"]));
}

#[test]
fn ambiguous_or_unknown_columns_are_dropped() {
    let t = uses("SELECT * FROM orders, customers WHERE id = $1 AND email = $2");
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].table, v(&["customers"]));
    assert_eq!(t[0].eq, v(&["email"]));
    assert!(extract("SELEC nonsense").is_err());
}

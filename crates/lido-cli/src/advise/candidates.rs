//! Which columns of which tables a statement filters, joins and sorts on,
//! read from its SQL with a real parser (sqlparser, PostgreSQL dialect).
//! pg_stat_statements' `$1` placeholders parse as parameters.
//!
//! [`extract`] gives one [`Scope`] per `SELECT` block (and per `UPDATE` or
//! `DELETE`): its tables with their aliases and every column use it saw;
//! [`Scope::resolve`] then assigns each use to a table, asking the catalog
//! (a closure) about columns written without a table name when the block
//! reads several tables.

use sqlparser::ast::{
    BinaryOperator, Expr, FromTable, Ident, InTarget, JoinConstraint, JoinOperator, ObjectName,
    ObjectNamePart, OrderByExpr, OrderByKind, Query, SetExpr, Statement, TableFactor,
    TableWithJoins,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// How a statement uses a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// `col = …`, `col IN (…)`, `col = ANY(…)`, `col IS NULL`.
    Eq,
    /// `col < …`, `col >= …`, `col BETWEEN … AND …`.
    Range,
    /// `a.col = b.col`: a join key.
    Join,
    /// `ORDER BY col`.
    Order,
}

/// A table named in a `FROM`, `JOIN`, `UPDATE` or `DELETE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    /// Its name parts (`schema`, `table`), unquoted ones lower-cased.
    pub name: Vec<String>,
    /// Its alias, if any.
    pub alias: Option<String>,
}

impl TableRef {
    fn answers_to(&self, qualifier: &str) -> bool {
        match &self.alias {
            Some(a) => a == qualifier,
            None => self.name.last().is_some_and(|n| n == qualifier),
        }
    }
}

/// One column use: `qualifier.column` as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnUse {
    /// The table name or alias written before the column.
    pub qualifier: Option<String>,
    /// The column.
    pub column: String,
    /// How it is used.
    pub kind: Use,
}

/// One query block: its own tables, the outer blocks' tables (for
/// correlated references) and its column uses.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Tables of this block.
    pub tables: Vec<TableRef>,
    /// Tables of the enclosing blocks, for qualified outer references.
    pub outer: Vec<TableRef>,
    /// Every column use seen in this block.
    pub uses: Vec<ColumnUse>,
}

/// The columns one table is filtered, joined and sorted on, deduplicated in
/// the order first seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableUse {
    /// The table's name parts.
    pub table: Vec<String>,
    /// Equality columns compared with values.
    pub eq: Vec<String>,
    /// Join keys (equal to another table's column).
    pub join: Vec<String>,
    /// Range columns.
    pub range: Vec<String>,
    /// `ORDER BY` columns.
    pub order: Vec<String>,
}

impl Scope {
    /// Assigns each column use to one of this block's tables (or an outer
    /// one). `has_column(table, column)` answers for unqualified columns
    /// when the block reads more than one table; uses nobody claims are
    /// dropped.
    pub fn resolve(&self, has_column: &dyn Fn(&[String], &str) -> bool) -> Vec<TableUse> {
        let mut out: Vec<TableUse> = Vec::new();
        for u in &self.uses {
            let Some(table) = self.table_of(u, has_column) else {
                continue;
            };
            let i = match out.iter().position(|t| t.table == table.name) {
                Some(i) => i,
                None => {
                    out.push(TableUse {
                        table: table.name.clone(),
                        ..TableUse::default()
                    });
                    out.len() - 1
                }
            };
            let t = &mut out[i];
            let list = match u.kind {
                Use::Eq => &mut t.eq,
                Use::Join => &mut t.join,
                Use::Range => &mut t.range,
                Use::Order => &mut t.order,
            };
            if !list.contains(&u.column) {
                list.push(u.column.clone());
            }
        }
        out
    }

    fn table_of<'a>(
        &'a self,
        u: &ColumnUse,
        has_column: &dyn Fn(&[String], &str) -> bool,
    ) -> Option<&'a TableRef> {
        match &u.qualifier {
            Some(q) => self
                .tables
                .iter()
                .chain(&self.outer)
                .find(|t| t.answers_to(q)),
            None if self.tables.len() == 1 => self.tables.first(),
            None => {
                let mut owners = self
                    .tables
                    .iter()
                    .filter(|t| has_column(&t.name, &u.column));
                let first = owners.next();
                // An ambiguous name is PostgreSQL's error, not ours to guess.
                first.filter(|_| owners.next().is_none())
            }
        }
    }
}

/// Parses `sql` and returns its query blocks.
pub fn extract(sql: &str) -> Result<Vec<Scope>, String> {
    let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| e.to_string())?;
    let mut w = Walker::default();
    for s in &statements {
        w.statement(s);
    }
    Ok(w.done)
}

/// An identifier as PostgreSQL folds it.
fn fold(id: &Ident) -> String {
    match id.quote_style {
        Some(_) => id.value.clone(),
        None => id.value.to_lowercase(),
    }
}

fn name_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .filter_map(|p| match p {
            ObjectNamePart::Identifier(id) => Some(fold(id)),
            ObjectNamePart::Function(_) => None,
        })
        .collect()
}

/// A plain column reference: `col`, `t.col` or `s.t.col`.
fn column_of(e: &Expr) -> Option<(Option<String>, String)> {
    match e {
        Expr::Identifier(id) => Some((None, fold(id))),
        Expr::CompoundIdentifier(ids) if ids.len() >= 2 => {
            let col = fold(&ids[ids.len() - 1]);
            Some((Some(fold(&ids[ids.len() - 2])), col))
        }
        Expr::Nested(inner) => column_of(inner),
        _ => None,
    }
}

#[derive(Default)]
struct Walker {
    /// Blocks being walked, innermost last.
    stack: Vec<Scope>,
    done: Vec<Scope>,
}

impl Walker {
    fn statement(&mut self, s: &Statement) {
        match s {
            Statement::Query(q) => self.query(q),
            Statement::Update(u) => {
                self.open();
                self.from(std::slice::from_ref(&u.table));
                if let Some(sqlparser::ast::UpdateTableFromKind::AfterSet(f))
                | Some(sqlparser::ast::UpdateTableFromKind::BeforeSet(f)) = &u.from
                {
                    self.from(f);
                }
                if let Some(e) = &u.selection {
                    self.predicate(e);
                }
                self.close();
            }
            Statement::Delete(d) => {
                self.open();
                let (FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f)) = &d.from;
                self.from(f);
                if let Some(using) = &d.using {
                    self.from(using);
                }
                if let Some(e) = &d.selection {
                    self.predicate(e);
                }
                self.close();
            }
            Statement::Insert(i) => {
                if let Some(q) = &i.source {
                    self.query(q);
                }
            }
            _ => {}
        }
    }

    fn open(&mut self) {
        let outer = self
            .stack
            .last()
            .map(|s| s.tables.iter().chain(&s.outer).cloned().collect())
            .unwrap_or_default();
        self.stack.push(Scope {
            outer,
            ..Scope::default()
        });
    }

    fn close(&mut self) {
        if let Some(s) = self.stack.pop() {
            self.done.push(s);
        }
    }

    fn note(&mut self, e: &Expr, kind: Use) {
        if let (Some((qualifier, column)), Some(scope)) = (column_of(e), self.stack.last_mut()) {
            scope.uses.push(ColumnUse {
                qualifier,
                column,
                kind,
            });
        }
    }

    fn query(&mut self, q: &Query) {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.query(&cte.query);
            }
        }
        let order: &[OrderByExpr] = match q.order_by.as_ref().map(|o| &o.kind) {
            Some(OrderByKind::Expressions(list)) => list,
            _ => &[],
        };
        self.set_expr(&q.body, order);
    }

    fn set_expr(&mut self, body: &SetExpr, order: &[OrderByExpr]) {
        match body {
            SetExpr::Select(sel) => {
                self.open();
                self.from(&sel.from);
                if let Some(e) = &sel.selection {
                    self.predicate(e);
                }
                for o in order {
                    self.note(&o.expr, Use::Order);
                }
                self.close();
            }
            SetExpr::Query(q) => self.query(q),
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left, &[]);
                self.set_expr(right, &[]);
            }
            SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) => self.statement(s),
            _ => {}
        }
    }

    fn from(&mut self, list: &[TableWithJoins]) {
        for twj in list {
            self.factor(&twj.relation);
            for j in &twj.joins {
                self.factor(&j.relation);
                if let Some(JoinConstraint::On(e)) = constraint(&j.join_operator) {
                    self.predicate(e);
                }
            }
        }
    }

    fn factor(&mut self, f: &TableFactor) {
        match f {
            TableFactor::Table { name, alias, .. } => {
                if let Some(scope) = self.stack.last_mut() {
                    scope.tables.push(TableRef {
                        name: name_parts(name),
                        alias: alias.as_ref().map(|a| fold(&a.name)),
                    });
                }
            }
            TableFactor::Derived { subquery, .. } => self.query(subquery),
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.from(std::slice::from_ref(table_with_joins)),
            _ => {}
        }
    }

    /// Walks a `WHERE` or `ON` condition.
    fn predicate(&mut self, e: &Expr) {
        match e {
            Expr::BinaryOp { left, op, right } => self.binary(left, op, right),
            Expr::Nested(inner) => self.predicate(inner),
            Expr::Between {
                expr,
                negated: false,
                low,
                high,
            } => {
                self.note(expr, Use::Range);
                self.subqueries(low);
                self.subqueries(high);
            }
            Expr::In {
                expr,
                target,
                negated: false,
                ..
            } => {
                self.note(expr, Use::Eq);
                if let InTarget::Subquery(q) = target {
                    self.query(q);
                }
            }
            Expr::AnyOp {
                left,
                compare_op: BinaryOperator::Eq,
                ..
            } => self.note(left, Use::Eq),
            Expr::IsNull(inner) => self.note(inner, Use::Eq),
            Expr::Exists { subquery, .. } => self.query(subquery),
            other => self.subqueries(other),
        }
    }

    fn binary(&mut self, left: &Expr, op: &BinaryOperator, right: &Expr) {
        use BinaryOperator as B;
        match op {
            B::And | B::Or => {
                self.predicate(left);
                self.predicate(right);
            }
            B::Eq | B::Lt | B::LtEq | B::Gt | B::GtEq => {
                let kind = if *op == B::Eq { Use::Eq } else { Use::Range };
                match (column_of(left), column_of(right)) {
                    (Some(_), Some(_)) if kind == Use::Eq => {
                        self.note(left, Use::Join);
                        self.note(right, Use::Join);
                    }
                    (Some(_), None) => {
                        self.note(left, kind);
                        self.subqueries(right);
                    }
                    (None, Some(_)) => {
                        self.note(right, kind);
                        self.subqueries(left);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// A scalar subquery inside a value (`col = (SELECT …)`) is a block too.
    fn subqueries(&mut self, e: &Expr) {
        match e {
            Expr::Subquery(q) => self.query(q),
            Expr::Nested(inner) => self.subqueries(inner),
            _ => {}
        }
    }
}

fn constraint(op: &JoinOperator) -> Option<&JoinConstraint> {
    use JoinOperator as J;
    match op {
        J::Join(c)
        | J::Inner(c)
        | J::Left(c)
        | J::LeftOuter(c)
        | J::Right(c)
        | J::RightOuter(c)
        | J::FullOuter(c)
        | J::Semi(c)
        | J::LeftSemi(c)
        | J::RightSemi(c)
        | J::Anti(c)
        | J::LeftAnti(c)
        | J::RightAnti(c)
        | J::StraightJoin(c) => Some(c),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

//! Verifying a candidate with HypoPG: the planner's cost of a statement's
//! generic plan before and with a hypothetical index.
//!
//! Everything runs in one transaction that is rolled back at the end, so
//! the database is left as it was: `CREATE EXTENSION IF NOT EXISTS hypopg`
//! (when the package is installed and the role may), `SET LOCAL
//! plan_cache_mode = force_generic_plan`, and per statement `PREPARE` +
//! `EXPLAIN (FORMAT JSON) EXECUTE name(NULL, …)` (PostgreSQL 15 has no
//! `EXPLAIN (GENERIC_PLAN)`), each inside a savepoint so that one statement
//! that cannot be planned does not end the session's work.

use serde_json::Value;

use super::db::Db;

/// A transaction with HypoPG loaded, or why there is none.
pub struct Hypo<'a> {
    db: &'a Db,
    /// `Err(reason)` when HypoPG cannot be used.
    pub ready: Result<(), String>,
}

impl<'a> Hypo<'a> {
    /// Begins the transaction and loads HypoPG if it can.
    pub async fn begin(db: &'a Db) -> Hypo<'a> {
        let ready = async {
            db.simple(
                "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; \
                 SET LOCAL statement_timeout = '30s'; SAVEPOINT lido_ext",
            )
            .await?;
            match db.simple("CREATE EXTENSION IF NOT EXISTS hypopg").await {
                Ok(_) => Ok(()),
                Err(e) => {
                    let _ = db.simple("ROLLBACK TO SAVEPOINT lido_ext").await;
                    Err(format!("HypoPG is not available ({e}); install the package (e.g. postgresql-15-hypopg) and allow CREATE EXTENSION hypopg"))
                }
            }
        }
        .await;
        Hypo { db, ready }
    }

    /// Rolls everything back.
    pub async fn end(self) {
        let _ = self.db.simple("ROLLBACK").await;
    }

    /// The estimated total cost of `sql`'s generic plan (`params`: how many
    /// `$n` it has).
    pub async fn cost(&self, sql: &str, params: usize) -> Result<f64, String> {
        self.in_savepoint(&explain_sql(sql, params)).await
    }

    /// The cost of `sql` with the hypothetical indexes made by `creates`
    /// (`CREATE INDEX ON …` statements), removed again afterwards.
    pub async fn cost_with(
        &self,
        sql: &str,
        params: usize,
        creates: &[&str],
    ) -> Result<f64, String> {
        let mut script = String::new();
        for create in creates {
            let lit = create.replace('\'', "''");
            script.push_str(&format!(
                "SELECT indexrelid FROM hypopg_create_index('{lit}'); "
            ));
        }
        script.push_str(&explain_sql(sql, params));
        let cost = self.in_savepoint(&script).await;
        let _ = self.db.simple("SELECT hypopg_reset()").await;
        cost
    }

    /// Runs `script` in a savepoint and reads the plan's cost; on an error
    /// rolls back to the savepoint (the transaction goes on) and drops the
    /// prepared statement, which a rollback keeps.
    async fn in_savepoint(&self, script: &str) -> Result<f64, String> {
        self.db.simple("SAVEPOINT lido_q").await?;
        match self.db.simple(script).await {
            Ok(rows) => {
                let _ = self.db.simple("RELEASE SAVEPOINT lido_q").await;
                let plan = rows
                    .into_iter()
                    .flatten()
                    .find(|r| r.contains("Total Cost"));
                plan.as_deref()
                    .and_then(total_cost)
                    .ok_or_else(|| "EXPLAIN gave no plan cost".to_owned())
            }
            Err(e) => {
                let _ = self.db.simple("ROLLBACK TO SAVEPOINT lido_q").await;
                let _ = self.db.simple("DEALLOCATE ALL").await;
                Err(e)
            }
        }
    }
}

/// The script that explains `sql`'s generic plan.
fn explain_sql(sql: &str, params: usize) -> String {
    let sql = sql.trim().trim_end_matches(';');
    if params == 0 {
        return format!("EXPLAIN (FORMAT JSON) {sql}");
    }
    let nulls = vec!["NULL"; params].join(", ");
    format!(
        "PREPARE lido_advise_q AS {sql}; EXPLAIN (FORMAT JSON) EXECUTE lido_advise_q({nulls}); \
         DEALLOCATE lido_advise_q"
    )
}

/// The top plan node's `Total Cost` in `EXPLAIN (FORMAT JSON)` output.
pub fn total_cost(json: &str) -> Option<f64> {
    let v: Value = serde_json::from_str(json).ok()?;
    v.get(0)?.get("Plan")?.get("Total Cost")?.as_f64()
}

/// The highest `$n` in `sql` (the statement's parameter count).
pub fn param_count(sql: &str) -> usize {
    let b = sql.as_bytes();
    let mut max = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) {
            let digits: String = b[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .map(|c| char::from(*c))
                .collect();
            max = max.max(digits.parse().unwrap_or(0));
            i += digits.len();
        }
        i += 1;
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_plan_cost_and_counts_parameters() {
        let json = r#"[{"Plan": {"Node Type": "Seq Scan", "Total Cost": 1693.0}}]"#;
        assert_eq!(total_cost(json), Some(1693.0));
        assert_eq!(
            param_count("SELECT * FROM t WHERE a = $1 AND b IN ($2, $10)"),
            10
        );
        assert_eq!(param_count("SELECT 'x$1'"), 0);
        assert_eq!(param_count("SELECT 1"), 0);
        assert!(explain_sql("SELECT $1::int;", 1).contains("EXECUTE lido_advise_q(NULL)"));
    }
}

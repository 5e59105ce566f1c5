//! `--apply`: create the recommended indexes, one at a time, with
//! `CREATE INDEX CONCURRENTLY` (writes go on while it builds), each after a
//! confirmation unless `--yes`.

use std::io::{BufRead, Write};

use serde::Serialize;

use super::db::{AdviseError, Db};
use super::recommend::Recommendation;

/// What happened to one recommendation.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// The statement.
    pub sql: String,
    /// `created`, `declined` or `failed: …`.
    pub outcome: String,
}

/// Creates each recommendation in rank order; stops at the first failure.
pub async fn apply(
    db: &Db,
    recs: &[Recommendation],
    yes: bool,
    done: &mut Vec<Applied>,
) -> Result<(), AdviseError> {
    for r in recs {
        if !yes && !confirm(&r.sql).await {
            done.push(Applied {
                sql: r.sql.clone(),
                outcome: "declined".into(),
            });
            continue;
        }
        eprintln!("lido advise: running {}", r.sql);
        match db.simple(&r.sql).await {
            Ok(_) => done.push(Applied {
                sql: r.sql.clone(),
                outcome: "created".into(),
            }),
            Err(e) => {
                done.push(Applied {
                    sql: r.sql.clone(),
                    outcome: format!("failed: {e}"),
                });
                return Err(AdviseError::Apply(format!(
                    "{} failed: {e} (a failed CREATE INDEX CONCURRENTLY can leave an INVALID index behind: \
                     look for it with \\d {} and DROP INDEX CONCURRENTLY it)",
                    r.sql, r.table
                )));
            }
        }
    }
    Ok(())
}

/// Asks on stderr, reads a line from stdin; only `y` or `yes` agree (end of
/// input declines).
async fn confirm(sql: &str) -> bool {
    eprint!("Run `{sql}` now? [y/N] ");
    let _ = std::io::stderr().flush();
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map(|_| line)
            .unwrap_or_default()
    })
    .await
    .unwrap_or_default();
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

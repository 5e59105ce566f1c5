//! The report: one serializable document (`--json`) and its text form.

use std::fmt::Write as _;

use serde::Serialize;

use super::apply::Applied;
use super::client_side::{LidoStatement, SlowQuery};
use super::indexes::DropCandidate;
use super::plan::Skipped;
use super::recommend::Recommendation;
use super::stat_statements::TopStatement;
use super::tables::SeqScanTable;

/// A top statement, with lido's own view of it when given.
#[derive(Debug, Clone, Serialize)]
pub struct Top {
    /// pg_stat_statements' figures.
    #[serde(flatten)]
    pub server: TopStatement,
    /// lido's figures for the same statement (`--statements`).
    pub lido: Option<LidoStatement>,
}

/// Whether the recommendations were verified.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// HypoPG verified the candidates.
    pub hypopg: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// The least cost drop recommended (0.5 = 50%).
    pub min_cost_drop: f64,
}

/// Everything `lido advise` found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The layout's version.
    pub format: u32,
    /// The database (no password).
    pub database: String,
    /// `server_version`.
    pub server_version: String,
    /// How `top_statements` is ordered.
    pub order: String,
    /// The top statements.
    pub top_statements: Vec<Top>,
    /// `lido.slow_queries` per fingerprint (`None`: no such table).
    pub slow_queries: Option<Vec<SlowQuery>>,
    /// Tables read mostly by sequential scans (over 1,000 live rows).
    pub seq_scan_tables: Vec<SeqScanTable>,
    /// lido statements (`--statements`) pg_stat_statements did not list.
    pub lido_only: Vec<LidoStatement>,
    /// How the recommendations were checked.
    pub verification: Verification,
    /// Indexes to create, best first.
    pub recommendations: Vec<Recommendation>,
    /// Statements and candidates left out, and why.
    pub skipped: Vec<Skipped>,
    /// Indexes never scanned.
    pub unused_indexes: Vec<DropCandidate>,
    /// Indexes another one makes redundant.
    pub duplicate_indexes: Vec<DropCandidate>,
    /// What `--apply` did.
    pub applied: Vec<Applied>,
}

/// Aligned columns: `right[i]` right-aligns column `i`.
pub fn table(headers: &[&str], right: &[bool], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let last = cells.len().saturating_sub(1);
        let mut out = String::from(" ");
        for (i, c) in cells.into_iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            let cell = if right.get(i).copied().unwrap_or(false) {
                format!(" {c:>w$}")
            } else if i == last {
                format!(" {c}")
            } else {
                format!(" {c:<w$}")
            };
            out.push_str(&cell);
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// `s` on one line, at most `n` characters.
pub fn short(s: &str, n: usize) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() <= n {
        return one;
    }
    one.chars().take(n.saturating_sub(1)).collect::<String>() + "…"
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |v| format!("{:.1}", v * 100.0))
}

impl Report {
    /// The report as text.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "lido advise: {} (PostgreSQL {})\n",
            self.database, self.server_version
        );
        self.top_text(&mut o);
        self.slow_text(&mut o);
        self.seq_text(&mut o);
        self.recommendations_text(&mut o);
        self.drops_text(&mut o);
        o
    }

    fn top_text(&self, o: &mut String) {
        let by = match self.order.as_str() {
            "mean" => "mean time",
            "calls" => "calls",
            "rows" => "rows",
            "hit" => "cache hit ratio, worst first",
            _ => "total time",
        };
        let _ = writeln!(
            o,
            "Top statements by {by} (pg_stat_statements, this database)"
        );
        if self.top_statements.is_empty() {
            let _ = writeln!(o, "  none recorded yet\n");
            return;
        }
        let lido = self.top_statements.iter().any(|t| t.lido.is_some());
        let mut headers = vec!["#", "calls", "total ms", "mean ms", "rows", "hit %"];
        if lido {
            headers.extend(["lido calls", "lido mean ms"]);
        }
        headers.push("query");
        let rows: Vec<Vec<String>> = self
            .top_statements
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let s = &t.server;
                let mut r = vec![
                    (i + 1).to_string(),
                    s.calls.to_string(),
                    format!("{:.1}", s.total_ms),
                    format!("{:.3}", s.mean_ms),
                    s.rows.to_string(),
                    pct(s.cache_hit_ratio),
                ];
                if lido {
                    r.push(t.lido.as_ref().map_or("-".into(), |l| l.calls.to_string()));
                    r.push(
                        t.lido
                            .as_ref()
                            .map_or("-".into(), |l| format!("{:.3}", l.mean_ms)),
                    );
                }
                r.push(short(&s.query, 80));
                r
            })
            .collect();
        let mut right = vec![true; headers.len() - 1];
        right.push(false);
        o.push_str(&table(&headers, &right, &rows));
        if !self.lido_only.is_empty() {
            let _ = writeln!(
                o,
                "  {} statement(s) lido saw are not in pg_stat_statements' list (see --json: lido_only)",
                self.lido_only.len()
            );
        }
        o.push('\n');
    }

    fn slow_text(&self, o: &mut String) {
        let Some(slow) = &self.slow_queries else {
            return;
        };
        let _ = writeln!(o, "Slow queries logged by lido (lido.slow_queries)");
        if slow.is_empty() {
            let _ = writeln!(o, "  none\n");
            return;
        }
        for s in slow {
            let _ = writeln!(
                o,
                "  {} × mean {:.1} ms, max {:.1} ms, last {}  {}",
                s.count,
                s.mean_ms,
                s.max_ms,
                s.last_logged_at,
                short(&s.query, 80)
            );
            for f in s.findings.as_array().into_iter().flatten() {
                let kind = f["kind"].as_str().unwrap_or("finding");
                let msg = f["message"].as_str().unwrap_or("");
                let _ = writeln!(o, "      {kind}: {msg}");
            }
        }
        o.push('\n');
    }

    fn seq_text(&self, o: &mut String) {
        if self.seq_scan_tables.is_empty() {
            return;
        }
        let _ = writeln!(
            o,
            "Tables read mostly by sequential scans (pg_stat_user_tables)"
        );
        let rows: Vec<Vec<String>> = self
            .seq_scan_tables
            .iter()
            .map(|t| {
                vec![
                    t.table.clone(),
                    t.seq_scans.to_string(),
                    format!("{:.0}", t.rows_per_seq_scan),
                    t.index_scans.to_string(),
                    t.live_rows.to_string(),
                    t.rows_written.to_string(),
                ]
            })
            .collect();
        let headers = [
            "table",
            "seq scans",
            "rows/seq scan",
            "index scans",
            "live rows",
            "rows written",
        ];
        o.push_str(&table(
            &headers,
            &[false, true, true, true, true, true],
            &rows,
        ));
        o.push('\n');
    }

    fn recommendations_text(&self, o: &mut String) {
        let v = &self.verification;
        let how = if v.hypopg {
            format!(
                "verified with HypoPG: planner cost drops by at least {:.0}%",
                v.min_cost_drop * 100.0
            )
        } else {
            format!(
                "UNVERIFIED: {}",
                v.reason.as_deref().unwrap_or("HypoPG not used")
            )
        };
        let _ = writeln!(o, "Index recommendations ({how})");
        if self.recommendations.is_empty() {
            let _ = writeln!(o, "  none");
        }
        for (i, r) in self.recommendations.iter().enumerate() {
            let cost = match (r.cost_before, r.cost_after) {
                (Some(b), Some(a)) => format!("cost {b:.1} -> {a:.1} (-{}%)", pct(r.cost_drop)),
                _ => "unverified".to_owned(),
            };
            let _ = writeln!(
                o,
                "  {}. {} ({}): {cost}; saves ~{:.1} ms; write penalty {:.0}% (writes {:.0}% of activity); score {:.1}",
                i + 1,
                r.table,
                r.columns.join(", "),
                r.saved_ms,
                r.write_penalty * 100.0,
                r.write_share * 100.0,
                r.score
            );
            let _ = writeln!(o, "     {}", r.sql);
            if !r.verified_with.is_empty() {
                let _ = writeln!(
                    o,
                    "     verified together with {} (the saving is shared)",
                    r.verified_with.join(", ")
                );
            }
            for s in &r.statements {
                let _ = writeln!(
                    o,
                    "     serves {} calls × {:.3} ms: {}",
                    s.calls,
                    s.mean_ms,
                    short(&s.query, 70)
                );
            }
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(o, "  Left out:");
            for s in &self.skipped {
                let what = match &s.table {
                    Some(t) if !s.columns.is_empty() => format!("{t} ({})", s.columns.join(", ")),
                    Some(t) => t.clone(),
                    None => short(&s.query, 60),
                };
                let _ = writeln!(o, "    {what}: {}", s.reason);
            }
        }
        o.push('\n');
        for a in &self.applied {
            let _ = writeln!(o, "Applied: {} -> {}", a.sql, a.outcome);
        }
        if !self.applied.is_empty() {
            o.push('\n');
        }
    }

    fn drops_text(&self, o: &mut String) {
        for (title, list) in [
            (
                "Unused indexes (idx_scan = 0 since the statistics were last reset)",
                &self.unused_indexes,
            ),
            (
                "Duplicate indexes (their columns lead another index)",
                &self.duplicate_indexes,
            ),
        ] {
            let _ = writeln!(o, "{title}");
            if list.is_empty() {
                let _ = writeln!(o, "  none\n");
                continue;
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|d| {
                    vec![
                        d.index.name.clone(),
                        d.index.table.clone(),
                        d.index.size.clone(),
                        d.index.columns.join(", "),
                        d.sql.clone(),
                    ]
                })
                .collect();
            let headers = ["index", "table", "size", "columns", "to drop"];
            o.push_str(&table(&headers, &[false, false, true], &rows));
            o.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let t = table(
            &["a", "bb"],
            &[true, false],
            &[vec!["10".into(), "x".into()], vec!["1".into(), "yy".into()]],
        );
        assert_eq!(t, "   a bb\n  10 x\n   1 yy\n");
        assert_eq!(short("a\n  b", 10), "a b");
        assert_eq!(short("abcdef", 4), "abc…");
    }
}

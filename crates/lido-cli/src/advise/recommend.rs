//! Verifying the candidates with HypoPG and ranking what is left across the
//! workload.

use serde::Serialize;

use super::hypo::Hypo;
use super::plan::{Candidate, Skipped, Work, Workload};
use super::rank;

/// Within this share of the best cost, fewer columns win.
const NEARLY_AS_GOOD: f64 = 0.05;

/// One index to create.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    /// The table.
    pub table: String,
    /// The columns, in index order.
    pub columns: Vec<String>,
    /// The SQL to run.
    pub sql: String,
    /// Whether HypoPG confirmed the planner would use it.
    pub verified: bool,
    /// The planner's cost of the heaviest statement it serves, before.
    pub cost_before: Option<f64>,
    /// … and with the index.
    pub cost_after: Option<f64>,
    /// `1 - after / before`.
    pub cost_drop: Option<f64>,
    /// Time saved across the workload, ms: Σ weight × cost drop (weight
    /// alone when unverified).
    pub saved_ms: f64,
    /// The table's rows written against its scans.
    pub write_share: f64,
    /// The share taken off for writes (see `rank::write_penalty`).
    pub write_penalty: f64,
    /// `saved_ms × (1 - write_penalty)`: the rank.
    pub score: f64,
    /// The statements it serves.
    pub statements: Vec<Workload>,
    /// Other recommended indexes it was verified together with (both sides
    /// of a join); the saving is shared between them.
    pub verified_with: Vec<String>,
    #[serde(skip)]
    table_oid: u32,
    #[serde(skip)]
    weight_ms: f64,
}

/// A verified (or, without HypoPG, unverified) pick for one table of one
/// statement.
struct Pick<'a> {
    candidate: &'a Candidate,
    before: Option<f64>,
    after: Option<f64>,
    /// The share of the statement's saving it gets (1 / indexes verified together).
    share: f64,
    /// The other indexes it was verified together with.
    with: Vec<String>,
}

impl<'a> Pick<'a> {
    fn new(candidate: &'a Candidate, before: Option<f64>, after: Option<f64>) -> Self {
        Pick {
            candidate,
            before,
            after,
            share: 1.0,
            with: Vec::new(),
        }
    }
}

/// Verifies `work` (when `hypo` is ready) and ranks the recommendations.
pub async fn recommend(
    work: &[Work],
    hypo: &Hypo<'_>,
    min_drop: f64,
    skipped: &mut Vec<Skipped>,
) -> Vec<Recommendation> {
    let mut out: Vec<Recommendation> = Vec::new();
    for w in work {
        let before = match &hypo.ready {
            Ok(()) => match hypo.cost(&w.statement.query, w.params).await {
                Ok(c) => Some(c),
                Err(e) => {
                    skip_all(w, skipped, format!("could not be planned: {e}"));
                    continue;
                }
            },
            Err(_) => None,
        };
        let picks = match before {
            Some(b) => {
                let mut bests = Vec::new();
                for lists in &w.tables {
                    bests.extend(best_alone(w, lists, b, hypo, skipped).await);
                }
                verified(w, &bests, b, hypo, min_drop, skipped).await
            }
            // Unverified: the full list of each table (equality, then range or order).
            None => w
                .tables
                .iter()
                .filter_map(|lists| lists.last())
                .map(|c| Pick::new(c, None, None))
                .collect(),
        };
        for p in &picks {
            add(&mut out, w, p);
        }
    }
    fold_prefixes(&mut out);
    for r in &mut out {
        r.score = rank::score(r.saved_ms, r.write_penalty);
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out
}

/// The list of one table that lowers the cost most alone (the fewest
/// columns within [`NEARLY_AS_GOOD`] of the best), with its cost.
async fn best_alone<'a>(
    w: &Work,
    lists: &'a [Candidate],
    before: f64,
    hypo: &Hypo<'_>,
    skipped: &mut Vec<Skipped>,
) -> Option<(&'a Candidate, f64)> {
    let mut costs = Vec::new();
    for c in lists {
        match hypo
            .cost_with(&w.statement.query, w.params, &[c.create.as_str()])
            .await
        {
            Ok(after) => costs.push((c, after)),
            Err(e) => skipped.push(skipped_of(w, c, format!("HypoPG failed: {e}"))),
        }
    }
    let best = costs.iter().map(|(_, a)| *a).fold(f64::INFINITY, f64::min);
    // Lists come fewest columns first: the first nearly as good as the best.
    costs
        .into_iter()
        .find(|(_, a)| *a <= best + (before - best).max(0.0) * NEARLY_AS_GOOD)
}

/// What to recommend for one statement: with several tables, their best
/// lists together when that beats each alone (a join served on both
/// sides); else each list whose cost drop alone is enough.
async fn verified<'a>(
    w: &Work,
    bests: &[(&'a Candidate, f64)],
    before: f64,
    hypo: &Hypo<'_>,
    min_drop: f64,
    skipped: &mut Vec<Skipped>,
) -> Vec<Pick<'a>> {
    if bests.len() > 1 {
        let creates: Vec<&str> = bests.iter().map(|(c, _)| c.create.as_str()).collect();
        let alone = bests.iter().map(|(_, a)| *a).fold(f64::INFINITY, f64::min);
        if let Ok(together) = hypo.cost_with(&w.statement.query, w.params, &creates).await {
            if drop_of(before, together) >= min_drop && together < alone * (1.0 - NEARLY_AS_GOOD) {
                let share = 1.0 / bests.len() as f64;
                return bests
                    .iter()
                    .map(|(c, _)| {
                        let mut p = Pick::new(c, Some(before), Some(together));
                        p.share = share;
                        p.with = bests
                            .iter()
                            .filter(|(o, _)| !std::ptr::eq(*o, *c))
                            .map(|(o, _)| label(o))
                            .collect();
                        p
                    })
                    .collect();
            }
        }
    }
    let mut out = Vec::new();
    for (c, after) in bests {
        let drop = drop_of(before, *after);
        if drop < min_drop {
            let why = format!(
                "cost drop {:.0}% is under --min-cost-drop {:.0}% (cost {before:.1} -> {after:.1})",
                drop * 100.0,
                min_drop * 100.0
            );
            skipped.push(skipped_of(w, c, why));
        } else {
            out.push(Pick::new(c, Some(before), Some(*after)));
        }
    }
    out
}

/// `table (col, col)`.
fn label(c: &Candidate) -> String {
    format!("{} ({})", c.table.display, c.list.columns.join(", "))
}

fn drop_of(before: f64, after: f64) -> f64 {
    if before <= 0.0 {
        0.0
    } else {
        (1.0 - after / before).max(0.0)
    }
}

fn add(out: &mut Vec<Recommendation>, w: &Work, p: &Pick<'_>) {
    let c = p.candidate;
    let drop = match (p.before, p.after) {
        (Some(b), Some(a)) => Some(drop_of(b, a)),
        _ => None,
    };
    let saved = w.statement.weight_ms * drop.unwrap_or(1.0) * p.share;
    let i = match out
        .iter()
        .position(|r| r.table_oid == c.table.oid && r.columns == c.list.columns)
    {
        Some(i) => i,
        None => {
            out.push(Recommendation {
                table: c.table.display.clone(),
                columns: c.list.columns.clone(),
                sql: format!(
                    "{};",
                    c.create
                        .replacen("CREATE INDEX", "CREATE INDEX CONCURRENTLY", 1)
                ),
                verified: drop.is_some(),
                cost_before: None,
                cost_after: None,
                cost_drop: None,
                saved_ms: 0.0,
                write_share: c.table.write_share(),
                write_penalty: rank::write_penalty(&c.table),
                score: 0.0,
                statements: Vec::new(),
                verified_with: Vec::new(),
                table_oid: c.table.oid,
                weight_ms: 0.0,
            });
            out.len() - 1
        }
    };
    let r = &mut out[i];
    r.saved_ms += saved;
    if w.statement.weight_ms >= r.weight_ms {
        r.weight_ms = w.statement.weight_ms;
        (r.cost_before, r.cost_after, r.cost_drop) = (p.before, p.after, drop);
    }
    for other in &p.with {
        if !r.verified_with.contains(other) {
            r.verified_with.push(other.clone());
        }
    }
    if !r.statements.iter().any(|s| s.query == w.statement.query) {
        r.statements.push(w.statement.clone());
    }
}

/// An index whose columns lead another recommended one on the same table
/// is served by that one: its statements and savings move there.
fn fold_prefixes(out: &mut Vec<Recommendation>) {
    let mut i = 0;
    while i < out.len() {
        let longer = (0..out.len()).find(|&j| {
            j != i
                && out[j].table_oid == out[i].table_oid
                && out[j].columns.len() > out[i].columns.len()
                && out[j].columns[..out[i].columns.len()] == out[i].columns[..]
        });
        match longer {
            Some(j) => {
                let short = out.remove(i);
                let j = if j > i { j - 1 } else { j };
                out[j].saved_ms += short.saved_ms;
                for s in short.statements {
                    if !out[j].statements.iter().any(|x| x.query == s.query) {
                        out[j].statements.push(s);
                    }
                }
            }
            None => i += 1,
        }
    }
}

fn skipped_of(w: &Work, c: &Candidate, reason: String) -> Skipped {
    Skipped {
        query: w.statement.query.clone(),
        table: Some(c.table.display.clone()),
        columns: c.list.columns.clone(),
        reason,
    }
}

fn skip_all(w: &Work, skipped: &mut Vec<Skipped>, reason: String) {
    skipped.push(Skipped {
        query: w.statement.query.clone(),
        table: None,
        columns: Vec::new(),
        reason,
    });
}

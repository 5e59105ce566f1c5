//! Which queued rows get a plan: sampled, at most one per fingerprint per
//! [`ExplainSampling::per_fingerprint`], statements `PREPARE` accepts.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::Value;
use tokio_postgres::Client;

use super::config::ExplainSampling;
use super::row::Planned;
use super::shared::Shared;
use crate::explain::{explain_generic, summarize_with, table_sizes, Thresholds};

/// The writer's plan sampler.
#[derive(Debug)]
pub(crate) struct Sampler {
    cfg: ExplainSampling,
    /// When each fingerprint last got a plan.
    last: HashMap<u64, Instant>,
}

/// Statements `PREPARE` takes (their first keyword, upper case).
fn preparable(query: &str) -> bool {
    let first = query
        .trim_start_matches(|c: char| c == '(' || c.is_whitespace())
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    matches!(
        first.as_str(),
        "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "WITH" | "VALUES" | "MERGE" | "TABLE"
    )
}

impl Sampler {
    pub(crate) fn new(cfg: ExplainSampling) -> Self {
        Self {
            cfg,
            last: HashMap::new(),
        }
    }

    /// Whether a row with `fingerprint` gets a plan now (and notes it).
    fn admit(&mut self, fingerprint: u64) -> bool {
        let now = Instant::now();
        let every = self.cfg.per_fingerprint;
        if self
            .last
            .get(&fingerprint)
            .is_some_and(|t| now.duration_since(*t) < every)
        {
            return false;
        }
        if self.cfg.sample_rate < 1.0 && fastrand::f64() >= self.cfg.sample_rate {
            return false;
        }
        if self.last.len() >= self.cfg.max_fingerprints {
            self.last.retain(|_, t| now.duration_since(*t) < every);
            if self.last.len() >= self.cfg.max_fingerprints {
                return false;
            }
        }
        self.last.insert(fingerprint, now);
        true
    }

    /// Fetches plans for the rows of `batch` that qualify.
    pub(crate) async fn plan_all(
        &mut self,
        client: &Client,
        batch: &mut [Planned],
        shared: &Shared,
    ) {
        for p in batch.iter_mut() {
            let Some(query) = p.row.query.clone() else {
                continue;
            };
            if p.plan.is_some() || !preparable(&query) || !self.admit(p.row.fingerprint) {
                continue;
            }
            match plan_one(client, &query, &p.row.param_types).await {
                Ok((plan, findings)) => {
                    p.plan = Some(plan);
                    p.findings = Some(findings);
                    shared.plans.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    shared.plan_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, fingerprint = %p.row.fingerprint_hex(),
                        "lido-postgres: no plan for a slow statement");
                    if client.is_closed() {
                        return;
                    }
                }
            }
        }
    }
}

async fn plan_one(
    client: &Client,
    query: &str,
    types: &[tokio_postgres::types::Type],
) -> Result<(Value, Value), crate::explain::ExplainError> {
    let plan = explain_generic(client, query, types).await?;
    let sizes = table_sizes(client, &plan).await?;
    let findings = summarize_with(&plan, &sizes, &Thresholds::default());
    let findings = Value::Array(findings.iter().map(|f| f.to_json()).collect());
    Ok((plan, findings))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn one_plan_per_fingerprint_per_period() {
        let mut s = Sampler::new(ExplainSampling {
            per_fingerprint: Duration::from_secs(600),
            sample_rate: 1.0,
            max_fingerprints: 2,
        });
        assert!(s.admit(1));
        assert!(!s.admit(1), "rate-limited");
        assert!(s.admit(2));
        assert!(!s.admit(3), "the map is full of fresh fingerprints");
        let mut never = Sampler::new(ExplainSampling {
            sample_rate: 0.0,
            ..ExplainSampling::default()
        });
        assert!(!never.admit(1));
    }

    #[test]
    fn only_statements_prepare_accepts() {
        assert!(preparable("select * from t"));
        assert!(preparable("(SELECT 1) UNION (SELECT 2)"));
        assert!(preparable("WITH x AS (SELECT 1) SELECT * FROM x"));
        assert!(!preparable("VACUUM t"));
        assert!(!preparable("CREATE INDEX i ON t (a)"));
        assert!(!preparable("SET work_mem = $1"));
    }
}

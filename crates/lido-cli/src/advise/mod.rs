//! `lido advise`: read the workload from pg_stat_statements (and, when
//! given, lido's own statement statistics and slow-query table), recommend
//! indexes verified with HypoPG and ranked across the workload, and list
//! unused and duplicate indexes. Nothing in the database changes unless
//! `--apply` is given (HypoPG runs in a transaction that is rolled back).
//!
//! The steps, one file each: `stat_statements` (is it enabled; the top
//! statements), `client_side` (lido's statistics, `lido.slow_queries`),
//! `candidates` (columns from the SQL, sqlparser), `plan` (catalog lookups,
//! column lists, existing indexes), `hypo` (HypoPG costs), `recommend` and
//! `rank` (verification and ranking), `indexes` (catalog, unused and
//! duplicate indexes), `tables` (tables read mostly by sequential scans), `report` (text and JSON), `apply` (`--apply`).

mod apply;
mod candidates;
mod client_side;
mod db;
mod hypo;
mod indexes;
mod plan;
mod rank;
mod recommend;
mod report;
mod stat_statements;
mod tables;

use std::process::ExitCode;

use lido_postgres::PgConfig;

use crate::args::AdviseArgs;
use crate::dburl;
use client_side::LidoStatement;
use db::{AdviseError, Db};
use plan::Workload;
use report::{Report, Top, Verification};
use stat_statements::TopStatement;

/// How many of pg_stat_statements' statements are read before ordering.
const READ_AT_MOST: i64 = 500;

/// Runs `lido advise`.
pub async fn run(args: AdviseArgs) -> ExitCode {
    let url = args.url().map(str::to_owned);
    match advise(&args).await {
        Ok(report) => {
            if args.json {
                let text = serde_json::to_string_pretty(&report).unwrap_or_default();
                println!("{}", scrubbed(&text, url.as_deref()));
            } else {
                print!("{}", scrubbed(&report.text(), url.as_deref()));
            }
            let failed = report
                .applied
                .iter()
                .any(|a| a.outcome.starts_with("failed"));
            ExitCode::from(if failed { 5 } else { 0 })
        }
        Err(e) => {
            let msg = scrubbed(&e.to_string(), url.as_deref());
            match e {
                AdviseError::NoStatStatements(_) => eprintln!("error: {msg}"),
                _ => eprintln!("error: {}", crate::util::one_line(&msg)),
            }
            ExitCode::from(e.exit_code())
        }
    }
}

fn scrubbed(text: &str, url: Option<&str>) -> String {
    url.map_or_else(|| text.to_owned(), |u| dburl::scrub(text, u))
}

/// The settings to connect with.
fn config(args: &AdviseArgs) -> Result<PgConfig, AdviseError> {
    let mut cfg = match args.url() {
        Some(u) if dburl::is_postgres(u) => dburl::postgres(u).map_err(AdviseError::Usage)?,
        Some(u) => {
            return Err(AdviseError::Usage(format!(
                "{:?} is not a PostgreSQL connection string (lido advise reads PostgreSQL's statistics)",
                dburl::redact(u)
            )))
        }
        None => PgConfig::from_env()
            .map_err(|e| AdviseError::Usage(format!("invalid PG* environment setting: {e}")))?,
    };
    cfg.validate()
        .map_err(|e| AdviseError::Usage(format!("invalid connection settings: {e}")))?;
    cfg.connect_timeout.get_or_insert(args.timeout);
    cfg.fallback_application_name
        .get_or_insert_with(|| "lido advise".to_owned());
    Ok(cfg)
}

async fn advise(args: &AdviseArgs) -> Result<Report, AdviseError> {
    if !(0.0..=1.0).contains(&args.min_cost_drop) {
        return Err(AdviseError::Usage(
            "--min-cost-drop is a fraction between 0 and 1 (0.5 = 50%)".into(),
        ));
    }
    let cfg = config(args)?;
    let lido = match &args.statements {
        Some(s) => Some(client_side::load(s).await?),
        None => None,
    };
    let db = Db::connect(&cfg).await?;
    // Keep our own statements out of the view (superusers only; else they
    // are told apart by their mark).
    let _ = db.simple("SET pg_stat_statements.track = 'none'").await;
    let view = stat_statements::check(&db).await?;
    let version = db
        .simple("SHOW server_version")
        .await
        .map_err(AdviseError::Database)?
        .into_iter()
        .flatten()
        .next()
        .unwrap_or_default();
    let all = stat_statements::statements(&db, &view, READ_AT_MOST).await?;
    let top_list = stat_statements::top(&all, &args.order, usize::from(args.top));
    let (top, lido_only) = join(&top_list, &all, lido.as_deref());
    let existing = indexes::all(&db).await?;
    let (recs, skipped, verification) = advice(&db, args, &top, &lido_only, &existing).await?;
    let mut applied = Vec::new();
    if args.apply {
        if let Err(e) = apply::apply(&db, &recs, args.yes, &mut applied).await {
            eprintln!("error: {e}");
        }
    }
    Ok(Report {
        format: 1,
        database: cfg.to_string(),
        server_version: version,
        order: args.order.clone(),
        top_statements: top,
        slow_queries: client_side::slow_queries(&db, i64::from(args.top)).await?,
        seq_scan_tables: tables::seq_scanned(&db, 1000, i64::from(args.top)).await?,
        lido_only,
        verification,
        recommendations: recs,
        skipped,
        unused_indexes: indexes::unused(&existing),
        duplicate_indexes: indexes::duplicates(&existing),
        applied,
    })
}

/// The recommendations for the workload, what was left out, and how they
/// were verified (HypoPG's transaction is rolled back before this returns).
async fn advice(
    db: &Db,
    args: &AdviseArgs,
    top: &[Top],
    lido_only: &[LidoStatement],
    existing: &[indexes::Index],
) -> Result<
    (
        Vec<recommend::Recommendation>,
        Vec<plan::Skipped>,
        Verification,
    ),
    AdviseError,
> {
    let mut skipped = Vec::new();
    let work = plan::build(db, &workload(top, lido_only), existing, &mut skipped).await?;
    let hypo = hypo::Hypo::begin(db).await;
    let recs = recommend::recommend(&work, &hypo, args.min_cost_drop, &mut skipped).await;
    dedup(&mut skipped);
    let verification = Verification {
        hypopg: hypo.ready.is_ok(),
        reason: hypo.ready.clone().err(),
        min_cost_drop: args.min_cost_drop,
    };
    hypo.end().await;
    Ok((recs, skipped, verification))
}

/// The same statement and candidate can be left out more than once (one
/// per query block): each reason once.
fn dedup(skipped: &mut Vec<plan::Skipped>) {
    let mut seen = std::collections::HashSet::new();
    skipped.retain(|s| {
        seen.insert((
            s.query.clone(),
            s.table.clone(),
            s.columns.clone(),
            s.reason.clone(),
        ))
    });
}

/// The top statements with lido's view of each, and the lido statements
/// pg_stat_statements does not have at all.
fn join(
    top: &[TopStatement],
    all: &[TopStatement],
    lido: Option<&[LidoStatement]>,
) -> (Vec<Top>, Vec<LidoStatement>) {
    let lido = lido.unwrap_or_default();
    let tops = top
        .iter()
        .map(|s| Top {
            lido: lido
                .iter()
                .find(|l| l.matches(&s.fingerprint, &s.query))
                .cloned(),
            server: s.clone(),
        })
        .collect();
    let only = lido
        .iter()
        .filter(|l| !all.iter().any(|s| l.matches(&s.fingerprint, &s.query)))
        .cloned()
        .collect();
    (tops, only)
}

/// What the candidates are weighed by: lido's calls × mean when lido saw
/// the statement, else pg_stat_statements' total time.
fn workload(top: &[Top], lido_only: &[LidoStatement]) -> Vec<Workload> {
    let server = top.iter().map(|t| match &t.lido {
        Some(l) => Workload {
            query: t.server.query.clone(),
            calls: l.calls,
            mean_ms: l.mean_ms,
            weight_ms: l.calls as f64 * l.mean_ms,
            weight_from: "lido",
        },
        None => Workload {
            query: t.server.query.clone(),
            calls: u64::try_from(t.server.calls).unwrap_or(0),
            mean_ms: t.server.mean_ms,
            weight_ms: t.server.total_ms,
            weight_from: "pg_stat_statements",
        },
    });
    let client = lido_only.iter().map(|l| Workload {
        query: l.query.clone(),
        calls: l.calls,
        mean_ms: l.mean_ms,
        weight_ms: l.calls as f64 * l.mean_ms,
        weight_from: "lido",
    });
    let mut all: Vec<Workload> = server.chain(client).collect();
    // Heaviest first: they are verified first.
    all.sort_by(|a, b| b.weight_ms.total_cmp(&a.weight_ms));
    all
}

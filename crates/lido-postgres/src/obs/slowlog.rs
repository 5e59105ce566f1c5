//! The slow-query log: statements at or above their threshold, logged at
//! WARN with target `lido::slow_query`.
//!
//! The SQL is always logged normalized (literals replaced by `$n`), so no
//! constant written into it (`PASSWORD '…'`) reaches the log; parameter
//! values are left out unless `log_parameters` is on, which adds them
//! (their `Debug` form) as `params`. Both are cut to [`SQL_LOG_CHARS`]
//! characters.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::PgError;
use crate::obs::call::{Call, Params};
use crate::obs::errors::ErrorKind;
use crate::obs::shape::Shape;
use crate::slow_table::SlowRow;

/// Longest SQL (and parameter list) the slow-query log writes, in characters.
pub const SQL_LOG_CHARS: usize = 200;

/// What the log line says about one slow call.
pub(crate) struct Slow<'e> {
    pub(crate) took: Duration,
    pub(crate) limit: Duration,
    pub(crate) rows: u64,
    pub(crate) err: Option<&'e PgError>,
    pub(crate) with_params: bool,
}

/// `s` cut to `max` characters, with `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn params_text(params: Params<'_>) -> String {
    let list: Vec<String> = match params {
        Params::None => Vec::new(),
        Params::Plain(p) => p.iter().map(|v| format!("{v:?}")).collect(),
        Params::Typed(p) => p.iter().map(|(v, _)| format!("{v:?}")).collect(),
    };
    truncate(&format!("[{}]", list.join(", ")), SQL_LOG_CHARS)
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Logs one slow call on database `db`; `shape` is the statement's
/// (`None`: a prepared statement, whose text the client does not keep).
pub(crate) fn log(db: &str, call: &Call<'_>, shape: Option<&Shape>, slow: &Slow<'_>) {
    let (fp, sql) = match shape {
        Some(s) => (
            format!("{:016x}", s.fingerprint),
            truncate(&s.text, SQL_LOG_CHARS),
        ),
        None => (String::new(), "(prepared statement)".to_owned()),
    };
    let kind = slow.err.map(ErrorKind::of);
    let error = kind.as_ref().map(ErrorKind::error_type);
    let (took, limit) = (ms(slow.took), ms(slow.limit));
    let op = call.op.as_str();
    let rows = slow.rows;
    if slow.with_params {
        let params = params_text(call.params);
        tracing::warn!(target: "lido::slow_query", duration_ms = took, threshold_ms = limit,
            operation = op, db.namespace = db, rows, fingerprint = %fp, error.type = error,
            sql = %sql, params = %params,
            "slow query took {took} ms (threshold {limit} ms): {sql} {params}");
    } else {
        tracing::warn!(target: "lido::slow_query", duration_ms = took, threshold_ms = limit,
            operation = op, db.namespace = db, rows, fingerprint = %fp, error.type = error,
            sql = %sql,
            "slow query took {took} ms (threshold {limit} ms): {sql}");
    }
}

/// The slow-query table's row for the call [`log`] reported: the same
/// normalized SQL (whole), parameters only with `with_params`.
pub(crate) fn row(
    call: &Call<'_>,
    shape: Option<&Shape>,
    slow: &Slow<'_>,
    class: Option<Arc<str>>,
    site: Option<&'static std::panic::Location<'static>>,
) -> SlowRow {
    let param_types = match call.params {
        Params::Typed(p) => p.iter().map(|(_, t)| t.clone()).collect(),
        Params::None | Params::Plain(_) => Vec::new(),
    };
    SlowRow {
        at: SystemTime::now(),
        took: slow.took,
        query: shape.map(|s| Arc::clone(&s.text)),
        fingerprint: shape.map_or_else(SlowRow::prepared_fingerprint, |s| s.fingerprint),
        rows: slow.err.is_none().then_some(slow.rows),
        sqlstate: slow.err.map(|e| ErrorKind::of(e).error_type().to_owned()),
        class,
        call_site: site,
        params: slow.with_params.then(|| params_text(call.params)),
        param_types,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ééé", 2), "éé…");
        let p: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&1i32, &"x"];
        assert_eq!(params_text(Params::Plain(&p)), r#"[1, "x"]"#);
    }
}

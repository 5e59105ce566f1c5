//! The dashboard at `/`: an HTML page with its stylesheet and scripts
//! (served from here, no external assets, no build step) that polls
//! `/dashboard/series` every second, `/statements` every few seconds,
//! `/health` and `/metrics`, and `/cluster` (the Cluster panel) until it
//! answers 404 (one server).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use lido_postgres::{PgPool, StatementOrder};
use serde_json::{json, Value};

use super::scrub::Scrubber;
use super::series::Series;

/// The page.
pub const PAGE: &str = include_str!("dashboard.html");
/// Its stylesheet.
pub const CSS: &str = include_str!("dashboard.css");
/// The charts (canvas drawing, no dependencies).
pub const CHARTS_JS: &str = include_str!("charts.js");
/// The panels and the polling loop.
pub const DASHBOARD_JS: &str = include_str!("dashboard.js");

/// Statements listed when `limit` is not given.
const DEFAULT_LIMIT: usize = 20;
/// At most this many statements.
const MAX_LIMIT: usize = 500;

/// What the dashboard's JSON endpoints read.
struct Ctx {
    series: Series,
    /// The pool whose statements `/statements` lists (PostgreSQL only).
    statements: Option<PgPool>,
    scrub: Scrubber,
}

/// `/`, its assets, `/dashboard/series` and `/statements`.
pub fn router(series: Series, statements: Option<PgPool>, scrub: Scrubber) -> Router {
    let ctx = Arc::new(Ctx {
        series,
        statements,
        scrub,
    });
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/dashboard.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/charts.js",
            get(|| async { asset("text/javascript; charset=utf-8", CHARTS_JS) }),
        )
        .route(
            "/dashboard.js",
            get(|| async { asset("text/javascript; charset=utf-8", DASHBOARD_JS) }),
        )
        .route("/dashboard/series", get(series_doc))
        .route("/statements", get(statements_doc))
        .with_state(ctx)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    if content_type.starts_with("text/html") {
        return (no_store(), Html(body)).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

fn no_store() -> [(header::HeaderName, HeaderValue); 1] {
    [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))]
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body.to_string(),
    )
        .into_response()
}

/// `GET /dashboard/series[?since=UNIX_MS]`.
async fn series_doc(State(ctx): State<Arc<Ctx>>, RawQuery(raw): RawQuery) -> Response {
    let q = params(raw.as_deref());
    let since = match q.get("since").map(|s| s.parse::<u64>()) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => return bad_request("since: expected Unix milliseconds"),
    };
    json_response(StatusCode::OK, &ctx.series.document(since))
}

/// `GET /statements[?order=total_time|calls|p99|errors|mean_time|rows][&limit=N]`.
async fn statements_doc(State(ctx): State<Arc<Ctx>>, RawQuery(raw): RawQuery) -> Response {
    let q = params(raw.as_deref());
    let order = match q.get("order") {
        None => StatementOrder::TotalTime,
        Some(name) => match StatementOrder::from_name(name.trim()) {
            Some(o) => o,
            None => {
                return bad_request(
                    "order: expected total_time, calls, p99, errors, mean_time or rows",
                )
            }
        },
    };
    let limit = match q.get("limit").map(|s| s.parse::<usize>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) => n.min(MAX_LIMIT),
        Some(Err(_)) => return bad_request("limit: expected a number"),
    };
    let doc = match &ctx.statements {
        Some(pool) => ctx
            .scrub
            .value(pool.statement_stats().to_json(limit, order)),
        None => no_statements(order),
    };
    json_response(StatusCode::OK, &doc)
}

/// The document for a pool without statement statistics (SQLite).
fn no_statements(order: StatementOrder) -> Value {
    json!({
        "format": lido_postgres::STATEMENTS_JSON_FORMAT,
        "enabled": false,
        "order": order.name(),
        "statements": [],
        "tables": [],
        "note": "statement statistics are kept for PostgreSQL pools only",
    })
}

/// `a=1&b=2` as a map (values are names and numbers: no percent-decoding).
fn params(raw: Option<&str>) -> HashMap<&str, &str> {
    raw.unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .collect()
}

fn bad_request(why: &str) -> Response {
    json_response(StatusCode::BAD_REQUEST, &json!({ "error": why }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_self_contained_and_polls_its_endpoints() {
        let js = format!("{PAGE}{CHARTS_JS}{DASHBOARD_JS}");
        for url in [
            "'/dashboard/series",
            "'/statements",
            "'/health'",
            "'/metrics'",
        ] {
            assert!(js.contains(url), "{url}");
        }
        assert!(js.contains("'/cluster'") && js.contains("r.status === 404"));
        for asset in [PAGE, CSS, CHARTS_JS, DASHBOARD_JS] {
            assert!(!asset.contains("src=\"http") && !asset.contains("href=\"http"));
            assert!(!asset.contains("url(http") && !asset.contains("@import"));
            assert!(
                !asset.contains("innerHTML") && !asset.contains("outerHTML"),
                "data goes in with textContent only"
            );
        }
        assert!(PAGE.contains("<script>") && PAGE.contains("/metrics"));
    }

    #[test]
    fn query_strings_split_into_pairs() {
        let q = params(Some("order=p99&limit=5&flag"));
        assert_eq!(q.get("order"), Some(&"p99"));
        assert_eq!(q.get("limit"), Some(&"5"));
        assert_eq!(q.get("flag"), Some(&""));
        assert!(params(None).is_empty());
    }

    #[test]
    fn sqlite_has_an_empty_list_with_a_note() {
        let doc = no_statements(StatementOrder::Calls);
        assert_eq!(doc["statements"], json!([]));
        assert_eq!(doc["order"], "calls");
        assert!(doc["note"].is_string());
    }
}

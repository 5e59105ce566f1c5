//! The dashboard at `/`: one self-contained HTML page (inline CSS and JS, no
//! external assets) that polls `/health` and `/metrics` every second, and
//! `/cluster` (the Cluster panel) until it answers 404 (one server).

use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};

/// The page.
pub const PAGE: &str = include_str!("dashboard.html");

/// `GET /`.
pub async fn page() -> Response {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Html(PAGE),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_self_contained_and_polls_both_endpoints() {
        assert!(PAGE.contains("fetch('/health'") && PAGE.contains("fetch('/metrics'"));
        assert!(PAGE.contains("'/cluster'") && PAGE.contains("r.status === 404"));
        assert!(!PAGE.contains("src=\"http") && !PAGE.contains("href=\"http"));
        assert!(
            !PAGE.contains("innerHTML"),
            "data goes in with textContent only"
        );
    }
}

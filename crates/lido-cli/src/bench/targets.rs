//! Chooses the benchmark target from the URL.

use super::target::BenchTarget;

/// The target for `url` (none: the embedded SQLite default).
pub fn for_url(url: Option<&str>, query: Option<String>) -> Result<Box<dyn BenchTarget>, String> {
    let _ = query;
    match url {
        None => Err("the embedded SQLite target is not built yet".into()),
        Some(u) => Err(format!("unsupported URL scheme in {u:?}: use postgres://… or sqlite:PATH")),
    }
}

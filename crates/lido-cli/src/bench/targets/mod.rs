//! Chooses the benchmark target from the URL.

mod sqlite;

use std::path::PathBuf;

use super::target::BenchTarget;

/// The target for `url` (none: the embedded SQLite default).
pub fn for_url(url: Option<&str>, query: Option<String>) -> Result<Box<dyn BenchTarget>, String> {
    let Some(url) = url else {
        return Ok(Box::new(sqlite::SqliteTarget::embedded(query)?));
    };
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            return Err("sqlite: URL without a path: use sqlite:/path/to/file.db".into());
        }
        return Ok(Box::new(sqlite::SqliteTarget::file(
            PathBuf::from(path),
            query,
        )));
    }
    Err(format!(
        "unsupported database URL {:?}: use postgres://user@host/db, sqlite:/path/to/file.db, or no URL for the embedded SQLite default",
        redact(url)
    ))
}

/// The URL with any password replaced, for error messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("mysql://x"), "mysql://x");
    }

    #[test]
    fn rejects_unknown_schemes_without_leaking_secrets() {
        let err = for_url(Some("mysql://u:hunter2@h/db"), None)
            .err()
            .expect("error");
        assert!(err.contains("unsupported"));
        assert!(!err.contains("hunter2"));
    }
}

//! Which database a command talks to: PostgreSQL (libpq URL or `key=value`
//! string, on top of the `PG*` environment) or a SQLite file (`sqlite:PATH`).

use std::path::PathBuf;

use lido_postgres::PgConfig;

/// A database named on the command line or in the environment.
#[derive(Debug)]
pub enum DbUrl {
    /// No URL: the command's embedded default.
    None,
    /// `sqlite:PATH` or `sqlite://PATH`.
    Sqlite(PathBuf),
    /// `postgres://…`, `postgresql://…` or `key=value …`.
    Postgres(Box<PgConfig>),
}

/// Whether `url` is a PostgreSQL connection string.
pub fn is_postgres(url: &str) -> bool {
    let t = url.trim_start();
    t.starts_with("postgres://") || t.starts_with("postgresql://") || looks_like_conninfo(t)
}

/// libpq `key=value` strings: the first word has an `=` and no scheme.
fn looks_like_conninfo(s: &str) -> bool {
    let first = s.split_whitespace().next().unwrap_or("");
    first.contains('=') && !first.contains("://")
}

/// Parses `url` (`None`: the embedded default).
pub fn parse(url: Option<&str>) -> Result<DbUrl, String> {
    let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok(DbUrl::None);
    };
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() {
            return Err("sqlite: URL without a path: use sqlite:/path/to/file.db".into());
        }
        return Ok(DbUrl::Sqlite(PathBuf::from(path)));
    }
    if is_postgres(url) {
        return postgres(url).map(|c| DbUrl::Postgres(Box::new(c)));
    }
    Err(format!(
        "unsupported database URL {:?}: use postgres://user@host/db, sqlite:/path/to/file.db, or no URL for the embedded SQLite default",
        redact(url)
    ))
}

/// Parses a PostgreSQL connection string on top of the `PG*` environment
/// (as libpq's `PQconnectdb` does). Errors never show the password.
pub fn postgres(url: &str) -> Result<PgConfig, String> {
    PgConfig::parse_with_env(url)
        .map_err(|e| scrub(&format!("invalid PostgreSQL connection string: {e}"), url))
}

/// The URL with any password replaced, for messages.
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

/// The password written in `url` (URL userinfo or `password=`), if any.
fn password_in(url: &str) -> Option<&str> {
    if let (Some(scheme), Some(at)) = (url.find("://"), url.rfind('@')) {
        if at > scheme {
            let (_, pw) = url[scheme + 3..at].split_once(':')?;
            return Some(pw).filter(|p| !p.is_empty());
        }
    }
    let start = url.find("password=")? + "password=".len();
    let rest = &url[start..];
    let end = rest.find([' ', '&']).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|p| !p.is_empty())
}

/// `msg` with the password written in `url` (if any) replaced by `***`.
pub fn scrub(msg: &str, url: &str) -> String {
    match password_in(url) {
        Some(pw) => scrub_secret(msg, pw),
        None => msg.to_owned(),
    }
}

/// `msg` with `secret` replaced by `***` (a one-character secret is left:
/// replacing it would garble every word that contains it).
pub fn scrub_secret(msg: &str, secret: &str) -> String {
    if secret.len() >= 2 {
        msg.replace(secret, "***")
    } else {
        msg.to_owned()
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
    fn scrubs_passwords_from_messages() {
        let m = scrub("bad thing near hunter2", "postgres://u:hunter2@h/db");
        assert_eq!(m, "bad thing near ***");
        let m = scrub("x hunter2 y", "host=h password=hunter2 user=u");
        assert_eq!(m, "x *** y");
        assert_eq!(scrub("plain", "postgres://h/db"), "plain");
    }

    #[test]
    fn tells_kinds_apart() {
        assert!(matches!(parse(None), Ok(DbUrl::None)));
        assert!(matches!(
            parse(Some("sqlite:/tmp/x.db")),
            Ok(DbUrl::Sqlite(_))
        ));
        assert!(matches!(
            parse(Some("postgres://u@h/db")),
            Ok(DbUrl::Postgres(_))
        ));
        assert!(matches!(
            parse(Some("host=h dbname=d")),
            Ok(DbUrl::Postgres(_))
        ));
        assert!(parse(Some("sqlite:")).is_err());
        let err = parse(Some("mysql://u:hunter2@h/db"))
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("unsupported") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn malformed_postgres_urls_do_not_leak() {
        let err = postgres("postgres://u:hunter2@h:notaport/db")
            .err()
            .unwrap_or_default();
        assert!(err.contains("port"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}

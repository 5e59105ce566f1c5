//! libpq `key=value` connection strings: `host=db port=5432 password='a b\'c'`.

use crate::config::pgconfig::PgConfig;
use crate::error::ConfigError;

/// Parses `s` into `cfg`. Errors name the key at fault, never a value.
pub(crate) fn parse_into(cfg: &mut PgConfig, s: &str) -> Result<(), ConfigError> {
    let mut chars = s.chars().peekable();
    loop {
        skip_ws(&mut chars);
        if chars.peek().is_none() {
            return Ok(());
        }
        let key = read_key(&mut chars)?;
        skip_ws(&mut chars);
        if chars.next() != Some('=') {
            return Err(ConfigError::Syntax(format!("missing `=` after `{key}`")));
        }
        skip_ws(&mut chars);
        let value = read_value(&mut chars, &key)?;
        cfg.set(&key, &value)?;
    }
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

fn skip_ws(chars: &mut Chars<'_>) {
    while chars.next_if(|c| c.is_whitespace()).is_some() {}
}

fn read_key(chars: &mut Chars<'_>) -> Result<String, ConfigError> {
    let mut key = String::new();
    while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
        key.push(c);
    }
    if key.is_empty() {
        return Err(ConfigError::Syntax(
            "expected `key=value` pairs or a postgres:// URL".into(),
        ));
    }
    Ok(key)
}

fn read_value(chars: &mut Chars<'_>, key: &str) -> Result<String, ConfigError> {
    let mut value = String::new();
    if chars.next_if_eq(&'\'').is_some() {
        loop {
            match chars.next() {
                Some('\\') => value.push(chars.next().unwrap_or('\\')),
                Some('\'') => return Ok(value),
                Some(c) => value.push(c),
                None => {
                    return Err(ConfigError::Syntax(format!(
                        "unterminated quoted value for `{key}`"
                    )))
                }
            }
        }
    }
    while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
        if c == '\\' {
            value.push(chars.next().unwrap_or('\\'));
        } else {
            value.push(c);
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use crate::config::pgconfig::{PgConfig, SslMode};
    use crate::error::ConfigError;

    #[test]
    fn pairs_quotes_and_escapes() {
        let c = PgConfig::parse(
            "host=h1,h2 port = 5433 user=bob password='it''s' dbname='my db' options='-c search_path=a\\ b' sslmode=require",
        );
        // '' inside quotes is not libpq syntax: the value ends at the second quote.
        assert!(c.is_err());
        let c = PgConfig::parse(
            "host=h1,h2 port = 5433 user=bob password='it\\'s' dbname='my db' options='-c x=a\\\\b' sslmode=require",
        )
        .unwrap();
        assert_eq!(c.hosts, ["h1", "h2"]);
        assert_eq!(c.ports, [5433]);
        assert_eq!(c.password.as_ref().map(|p| p.expose()), Some("it's"));
        assert_eq!(c.dbname.as_deref(), Some("my db"));
        assert_eq!(c.options.as_deref(), Some("-c x=a\\b"));
        assert_eq!(c.sslmode, SslMode::Require);
    }

    #[test]
    fn empty_and_malformed() {
        assert_eq!(PgConfig::parse("").unwrap(), PgConfig::new());
        assert!(matches!(
            PgConfig::parse("host"),
            Err(ConfigError::Syntax(_))
        ));
        assert!(
            matches!(PgConfig::parse("password='abc"), Err(ConfigError::Syntax(m)) if !m.contains("abc"))
        );
        assert!(matches!(PgConfig::parse("=x"), Err(ConfigError::Syntax(_))));
    }
}

//! The libpq environment (`PGHOST`, `PGPORT`, ... ) and `DATABASE_URL`.
//!
//! Precedence follows libpq: a value given in the connection string beats
//! the environment, which beats the built-in defaults.

use crate::config::pgconfig::PgConfig;
use crate::error::ConfigError;

/// Environment variables and the libpq parameter each one sets.
pub const PG_ENV: [(&str, &str); 17] = [
    ("PGHOST", "host"),
    ("PGHOSTADDR", "hostaddr"),
    ("PGPORT", "port"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGDATABASE", "dbname"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGSSLCERT", "sslcert"),
    ("PGSSLKEY", "sslkey"),
    ("PGAPPNAME", "application_name"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGOPTIONS", "options"),
    ("PGTARGETSESSIONATTRS", "target_session_attrs"),
    ("PGLOADBALANCEHOSTS", "load_balance_hosts"),
    ("PGCHANNELBINDING", "channel_binding"),
    ("PGTCPUSERTIMEOUT", "tcp_user_timeout"),
];

impl PgConfig {
    /// Settings from the process environment: the `PG*` variables, with
    /// `DATABASE_URL` (a URL or `key=value` string) on top when set.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(|k| std::env::var(k).ok())
    }

    /// [`from_env`](Self::from_env) reading variables through `lookup`
    /// (for tests and for settings kept somewhere else).
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut cfg = Self::pg_env_with(&lookup)?;
        if let Some(url) = lookup("DATABASE_URL").filter(|u| !u.trim().is_empty()) {
            cfg.apply_str(&url)?;
        }
        Ok(cfg)
    }

    /// Parses `s` on top of the `PG*` environment, as libpq's `PQconnectdb` does.
    pub fn parse_with_env(s: &str) -> Result<Self, ConfigError> {
        let mut cfg = Self::pg_env_with(&|k: &str| std::env::var(k).ok())?;
        cfg.apply_str(s)?;
        Ok(cfg)
    }

    fn pg_env_with(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut cfg = Self::new();
        for (var, key) in PG_ENV {
            if let Some(v) = lookup(var).filter(|v| !v.is_empty()) {
                cfg.set(key, &v)?;
            }
        }
        Ok(cfg)
    }

    /// Applies a URL or `key=value` string on top of these settings.
    pub fn apply_str(&mut self, s: &str) -> Result<(), ConfigError> {
        let t = s.trim();
        if t.starts_with("postgres://") || t.starts_with("postgresql://") {
            crate::config::url::parse_into(self, t)
        } else {
            crate::config::conninfo::parse_into(self, t)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use crate::config::pgconfig::{PgConfig, RootCert, SslMode};

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn pg_variables() {
        let c = PgConfig::from_env_with(env(&[
            ("PGHOST", "h1,h2"),
            ("PGPORT", "6000"),
            ("PGUSER", "u"),
            ("PGPASSWORD", "pw"),
            ("PGDATABASE", "d"),
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", "/ca.pem"),
            ("PGSSLCERT", "/c.pem"),
            ("PGSSLKEY", "/k.pem"),
            ("PGAPPNAME", "app"),
            ("PGCONNECT_TIMEOUT", "3"),
        ]))
        .unwrap();
        assert_eq!(c.hosts, ["h1", "h2"]);
        assert_eq!(c.ports, [6000]);
        assert_eq!(c.user.as_deref(), Some("u"));
        assert_eq!(c.password.as_ref().map(|p| p.expose()), Some("pw"));
        assert_eq!(c.dbname.as_deref(), Some("d"));
        assert_eq!(c.sslmode, SslMode::VerifyFull);
        assert_eq!(c.sslrootcert, Some(RootCert::File("/ca.pem".into())));
        assert_eq!(c.sslcert.as_deref(), Some(std::path::Path::new("/c.pem")));
        assert_eq!(c.sslkey.as_deref(), Some(std::path::Path::new("/k.pem")));
        assert_eq!(c.application_name.as_deref(), Some("app"));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(3)));
    }

    #[test]
    fn database_url_beats_pg_variables_field_by_field() {
        let c = PgConfig::from_env_with(env(&[
            ("DATABASE_URL", "postgres://url_user@urlhost/urldb"),
            ("PGPORT", "6000"),
            ("PGUSER", "env_user"),
            ("PGSSLMODE", "require"),
        ]))
        .unwrap();
        assert_eq!(c.hosts, ["urlhost"]);
        assert_eq!(c.ports, [6000], "the URL gave no port, so PGPORT applies");
        assert_eq!(c.user.as_deref(), Some("url_user"));
        assert_eq!(c.dbname.as_deref(), Some("urldb"));
        assert_eq!(c.sslmode, SslMode::Require);
    }

    #[test]
    fn bad_environment_names_the_parameter() {
        let e = PgConfig::from_env_with(env(&[("PGSSLMODE", "sometimes")])).unwrap_err();
        assert!(e.to_string().contains("sslmode"), "{e}");
        assert_eq!(PgConfig::from_env_with(env(&[])).unwrap(), PgConfig::new());
    }
}

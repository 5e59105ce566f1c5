//! Finding the PostgreSQL and PgBouncer programs.

use std::env;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::error::TestkitError;

/// The directory holding `initdb`, `pg_ctl`, `postgres` and `psql`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    bin_dir: PathBuf,
}

impl PgBinaries {
    /// Finds the server binaries, once per process.
    ///
    /// Looks in `$LIDO_PG_BIN`, then `/usr/lib/postgresql/15/bin` (the
    /// version lido is tested with), then `pg_config --bindir` (when that
    /// directory holds the server programs), then the highest version
    /// under `/usr/lib/postgresql/*/bin`.
    pub fn locate() -> Result<PgBinaries, TestkitError> {
        static FOUND: OnceLock<Result<PgBinaries, String>> = OnceLock::new();
        let find = || {
            search(
                env::var_os("LIDO_PG_BIN").map(PathBuf::from),
                OsStr::new("pg_config"),
                Path::new("/usr/lib/postgresql"),
            )
            .map_err(|searched| searched.join(", "))
        };
        match FOUND.get_or_init(find) {
            Ok(found) => Ok(found.clone()),
            Err(searched) => Err(TestkitError::PgBinariesNotFound {
                searched: searched.clone(),
            }),
        }
    }

    /// The directory the binaries are in.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The path of one program in the directory, e.g. `"pg_ctl"`.
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

fn is_server_dir(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres", "psql"]
        .iter()
        .all(|p| dir.join(p).is_file())
}

/// The PostgreSQL major version lido's tests are written for.
const PREFERRED: u32 = 15;

/// Searches `env_bin` (`LIDO_PG_BIN`), then `<root>/15/bin`, then what
/// `pg_config --bindir` names, then the highest `<root>/<version>/bin`.
/// `Err` lists what was searched.
fn search(
    env_bin: Option<PathBuf>,
    pg_config: &OsStr,
    root: &Path,
) -> Result<PgBinaries, Vec<String>> {
    let mut searched = Vec::new();
    if let Some(dir) = env_bin {
        if is_server_dir(&dir) {
            return Ok(PgBinaries { bin_dir: dir });
        }
        searched.push(format!("LIDO_PG_BIN={}", dir.display()));
    }
    let preferred = root.join(PREFERRED.to_string()).join("bin");
    if is_server_dir(&preferred) {
        return Ok(PgBinaries { bin_dir: preferred });
    }
    searched.push(preferred.display().to_string());
    match Command::new(pg_config).arg("--bindir").output() {
        Ok(out) if out.status.success() => {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if is_server_dir(&dir) {
                return Ok(PgBinaries { bin_dir: dir });
            }
            searched.push(format!("pg_config --bindir = {}", dir.display()));
        }
        _ => searched.push("pg_config (not on PATH)".to_owned()),
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            is_server_dir(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin_dir)) => Ok(PgBinaries { bin_dir }),
        None => {
            searched.push(format!("{}/*/bin", root.display()));
            Err(searched)
        }
    }
}

/// Finds `pgbouncer`: `$LIDO_PGBOUNCER`, then `PATH`, then `/usr/sbin`.
pub(crate) fn pgbouncer() -> Result<PathBuf, TestkitError> {
    let mut candidates = Vec::new();
    if let Some(p) = env::var_os("LIDO_PGBOUNCER") {
        candidates.push(PathBuf::from(p));
    }
    if let Some(path) = env::var_os("PATH") {
        candidates.extend(env::split_paths(&path).map(|d| d.join("pgbouncer")));
    }
    candidates.push(PathBuf::from("/usr/sbin/pgbouncer"));
    candidates.push(PathBuf::from("/usr/bin/pgbouncer"));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| TestkitError::PgBouncerNotFound {
            searched: "LIDO_PGBOUNCER, PATH, /usr/sbin, /usr/bin".to_owned(),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    use super::search;

    /// A directory with (empty) server programs in it.
    fn fake_bin(dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        for p in ["initdb", "pg_ctl", "postgres", "psql"] {
            std::fs::write(dir.join(p), "").unwrap();
        }
        dir.to_owned()
    }

    /// A `pg_config` script that prints `bindir`.
    fn fake_pg_config(dir: &Path, bindir: &Path) -> PathBuf {
        let path = dir.join("pg_config");
        std::fs::write(&path, format!("#!/bin/sh\necho {}\n", bindir.display())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lido-bins-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn version_15_is_preferred_over_newer_ones_and_pg_config() {
        let root = temp();
        let v15 = fake_bin(&root.join("15/bin"));
        fake_bin(&root.join("16/bin"));
        let other = fake_bin(&root.join("elsewhere"));
        let pg_config = fake_pg_config(&root, &other);
        let found = search(None, pg_config.as_os_str(), &root).unwrap();
        assert_eq!(found.bin_dir(), v15);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn lido_pg_bin_wins_then_pg_config_then_the_highest_version() {
        let root = temp();
        let env_dir = fake_bin(&root.join("custom"));
        let from_config = fake_bin(&root.join("from-config"));
        fake_bin(&root.join("14/bin"));
        let v16 = fake_bin(&root.join("16/bin"));
        let pg_config = fake_pg_config(&root, &from_config);
        let found = search(Some(env_dir.clone()), pg_config.as_os_str(), &root).unwrap();
        assert_eq!(found.bin_dir(), env_dir, "LIDO_PG_BIN first");
        let found = search(None, pg_config.as_os_str(), &root).unwrap();
        assert_eq!(found.bin_dir(), from_config, "no 15: pg_config --bindir");
        let missing = root.join("no-pg-config");
        let found = search(None, missing.as_os_str(), &root).unwrap();
        assert_eq!(found.bin_dir(), v16, "then the highest version");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn nothing_found_lists_every_place_searched() {
        let root = temp();
        let bad = root.join("not-a-bin-dir");
        let searched = search(Some(bad), root.join("nope").as_os_str(), &root).unwrap_err();
        let text = searched.join(", ");
        assert!(text.contains("LIDO_PG_BIN="), "{text}");
        assert!(text.contains("15/bin"), "{text}");
        assert!(text.contains("pg_config"), "{text}");
        assert!(text.contains("/*/bin"), "{text}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}

//! Finding the PostgreSQL and PgBouncer programs.

use std::env;
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
    /// Looks in `$LIDO_PG_BIN`, then `pg_config --bindir` (when that directory
    /// holds `initdb`), then the highest version under
    /// `/usr/lib/postgresql/*/bin`.
    pub fn locate() -> Result<PgBinaries, TestkitError> {
        static FOUND: OnceLock<Result<PgBinaries, String>> = OnceLock::new();
        match FOUND.get_or_init(|| search().map_err(|searched| searched.join(", "))) {
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

fn search() -> Result<PgBinaries, Vec<String>> {
    let mut searched = Vec::new();
    if let Some(dir) = env::var_os("LIDO_PG_BIN") {
        let dir = PathBuf::from(dir);
        if is_server_dir(&dir) {
            return Ok(PgBinaries { bin_dir: dir });
        }
        searched.push(format!("LIDO_PG_BIN={}", dir.display()));
    }
    match Command::new("pg_config").arg("--bindir").output() {
        Ok(out) if out.status.success() => {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if is_server_dir(&dir) {
                return Ok(PgBinaries { bin_dir: dir });
            }
            searched.push(format!("pg_config --bindir = {}", dir.display()));
        }
        _ => searched.push("pg_config (not on PATH)".to_owned()),
    }
    let root = Path::new("/usr/lib/postgresql");
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
            searched.push("/usr/lib/postgresql/*/bin".to_owned());
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

//! One `initdb` per test process: every server copies this data directory
//! (`cp -a`, tens of milliseconds) instead of running `initdb` (most of a
//! second) itself.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::binaries::PgBinaries;
use crate::error::TestkitError;
use crate::process::{self, Watchdog};

/// The line the testkit's own `psql` (as `postgres`, over the socket) uses.
const HBA_LOCAL: &str = "local   all all                 trust";

/// The TCP lines used unless [`hba_line`](crate::PgServerBuilder::hba_line) gives others.
const HBA_TCP: [&str; 2] = [
    "host    all all 127.0.0.1/32    scram-sha-256",
    "host    all all ::1/128         scram-sha-256",
];

/// Streaming replication (`pg_basebackup`, standbys) over the socket.
const HBA_REPLICATION_LOCAL: &str = "local   replication all         trust";

/// Streaming replication for the testkit's role over TCP.
const HBA_REPLICATION_TCP: &str = "host    replication lido 127.0.0.1/32 scram-sha-256";

/// The text of `pg_hba.conf`: the socket line the testkit's `psql` uses
/// first, then `tcp` (or the default TCP lines when empty); with
/// `replication`, also the replication lines.
pub(crate) fn hba(tcp: &[String], replication: bool) -> String {
    let mut lines = vec!["# written by lido-testkit", HBA_LOCAL];
    if replication {
        lines.push(HBA_REPLICATION_LOCAL);
    }
    if tcp.is_empty() {
        lines.extend(HBA_TCP);
    } else {
        lines.extend(tcp.iter().map(String::as_str));
    }
    if replication {
        lines.push(HBA_REPLICATION_TCP);
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

struct Template {
    data_dir: PathBuf,
    // Never dropped (it lives in a static): removes the directory after the
    // test process exits.
    _watchdog: Watchdog,
}

/// The template data directory for `bins`, made on first use.
pub(crate) fn data_dir(bins: &PgBinaries) -> Result<&'static Path, TestkitError> {
    static TEMPLATE: OnceLock<Result<Template, String>> = OnceLock::new();
    match TEMPLATE.get_or_init(|| create(bins).map_err(|e| e.to_string())) {
        Ok(t) => Ok(&t.data_dir),
        Err(e) => Err(TestkitError::InvalidState(format!(
            "initdb of the template cluster failed: {e}"
        ))),
    }
}

fn create(bins: &PgBinaries) -> Result<Template, TestkitError> {
    let dir = process::make_temp_dir("lido-pg-template-")?;
    let template = Template {
        data_dir: dir.join("data"),
        _watchdog: Watchdog::spawn(&format!("rm -rf {}", process::sh_quote(dir.as_os_str()))),
    };
    let cleanup = |e: TestkitError| {
        let _ = std::fs::remove_dir_all(&dir);
        e
    };
    process::chown_to_postgres(&dir).map_err(cleanup)?;
    let mut initdb = process::command(bins.program("initdb"), true, &dir);
    initdb
        .args([
            "--no-sync",
            "--no-instructions",
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "-D",
        ])
        .arg(&template.data_dir);
    process::run(initdb, None).map_err(cleanup)?;
    finish(&template.data_dir).map_err(cleanup)?;
    Ok(template)
}

/// Points `postgresql.conf` at each server's own `lido.conf` and installs
/// the testkit's `pg_hba.conf`.
fn finish(data_dir: &Path) -> Result<(), TestkitError> {
    let conf = data_dir.join("postgresql.conf");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&conf)
        .and_then(|mut f| f.write_all(b"\ninclude 'lido.conf'\n"))
        .map_err(|e| TestkitError::io(format!("appending to {}", conf.display()), e))?;
    // Overwriting keeps the file's owner (postgres) and mode.
    let path = data_dir.join("pg_hba.conf");
    std::fs::write(&path, hba(&[], false))
        .map_err(|e| TestkitError::io(format!("writing {}", path.display()), e))
}

//! Opening one connection and applying the pragmas and hooks (blocking; run
//! it on a blocking thread or the writer thread).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::error::{panic_message, ConnectError};
use crate::options::{Builder, Role, Source};

/// Opens a connection for `role` and sets it up.
pub(crate) fn open(opts: &Builder, role: Role) -> Result<Connection, ConnectError> {
    let target = opts.source.describe();
    let conn = match &opts.source {
        Source::File(path) => open_file(path, role, opts.create, &target)?,
        Source::Memory(name) => open_memory(name, &target)?,
    };
    setup(&conn, opts, role, &target)?;
    tracing::debug!(target = %target, ?role, "lido-sqlite: connection opened");
    Ok(conn)
}

/// Opens the connection that keeps a shared in-memory database alive.
pub(crate) fn open_anchor(name: &str) -> Result<Connection, ConnectError> {
    let target = Source::Memory(name.to_owned()).describe();
    open_memory(name, &target)
}

fn open_file(
    path: &Path,
    role: Role,
    create: bool,
    target: &str,
) -> Result<Connection, ConnectError> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.is_dir() {
            return Err(ConnectError::MissingDirectory {
                target: target.to_owned(),
                dir: dir.to_path_buf(),
            });
        }
    }
    let mut flags = OpenFlags::SQLITE_OPEN_NO_MUTEX;
    flags |= match role {
        Role::Reader => OpenFlags::SQLITE_OPEN_READ_ONLY,
        Role::Writer if create => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        Role::Writer => OpenFlags::SQLITE_OPEN_READ_WRITE,
    };
    Connection::open_with_flags(path, flags).map_err(|e| open_error(target, e))
}

fn open_memory(name: &str, target: &str) -> Result<Connection, ConnectError> {
    let uri = format!("file:{name}?mode=memory&cache=shared");
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(uri, flags).map_err(|e| open_error(target, e))
}

fn open_error(target: &str, source: rusqlite::Error) -> ConnectError {
    if source.sqlite_error_code() == Some(ErrorCode::NotADatabase) {
        return ConnectError::NotADatabase {
            target: target.to_owned(),
            source,
        };
    }
    ConnectError::Open {
        target: target.to_owned(),
        source,
    }
}

fn setup_error(target: &str, step: &str, source: rusqlite::Error) -> ConnectError {
    if source.sqlite_error_code() == Some(ErrorCode::NotADatabase) {
        return ConnectError::NotADatabase {
            target: target.to_owned(),
            source,
        };
    }
    ConnectError::Setup {
        target: target.to_owned(),
        step: step.to_owned(),
        source,
    }
}

/// Pragmas in order: busy timeout first (so the rest wait for locks), the
/// journal mode (writer, files only), synchronous, foreign keys, query_only
/// (readers), the user's pragmas, then the after-connect hook.
fn setup(conn: &Connection, opts: &Builder, role: Role, target: &str) -> Result<(), ConnectError> {
    let step = |step: &'static str| move |e| setup_error(target, step, e);
    conn.busy_timeout(opts.busy_timeout)
        .map_err(step("busy_timeout"))?;
    if role == Role::Writer && !opts.source.is_memory() {
        journal_mode(conn, opts, target)?;
    }
    conn.pragma_update(None, "synchronous", opts.synchronous.as_str())
        .map_err(step("synchronous"))?;
    conn.pragma_update(None, "foreign_keys", opts.foreign_keys)
        .map_err(step("foreign_keys"))?;
    if role == Role::Reader {
        conn.pragma_update(None, "query_only", true)
            .map_err(step("query_only"))?;
    }
    for (name, value) in &opts.pragmas {
        conn.pragma_update(None, name, value)
            .map_err(|e| setup_error(target, &format!("pragma {name}"), e))?;
    }
    // Schema reads fail here, not in the first query, for a non-database file.
    conn.query_row("PRAGMA schema_version", [], |_| Ok(()))
        .map_err(step("reading the schema"))?;
    if let Some(hook) = &opts.after_connect {
        match catch_unwind(AssertUnwindSafe(|| hook(conn, role))) {
            Ok(r) => r.map_err(step("after_connect hook"))?,
            Err(p) => return Err(ConnectError::Panic(panic_message(&*p))),
        }
    }
    Ok(())
}

fn journal_mode(conn: &Connection, opts: &Builder, target: &str) -> Result<(), ConnectError> {
    let want = opts.journal_mode.as_str();
    let got: String = conn
        .pragma_update_and_check(None, "journal_mode", want, |r| r.get(0))
        .map_err(|e| setup_error(target, "journal_mode", e))?;
    if !got.eq_ignore_ascii_case(want) {
        tracing::warn!(target = %target, want, got = %got,
            "lido-sqlite: SQLite refused the journal mode; readers may now block the writer");
    }
    Ok(())
}

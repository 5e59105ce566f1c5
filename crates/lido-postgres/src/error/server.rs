//! What the server said, as libpq shows it, and what it means for a retry:
//! [`ServerText`] formats a tokio-postgres error (`ERROR 42P01: relation
//! "nope" does not exist`, then `DETAIL: …` and `HINT: …`), and SQLSTATEs
//! classify as transient or permanent, some with what to fix.

use std::error::Error as _;
use std::fmt;

use lido_core::ErrorClass;
use tokio_postgres::error::{DbError, SqlState};

/// A tokio-postgres error as libpq shows it: for a server error its
/// severity, SQLSTATE and message, then `DETAIL` and `HINT` when the server
/// sent them (tokio-postgres's own Display says only "db error"); for other
/// errors their text and the chain of causes ("error communicating with the
/// server: Connection reset by peer").
pub(crate) struct ServerText<'e>(pub(crate) &'e tokio_postgres::Error);

impl fmt::Display for ServerText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(db) = self.0.as_db_error() {
            return write_db(f, db);
        }
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// `ERROR 42P01: relation "nope" does not exist; DETAIL: …; HINT: …`.
fn write_db(f: &mut fmt::Formatter<'_>, db: &DbError) -> fmt::Result {
    write!(
        f,
        "{} {}: {}",
        db.severity(),
        db.code().code(),
        db.message()
    )?;
    if let Some(detail) = db.detail() {
        write!(f, "; DETAIL: {detail}")?;
    }
    if let Some(hint) = db.hint() {
        write!(f, "; HINT: {hint}")?;
    }
    Ok(())
}

/// What to fix for a startup error that retrying cannot cure.
pub(crate) fn fix_for(code: &SqlState) -> Option<&'static str> {
    Some(match code.code() {
        "28P01" => "check the user name and password (password, PGPASSWORD, DATABASE_URL)",
        "28000" => "check the user name and password, and that the server's pg_hba.conf has a line for this user, database, client address and sslmode (host/hostssl/hostnossl)",
        "3D000" => "create the database (CREATE DATABASE) or fix dbname / PGDATABASE",
        _ => return None,
    })
}

/// Classifies a tokio-postgres error: by SQLSTATE when the server sent
/// one; else a closed connection or a socket error is transient, and
/// everything tokio-postgres itself refused (configuration such as a
/// missing password, authentication such as required channel binding or a
/// bad SCRAM signature, unexpected messages) is permanent.
pub(crate) fn classify_postgres(e: &tokio_postgres::Error) -> ErrorClass {
    match e.code() {
        Some(code) => classify_code(code),
        None if e.is_closed() || is_network(e) => ErrorClass::Transient,
        None => ErrorClass::Permanent,
    }
}

/// Whether the error's cause is a socket error (not a protocol or
/// authentication failure reported through `io::Error`, which uses the
/// InvalidInput/InvalidData kinds).
fn is_network(e: &tokio_postgres::Error) -> bool {
    use std::io::ErrorKind as K;
    let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
    io.is_some_and(|io| !matches!(io.kind(), K::InvalidInput | K::InvalidData | K::Unsupported))
}

/// Shutdowns, overload and lost races are transient; authentication,
/// unknown database, and SQL errors are permanent.
fn classify_code(code: &SqlState) -> ErrorClass {
    let transient = [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::CONNECTION_FAILURE,
        SqlState::CONNECTION_EXCEPTION,
        SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
        SqlState::OUT_OF_MEMORY,
        SqlState::DISK_FULL,
        SqlState::INSUFFICIENT_RESOURCES,
        SqlState::QUERY_CANCELED,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::LOCK_NOT_AVAILABLE,
    ];
    if transient.contains(code) || code.code().starts_with("08") {
        ErrorClass::Transient
    } else {
        // 28P01 / 28000 authentication, 3D000 unknown database, 42xxx SQL
        // errors in a hook, and anything else the server refuses outright.
        ErrorClass::Permanent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_classify_for_retry() {
        for transient in [
            "57P01", "57P02", "57P03", "53300", "53000", "08006", "08001", "40001",
        ] {
            let code = SqlState::from_code(transient);
            assert_eq!(classify_code(&code), ErrorClass::Transient, "{transient}");
        }
        for permanent in ["28P01", "28000", "3D000", "42501", "42P01"] {
            let code = SqlState::from_code(permanent);
            assert_eq!(classify_code(&code), ErrorClass::Permanent, "{permanent}");
            let fixable = fix_for(&code).is_some();
            assert_eq!(fixable, permanent.starts_with("28") || permanent == "3D000");
        }
        assert!(fix_for(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
            .is_some_and(|f| f.contains("pg_hba.conf")));
    }
}

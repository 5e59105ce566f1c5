//! Bad input gives clear, typed errors.

use lido_core::{ErrorClass, Manager};
use lido_sqlite::rusqlite::{self, ffi, ErrorCode};
use lido_sqlite::{Builder, ConnectError, Error, Role, SqliteManager, SqlitePool};

#[tokio::test]
async fn a_path_in_a_missing_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("no/such/dir/app.db");
    let err = SqlitePool::file(&path)
        .build()
        .await
        .expect_err("missing dir");
    match &err {
        Error::Connect(e @ ConnectError::MissingDirectory { dir: missing, .. }) => {
            assert!(missing.ends_with("no/such/dir"));
            assert_eq!(e.class(), ErrorClass::Permanent);
        }
        other => panic!("expected MissingDirectory, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("app.db") && msg.contains("does not exist"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "this is not a database\n".repeat(300)).expect("write");
    let err = SqlitePool::file(&path).build().await.expect_err("not a db");
    match &err {
        Error::Connect(e @ ConnectError::NotADatabase { .. }) => {
            assert_eq!(e.code(), Some(ErrorCode::NotADatabase));
            assert_eq!(e.class(), ErrorClass::Permanent);
        }
        other => panic!("expected NotADatabase, got {other:?}"),
    }
    assert!(err.to_string().contains("not a SQLite database"), "{err}");
}

#[tokio::test]
async fn a_missing_file_without_create() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = SqlitePool::file(dir.path().join("absent.db"))
        .create_if_missing(false)
        .build()
        .await
        .expect_err("absent");
    assert_eq!(err.sqlite_code(), Some(ErrorCode::CannotOpen), "{err:?}");
    assert!(matches!(&err, Error::Connect(e) if e.class() == ErrorClass::Permanent));
}

#[tokio::test]
async fn a_directory_as_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = SqlitePool::file(dir.path())
        .build()
        .await
        .expect_err("a directory");
    assert!(matches!(err, Error::Connect(_)), "{err:?}");
}

#[tokio::test]
async fn hooks_that_fail() {
    let err = Builder::memory_unique()
        .on_startup(|c| c.execute_batch("CREATE TABLE broken("))
        .build()
        .await
        .expect_err("bad schema");
    assert!(matches!(err, Error::Startup(_)), "{err:?}");

    let err = Builder::memory_unique()
        .on_startup(|_| panic!("startup panicked"))
        .build()
        .await
        .expect_err("panicking hook");
    assert!(
        matches!(&err, Error::Panic { message } if message == "startup panicked"),
        "{err:?}"
    );

    let err = Builder::memory_unique()
        .after_connect(|c, _| c.execute_batch("PRAGMA nonsense("))
        .build()
        .await
        .expect_err("bad hook");
    assert!(
        matches!(&err, Error::Connect(ConnectError::Setup { step, .. }) if step.contains("after_connect")),
        "{err:?}"
    );
}

#[tokio::test]
async fn bad_pragma_names_and_reader_settings() {
    let err = Builder::memory_unique()
        .pragma("cache_size; DROP TABLE x", 1)
        .build()
        .await
        .expect_err("injection");
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let err = Builder::memory_unique()
        .readers(0)
        .build()
        .await
        .expect_err("no readers");
    assert!(matches!(err, Error::Build(_)), "{err:?}");
}

#[test]
fn busy_and_locked_are_transient_the_rest_permanent() {
    let manager = SqliteManager::new(Builder::memory("classify"), Role::Reader);
    let failure = |code| ConnectError::Open {
        target: "x".into(),
        source: rusqlite::Error::SqliteFailure(ffi::Error::new(code), None),
    };
    assert_eq!(
        manager.classify(&failure(ffi::SQLITE_BUSY)),
        ErrorClass::Transient
    );
    assert_eq!(
        manager.classify(&failure(ffi::SQLITE_LOCKED)),
        ErrorClass::Transient
    );
    assert_eq!(
        manager.classify(&failure(ffi::SQLITE_CANTOPEN)),
        ErrorClass::Permanent
    );
    assert_eq!(
        manager.classify(&failure(ffi::SQLITE_NOTADB)),
        ErrorClass::Permanent
    );
    assert_eq!(
        manager.classify(&failure(ffi::SQLITE_PERM)),
        ErrorClass::Permanent
    );
    assert_eq!(
        manager.classify(&ConnectError::CapReached { cap: 2 }),
        ErrorClass::Transient
    );
}

#[test]
fn the_blocking_api_refuses_to_run_inside_a_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let err = rt
        .block_on(async { lido_sqlite::blocking::BlockingPool::open(Builder::memory_unique()) })
        .expect_err("inside a runtime");
    assert!(matches!(err, Error::InsideRuntime), "{err:?}");
}

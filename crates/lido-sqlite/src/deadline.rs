//! A closure under a deadline: a timer on the runtime interrupts the
//! connection (`sqlite3_interrupt`) when the deadline passes while the
//! closure runs, so the statement stops and the call fails with
//! [`Error::Deadline`](crate::Error::Deadline). The timer is disarmed under
//! the same lock before the connection goes back, so it never interrupts
//! the connection's next user.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use rusqlite::{Connection, InterruptHandle};
use tokio::runtime::Handle;

/// A connection's interrupt, armed for a deadline; disarmed when dropped
/// (under the timer's lock, so a late timer finds nothing to interrupt).
pub(crate) struct Armed {
    handle: Arc<Mutex<Option<InterruptHandle>>>,
    timer: tokio::task::JoinHandle<()>,
}

impl Drop for Armed {
    fn drop(&mut self) {
        self.handle.lock().take();
        self.timer.abort();
    }
}

/// Arms `conn`'s interrupt for `at`; an error (SQLite's "interrupted")
/// when `at` has passed already, so the work does not start.
pub(crate) fn arm(conn: &Connection, at: Instant, rt: &Handle) -> rusqlite::Result<Armed> {
    if Instant::now() >= at {
        return Err(interrupted());
    }
    let handle = Arc::new(Mutex::new(Some(conn.get_interrupt_handle())));
    let timer = {
        let handle = Arc::clone(&handle);
        rt.spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            if let Some(h) = handle.lock().as_ref() {
                h.interrupt();
            }
        })
    };
    Ok(Armed { handle, timer })
}

/// The error SQLite gives an interrupted statement.
fn interrupted() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT),
        Some("interrupted: the call's deadline had passed".to_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_statement_is_interrupted_at_the_deadline() {
        let rt = Handle::current();
        let out = tokio::task::spawn_blocking(move || {
            let conn = Connection::open_in_memory().expect("open");
            let at = Instant::now() + Duration::from_millis(50);
            let started = Instant::now();
            // An endless recursive CTE: only an interrupt stops it.
            let armed = arm(&conn, at, &rt).expect("armed");
            let r = {
                conn.query_row(
                    "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n",
                    [],
                    |r| r.get::<_, i64>(0),
                )
            };
            drop(armed);
            let code = r.expect_err("interrupted").sqlite_error_code();
            // The connection is fine afterwards, and nothing interrupts it later.
            let later = Instant::now() + Duration::from_millis(20);
            let late = arm(&conn, later, &rt).expect("armed");
            drop(late);
            std::thread::sleep(Duration::from_millis(60));
            let after = conn.query_row("SELECT 41 + 1", [], |r| r.get::<_, i64>(0));
            let past = arm(&conn, Instant::now(), &rt).err().and_then(|e| e.sqlite_error_code());
            assert_eq!(past, Some(rusqlite::ErrorCode::OperationInterrupted));
            (code, started.elapsed(), after)
        })
        .await
        .expect("join");
        assert_eq!(out.0, Some(rusqlite::ErrorCode::OperationInterrupted));
        assert!(out.1 < Duration::from_secs(10), "{:?}", out.1);
        assert_eq!(out.2.expect("fine after"), 42);
    }
}

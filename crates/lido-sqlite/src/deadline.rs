//! Calls under a deadline: when the deadline passes while the call's
//! closure runs, the connection is interrupted (`sqlite3_interrupt`), so the
//! statement stops and the call fails with
//! [`Error::Deadline`](crate::Error::Deadline).
//!
//! One pool keeps one [`Deadlines`]: every armed call's interrupt handle,
//! ordered by deadline, and one timer task that sleeps until the earliest
//! and interrupts what is due. Arming a call is an insert under a lock (and
//! a wake-up of the task only when it is now the earliest); no task is
//! spawned per call. The task starts with the first deadline and ends after
//! [`IDLE`] without any. A call is disarmed under the same lock before its
//! connection goes back, so a late timer never interrupts the connection's
//! next user.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::{Connection, InterruptHandle};
use tokio::runtime::Handle;
use tokio::sync::Notify;

/// How long the timer task waits without any armed call before it ends.
const IDLE: Duration = Duration::from_secs(10);

/// A pool's armed calls and their timer (see the module docs). Clones
/// share them.
#[derive(Default, Clone)]
pub(crate) struct Deadlines {
    inner: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    set: Mutex<Set>,
    /// Wakes the timer task: an earlier deadline was armed.
    wake: Notify,
}

#[derive(Default)]
struct Set {
    /// Interrupts by (deadline, arming number).
    armed: BTreeMap<(Instant, u64), InterruptHandle>,
    next: u64,
    /// The timer task, while it runs (a task whose runtime shut down has
    /// finished too, and the next call starts another).
    task: Option<tokio::task::JoinHandle<()>>,
}

/// One call's deadline, for its closure to arm on the connection it runs on.
pub(crate) struct Deadline {
    pub(crate) at: Option<Instant>,
    pub(crate) deadlines: Deadlines,
    pub(crate) rt: Handle,
}

impl Deadline {
    /// Arms `conn` for this deadline (`None`: the call has none).
    pub(crate) fn arm(&self, conn: &Connection) -> rusqlite::Result<Option<Armed>> {
        match self.at {
            Some(at) => self.deadlines.arm(conn, at, &self.rt).map(Some),
            None => Ok(None),
        }
    }
}

/// A call's armed interrupt; disarmed when dropped.
pub(crate) struct Armed {
    inner: Arc<Shared>,
    key: (Instant, u64),
}

impl Drop for Armed {
    fn drop(&mut self) {
        self.inner.set.lock().armed.remove(&self.key);
    }
}

impl Deadlines {
    /// Arms `conn`'s interrupt for `at` (the timer task runs on `rt`); an
    /// error (SQLite's "interrupted") when `at` has passed already, so the
    /// work does not start.
    pub(crate) fn arm(
        &self,
        conn: &Connection,
        at: Instant,
        rt: &Handle,
    ) -> rusqlite::Result<Armed> {
        if Instant::now() >= at {
            return Err(interrupted());
        }
        let handle = conn.get_interrupt_handle();
        let mut set = self.inner.set.lock();
        let key = (at, set.next);
        set.next += 1;
        set.armed.insert(key, handle);
        let earliest = set.armed.keys().next() == Some(&key);
        if set.task.as_ref().is_none_or(|t| t.is_finished()) {
            set.task = Some(rt.spawn(run(Arc::downgrade(&self.inner))));
        } else if earliest {
            self.inner.wake.notify_one();
        }
        drop(set);
        Ok(Armed {
            inner: Arc::clone(&self.inner),
            key,
        })
    }
}

/// The timer task: interrupts the calls whose deadline passed, then sleeps
/// until the next one (or an earlier one is armed); ends once idle for
/// [`IDLE`] or when the pool is gone.
async fn run(shared: Weak<Shared>) {
    loop {
        let Some(me) = shared.upgrade() else { return };
        let next = {
            let mut set = me.set.lock();
            let now = Instant::now();
            while let Some(entry) = set.armed.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                entry.remove().interrupt();
            }
            match set.armed.keys().next() {
                Some(&(at, _)) => at,
                None => now + IDLE,
            }
        };
        let woken = tokio::select! {
            () = tokio::time::sleep_until(next.into()) => false,
            () = me.wake.notified() => true,
        };
        if !woken {
            let mut set = me.set.lock();
            if set.armed.is_empty() && Instant::now() >= next {
                set.task = None;
                return;
            }
        }
    }
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
            let deadlines = Deadlines::default();
            let arm = |conn: &Connection, at| deadlines.arm(conn, at, &rt);
            // An endless recursive CTE: only an interrupt stops it.
            let armed = arm(&conn, at).expect("armed");
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
            let late = arm(&conn, later).expect("armed");
            drop(late);
            std::thread::sleep(Duration::from_millis(60));
            let after = conn.query_row("SELECT 41 + 1", [], |r| r.get::<_, i64>(0));
            let past = arm(&conn, Instant::now()).err().and_then(|e| e.sqlite_error_code());
            assert_eq!(past, Some(rusqlite::ErrorCode::OperationInterrupted));
            (code, started.elapsed(), after)
        })
        .await
        .expect("join");
        assert_eq!(out.0, Some(rusqlite::ErrorCode::OperationInterrupted));
        assert!(out.1 < Duration::from_secs(10), "{:?}", out.1);
        assert_eq!(out.2.expect("fine after"), 42);
    }

    /// Runs an endless statement on its own connection under `arm`, and
    /// returns when it was interrupted.
    fn endless(arm: impl FnOnce(&Connection) -> Armed) -> Instant {
        let conn = Connection::open_in_memory().expect("open");
        let _armed = arm(&conn);
        let r = conn.query_row(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n",
            [],
            |r| r.get::<_, i64>(0),
        );
        let code = r.expect_err("interrupted").sqlite_error_code();
        assert_eq!(code, Some(rusqlite::ErrorCode::OperationInterrupted));
        Instant::now()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_timer_serves_every_call_even_an_earlier_deadline_armed_later() {
        let rt = Handle::current();
        let deadlines = Deadlines::default();
        let start = Instant::now();
        let late_at = start + Duration::from_secs(2);
        let (d, r) = (deadlines.clone(), rt.clone());
        let late =
            tokio::task::spawn_blocking(move || endless(|c| d.arm(c, late_at, &r).expect("armed")));
        // Let the late call arm first, so the timer sleeps towards it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let early_at = Instant::now() + Duration::from_millis(50);
        let (d, r) = (deadlines.clone(), rt.clone());
        let early = tokio::task::spawn_blocking(move || {
            endless(|c| d.arm(c, early_at, &r).expect("armed"))
        });
        let early = early.await.expect("join");
        let late = late.await.expect("join");
        // Each at its own deadline: the early call did not wait for the
        // late one's, and the late one was not cut short.
        assert!(early >= early_at && early < late_at, "{:?}", early - start);
        assert!(late >= late_at, "{:?}", late - start);
        // Both came from one task, which is still there for the next call.
        let set = deadlines.inner.set.lock();
        assert!(set.armed.is_empty());
        assert!(set.task.as_ref().is_some_and(|t| !t.is_finished()));
    }
}

//! [`SqliteManager`]: lido-core's [`Manager`] for SQLite connections.

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use lido_core::{ErrorClass, Manager};
use rusqlite::Connection;

use crate::cap::{Permit, Reserve};
use crate::error::ConnectError;
use crate::options::{Builder, Role};

/// Opens, checks and resets SQLite connections for a [`lido_core::Pool`].
///
/// [`SqlitePool`](crate::SqlitePool) uses it with [`Role::Reader`] for its
/// read-only pool. Use it directly to build your own pool; note that a pool
/// of [`Role::Writer`] connections lets writers race for the write lock.
///
/// Connecting runs `open` and the pragmas on a blocking thread; `check` runs
/// `SELECT 1` there too, moving the connection out and back.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use lido_sqlite::{Builder, Role, SqliteManager};
///
/// let opts = Builder::memory("manager_doc");
/// let anchor = opts.clone().build().await?; // a SqlitePool keeps the database alive
/// let pool = lido_core::Pool::builder(SqliteManager::new(opts, Role::Reader)).build().await?;
/// let conn = pool.get().await?;
/// let one: i64 = conn.query_row("SELECT 1", [], |r| r.get(0))?;
/// assert_eq!(one, 1);
/// # drop(anchor); Ok(()) }
/// ```
pub struct SqliteManager {
    opts: Arc<Builder>,
    role: Role,
    reserve: Option<Arc<Reserve>>,
}

impl fmt::Debug for SqliteManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteManager")
            .field("source", &self.opts.source)
            .field("role", &self.role)
            .finish()
    }
}

impl SqliteManager {
    /// A manager opening `role` connections with `opts`' pragmas and hooks.
    pub fn new(opts: Builder, role: Role) -> Self {
        Self::shared(Arc::new(opts), role, None)
    }

    pub(crate) fn shared(opts: Arc<Builder>, role: Role, reserve: Option<Arc<Reserve>>) -> Self {
        Self {
            opts,
            role,
            reserve,
        }
    }

    /// Which connections it opens.
    pub fn role(&self) -> Role {
        self.role
    }
}

/// A pooled SQLite connection. Derefs to [`rusqlite::Connection`].
pub struct SqliteConn {
    pub(crate) conn: Option<Connection>,
    pub(crate) broken: bool,
    /// The pool preempted the lease's read (lane lending): it was
    /// interrupted, and the connection is closed when the lease ends.
    pub(crate) preempted: Arc<AtomicBool>,
    permit: Option<Permit>,
    reserve: Option<Arc<Reserve>>,
}

impl Drop for SqliteConn {
    fn drop(&mut self) {
        // Close the connection before its cap permit is released.
        drop(self.conn.take());
        if let (Some(p), Some(r)) = (self.permit.take(), &self.reserve) {
            r.release(p);
        }
    }
}

impl SqliteConn {
    /// The connection; `None` only while a health check has it (never while leased).
    pub fn connection(&self) -> Option<&Connection> {
        self.conn.as_ref()
    }
}

impl Deref for SqliteConn {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        // Invariant: `has_broken` is true for an empty slot, so the pool
        // closes it instead of lending it; a leased connection is never empty.
        match &self.conn {
            Some(c) => c,
            None => unreachable!("lido-sqlite: a leased connection is always present"),
        }
    }
}

impl fmt::Debug for SqliteConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteConn")
            .field("path", &self.conn.as_ref().and_then(|c| c.path()))
            .field("broken", &self.broken)
            .finish()
    }
}

/// Runs `f` on a blocking thread with the connection moved in, then puts it back.
async fn with_conn<R: Send + 'static>(
    slot: &mut SqliteConn,
    f: impl FnOnce(&Connection) -> R + Send + 'static,
) -> Result<R, ConnectError> {
    let conn = slot.conn.take().ok_or(ConnectError::Lost)?;
    let (conn, out) = tokio::task::spawn_blocking(move || {
        let out = f(&conn);
        (conn, out)
    })
    .await
    .map_err(ConnectError::Join)?;
    slot.conn = Some(conn);
    Ok(out)
}

impl Manager for SqliteManager {
    type Connection = SqliteConn;
    type Error = ConnectError;

    async fn connect(&self) -> Result<SqliteConn, ConnectError> {
        let permit = match (&self.opts.cap, &self.reserve) {
            (Some(cap), Some(reserve)) => Some(reserve.acquire(cap).await?),
            (Some(cap), None) => Some(cap.acquire(1, || false).await?),
            (None, _) => None,
        };
        // Built first, so a failed open returns the permit through `Drop`.
        let mut slot = SqliteConn {
            conn: None,
            broken: false,
            preempted: Arc::new(AtomicBool::new(false)),
            permit,
            reserve: self.reserve.clone(),
        };
        let opts = Arc::clone(&self.opts);
        let role = self.role;
        let conn = tokio::task::spawn_blocking(move || crate::connect::open(&opts, role))
            .await
            .map_err(|e| match e.try_into_panic() {
                Ok(p) => ConnectError::Panic(crate::error::panic_message(&*p)),
                Err(e) => ConnectError::Join(e),
            })??;
        slot.conn = Some(conn);
        Ok(slot)
    }

    async fn check(&self, conn: &mut SqliteConn) -> Result<(), ConnectError> {
        with_conn(conn, |c| {
            c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
        })
        .await?
        .map(drop)
        .map_err(ConnectError::Check)
    }

    fn has_broken(&self, conn: &mut SqliteConn) -> bool {
        conn.broken || conn.conn.is_none() || conn.preempted.load(Ordering::SeqCst)
    }

    /// Interrupts the statement running on the connection
    /// (`sqlite3_interrupt`); the read fails with [`Error::Preempted`](crate::Error::Preempted).
    fn preempt_handle(&self, conn: &SqliteConn) -> Option<lido_core::PreemptHandle> {
        let interrupt = conn.conn.as_ref()?.get_interrupt_handle();
        let flag = Arc::clone(&conn.preempted);
        Some(Arc::new(move || {
            flag.store(true, Ordering::SeqCst);
            interrupt.interrupt();
        }))
    }

    fn needs_reset(&self, conn: &mut SqliteConn) -> bool {
        conn.conn.as_ref().is_some_and(|c| !c.is_autocommit())
    }

    async fn reset(&self, conn: &mut SqliteConn) -> Result<(), ConnectError> {
        with_conn(conn, |c| c.execute_batch("ROLLBACK"))
            .await?
            .map_err(ConnectError::Check)
    }

    fn classify(&self, err: &ConnectError) -> ErrorClass {
        err.class()
    }
}

//! [`Database`]: what every pool on one database shares — the writer lane,
//! the in-process gate of an in-memory database and the connection that
//! keeps it alive.
//!
//! A file pool owns its `Database`. Pools on the same shared in-memory name
//! in one process share one, found through a process-wide registry (held
//! weakly, so the database goes away with its last pool): two writer lanes
//! and two gates on one shared-cache database would let a write of one pool
//! meet a read or write of the other with `SQLITE_LOCKED`, which SQLite
//! reports at once instead of waiting.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Weak};

use parking_lot::Mutex;
use rusqlite::Connection;

use crate::cap::Permit;
use crate::connect;
use crate::error::{panic_message, ConnectError, Error, Result};
use crate::options::{Builder, Role, Source};
use crate::writer::{Gate, Writer};

/// One database's writer lane, gate and in-memory anchor.
pub(crate) struct Database {
    pub writer: Writer,
    pub gate: Gate,
    /// Keeps a shared in-memory database alive while a pool uses it.
    anchor: Mutex<Option<Connection>>,
    /// The registry key of an in-memory database.
    name: Option<String>,
}

/// Per-name slot: the lock serializes opening, the weak finds the open one.
#[derive(Default)]
struct Entry {
    open: tokio::sync::Mutex<Weak<Database>>,
}

static MEMORY: LazyLock<Mutex<HashMap<String, Arc<Entry>>>> = LazyLock::new(Default::default);

impl Drop for Database {
    fn drop(&mut self) {
        let Some(name) = &self.name else { return };
        let mut map = MEMORY.lock();
        // Only the map holds the entry: nobody is opening this name right now.
        if map.get(name).is_some_and(|e| Arc::strong_count(e) == 1) {
            map.remove(name);
        }
    }
}

impl Database {
    /// The database for `opts`: a new one for a file; for an in-memory name,
    /// the one another pool in this process already has open, else a new one.
    pub async fn open(opts: &Arc<Builder>, permit: Option<Permit>) -> Result<Arc<Self>> {
        let Source::Memory(name) = &opts.source else {
            return Ok(Arc::new(Self::start(opts, permit, None).await?));
        };
        let entry = Arc::clone(MEMORY.lock().entry(name.clone()).or_default());
        let mut open = entry.open.lock().await;
        if let Some(db) = open.upgrade() {
            tracing::debug!(name = %name, "lido-sqlite: joining the writer lane of an open in-memory database");
            return Ok(db);
        }
        let db = Arc::new(Self::start(opts, permit, Some(name.clone())).await?);
        *open = Arc::downgrade(&db);
        Ok(db)
    }

    async fn start(
        opts: &Arc<Builder>,
        permit: Option<Permit>,
        name: Option<String>,
    ) -> Result<Self> {
        let o = Arc::clone(opts);
        let (conn, anchor) = tokio::task::spawn_blocking(move || open_writer(&o))
            .await
            .map_err(|e| match e.try_into_panic() {
                Ok(p) => Error::Connect(ConnectError::Panic(panic_message(&*p))),
                Err(e) => Error::Join(e),
            })??;
        let gate: Gate = name
            .is_some()
            .then(|| Arc::new(parking_lot::RwLock::new(())));
        let writer = Writer::start(conn, Arc::clone(opts), gate.clone(), permit)?;
        Ok(Self {
            writer,
            gate,
            anchor: Mutex::new(anchor),
            name,
        })
    }

    /// Stops the lane after its queued writes and lets the in-memory database go.
    pub async fn shutdown(&self) {
        self.writer.shutdown().await;
        drop(self.anchor.lock().take());
    }
}

/// Opens the writer (and the anchor of an in-memory database).
fn open_writer(opts: &Builder) -> Result<(Connection, Option<Connection>), ConnectError> {
    let anchor = match &opts.source {
        Source::Memory(name) => Some(connect::open_anchor(name)?),
        Source::File(_) => None,
    };
    let conn = connect::open(opts, Role::Writer)?;
    Ok((conn, anchor))
}

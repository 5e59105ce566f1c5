//! [`SqliteFiles`]: one [`SqlitePool`] per database file, opened on first
//! use, closed when idle, under one cap on open connections across files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::OnceCell;

use crate::cap::Cap;
use crate::error::{Error, Result};
use crate::options::{Builder, Source};
use crate::pool::SqlitePool;

/// Settings for [`SqliteFiles`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FilesConfig {
    /// Most connections open at once across all files (writers included). At least 2.
    pub max_connections: usize,
    /// Most readers per file.
    pub readers_per_file: usize,
    /// A file's pool is closed once nobody holds it and it went unused this long.
    pub idle_timeout: Duration,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            max_connections: 64,
            readers_per_file: 2,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl FilesConfig {
    /// Sets `max_connections`.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Sets `readers_per_file`.
    pub fn readers_per_file(mut self, n: usize) -> Self {
        self.readers_per_file = n;
        self
    }

    /// Sets `idle_timeout`.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = d;
        self
    }
}

/// Pools for many database files (one per tenant, per project, per shard).
///
/// [`get`](Self::get) opens a file's pool on first use (building it once even
/// when many tasks ask at the same moment) and returns it after. Pools that
/// nobody holds are closed after `idle_timeout`. Every connection of every
/// pool counts against `max_connections`; when the cap is full, idle readers
/// and idle pools are closed to make room, then callers wait up to
/// `acquire_timeout`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use lido_sqlite::{Builder, FilesConfig, SqliteFiles};
///
/// let dir = tempfile::tempdir()?;
/// let template = Builder::file("unused")
///     .on_startup(|c| c.execute_batch("CREATE TABLE IF NOT EXISTS t(x)"));
/// let files = SqliteFiles::new(template, FilesConfig::default().max_connections(8))?;
/// for tenant in ["a", "b", "c"] {
///     let db = files.get(dir.path().join(format!("{tenant}.db"))).await?;
///     db.write(|c| c.execute("INSERT INTO t VALUES (1)", [])).await?;
/// }
/// assert_eq!(files.open_files(), 3);
/// assert!(files.open_connections() <= 8);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteFiles {
    inner: Arc<Files>,
}

struct Files {
    template: Builder,
    cfg: FilesConfig,
    cap: Arc<Cap>,
    slots: Mutex<HashMap<PathBuf, Arc<Slot>>>,
    /// A reclaim is running on a blocking thread.
    reclaiming: AtomicBool,
}

struct Slot {
    pool: OnceCell<SqlitePool>,
    last_used: Mutex<Instant>,
}

impl Slot {
    /// Nobody but the map holds the slot or its pool. `get()` takes the slot
    /// under the map lock and clones the pool before letting the slot go, so
    /// checked under the map lock this is never true for a slot a `get()` is
    /// about to hand out: closing it then cannot leave two pools (two
    /// writers) on one file.
    fn unheld(self: &Arc<Self>) -> bool {
        Arc::strong_count(self) == 1
            && self
                .pool
                .get()
                .is_none_or(|p| Arc::strong_count(&p.inner) == 1)
    }

    fn unused_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(*self.last_used.lock())
    }
}

/// Drops closed pools (and the SQLite connections in them) on a blocking
/// thread when there is a runtime, never on an async worker.
fn dispose<T: Send + 'static>(closed: T) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => drop(h.spawn_blocking(move || drop(closed))),
        Err(_) => drop(closed),
    }
}

/// Clears [`Files::reclaiming`] however the reclaim ends.
struct Reclaiming(Arc<Files>);

impl Drop for Reclaiming {
    fn drop(&mut self) {
        self.0.reclaiming.store(false, Ordering::Release);
    }
}

impl std::fmt::Debug for SqliteFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteFiles")
            .field("cfg", &self.inner.cfg)
            .field("open_files", &self.open_files())
            .field("open_connections", &self.open_connections())
            .finish()
    }
}

impl SqliteFiles {
    /// A manager whose pools use `template`'s settings (its source is
    /// replaced by each file's path; its startup hook runs each time a
    /// file's pool opens, so make it idempotent). Call it inside a tokio
    /// runtime: it starts the task that closes idle pools.
    pub fn new(template: Builder, cfg: FilesConfig) -> Result<Self> {
        if cfg.max_connections < 2 {
            return Err(Error::Config(
                "SqliteFiles max_connections must be at least 2 (a writer and a reader)".into(),
            ));
        }
        if cfg.readers_per_file == 0 || cfg.idle_timeout.is_zero() {
            return Err(Error::Config(
                "SqliteFiles readers_per_file and idle_timeout must be greater than zero".into(),
            ));
        }
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Build(lido_core::BuildError::NoRuntime))?;
        let wait = template.readers.acquire_timeout;
        let inner = Arc::new_cyclic(|weak: &Weak<Files>| {
            let weak = weak.clone();
            let reclaim = Box::new(move || {
                if let Some(files) = weak.upgrade() {
                    Files::reclaim(files);
                }
            });
            Files {
                template,
                cap: Arc::new(Cap::new(cfg.max_connections, wait, reclaim)),
                cfg,
                slots: Mutex::new(HashMap::new()),
                reclaiming: AtomicBool::new(false),
            }
        });
        spawn_reaper(&handle, Arc::downgrade(&inner));
        Ok(Self { inner })
    }

    /// The pool for `path`, opened on first use.
    pub async fn get(&self, path: impl AsRef<Path>) -> Result<SqlitePool> {
        let key = key_for(path.as_ref())
            .map_err(|e| Error::Config(format!("bad path {}: {e}", path.as_ref().display())))?;
        let slot = {
            let mut slots = self.inner.slots.lock();
            let slot = slots.entry(key.clone()).or_insert_with(|| {
                Arc::new(Slot {
                    pool: OnceCell::new(),
                    last_used: Mutex::new(Instant::now()),
                })
            });
            *slot.last_used.lock() = Instant::now();
            Arc::clone(slot)
        };
        // The pool is cloned while `slot` is still held (see `Slot::unheld`).
        let pool = slot
            .pool
            .get_or_try_init(|| self.inner.open(key))
            .await?
            .clone();
        *slot.last_used.lock() = Instant::now();
        drop(slot);
        Ok(pool)
    }

    /// Files with an open pool.
    pub fn open_files(&self) -> usize {
        let slots = self.inner.slots.lock();
        slots.values().filter(|s| s.pool.initialized()).count()
    }

    /// Whether `path` has an open pool.
    pub fn is_open(&self, path: impl AsRef<Path>) -> bool {
        let Ok(key) = key_for(path.as_ref()) else {
            return false;
        };
        let slots = self.inner.slots.lock();
        slots.get(&key).is_some_and(|s| s.pool.initialized())
    }

    /// Connections open across all files (writers and readers).
    pub fn open_connections(&self) -> usize {
        self.inner.cap.in_use()
    }

    /// The cap on [`open_connections`](Self::open_connections).
    pub fn max_connections(&self) -> usize {
        self.inner.cap.limit()
    }

    /// Closes the pools nobody holds that went unused for `idle_timeout`;
    /// returns how many. (A background task does this every `idle_timeout / 2`.)
    pub fn close_idle(&self) -> usize {
        self.inner.close_idle(self.inner.cfg.idle_timeout)
    }

    /// Removes `path`'s pool and closes it (readers as they come back,
    /// writer after its queued writes). Returns whether one was open.
    pub async fn close(&self, path: impl AsRef<Path>, deadline: Duration) -> bool {
        let Ok(key) = key_for(path.as_ref()) else {
            return false;
        };
        let slot = self.inner.slots.lock().remove(&key);
        match slot.and_then(|s| s.pool.get().cloned()) {
            Some(pool) => {
                pool.close(deadline).await;
                true
            }
            None => false,
        }
    }
}

impl Files {
    async fn open(&self, path: PathBuf) -> Result<SqlitePool> {
        let mut opts = self.template.clone();
        opts.source = Source::File(path.clone());
        opts.cap = Some(Arc::clone(&self.cap));
        opts.readers.max_size = self.cfg.readers_per_file;
        opts.readers.min_idle = 0;
        opts.readers.core_size = None;
        let pool = opts.build().await?;
        tracing::info!(path = %path.display(), "lido-sqlite: opened a file pool");
        Ok(pool)
    }

    /// Closes idle pools unused for `idle_for`; returns how many. They are
    /// taken out under the map lock and dropped after it, off the executor.
    fn close_idle(&self, idle_for: Duration) -> usize {
        let now = Instant::now();
        let mut closed = Vec::new();
        self.slots.lock().retain(|_, s| {
            let close = s.unused_for(now) >= idle_for && s.unheld();
            if close {
                closed.push(Arc::clone(s));
            }
            !close
        });
        let n = closed.len();
        if n > 0 {
            tracing::debug!(closed = n, "lido-sqlite: closing idle file pools");
        }
        dispose(closed);
        n
    }

    /// The cap is full: free connections on a blocking thread (closing them
    /// does file I/O), one reclaim at a time. The waiting `acquire` wakes as
    /// their permits come back.
    fn reclaim(files: Arc<Self>) {
        if files.reclaiming.swap(true, Ordering::AcqRel) {
            return;
        }
        let done = Reclaiming(files);
        let work = move || done.0.reclaim_now();
        match tokio::runtime::Handle::try_current() {
            Ok(h) => drop(h.spawn_blocking(work)),
            Err(_) => work(),
        }
    }

    /// Closes every idle reader, then, if the cap is still full, the least
    /// recently used pool nobody holds.
    fn reclaim_now(&self) {
        let pools: Vec<SqlitePool> = {
            let slots = self.slots.lock();
            slots
                .values()
                .filter_map(|s| s.pool.get().cloned())
                .collect()
        };
        for p in &pools {
            p.readers().retain(|_, _| false);
        }
        drop(pools);
        if self.cap.in_use() < self.cap.limit() {
            return;
        }
        let evicted = {
            let mut slots = self.slots.lock();
            let lru = slots
                .iter()
                .filter(|(_, s)| s.pool.initialized() && s.unheld())
                .min_by_key(|(_, s)| *s.last_used.lock())
                .map(|(k, _)| k.clone());
            lru.and_then(|key| {
                tracing::debug!(path = %key.display(), "lido-sqlite: closing an idle file pool to stay under the cap");
                slots.remove(&key)
            })
        };
        drop(evicted); // outside the lock; this runs on a blocking thread
    }
}

/// One key per file: `a/../b.db`, `./b.db` and a symlinked directory all
/// name the same pool (two pools on one file would be two writers).
fn key_for(path: &Path) -> std::io::Result<PathBuf> {
    let abs = std::path::absolute(path)?;
    match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(name)) => match dir.canonicalize() {
            Ok(dir) => Ok(dir.join(name)),
            Err(_) => Ok(abs),
        },
        _ => Ok(abs),
    }
}

fn spawn_reaper(handle: &tokio::runtime::Handle, weak: Weak<Files>) {
    handle.spawn(async move {
        loop {
            let period = match weak.upgrade() {
                Some(f) => (f.cfg.idle_timeout / 2).max(Duration::from_millis(10)),
                None => return,
            };
            tokio::time::sleep(period).await;
            let Some(files) = weak.upgrade() else { return };
            files.close_idle(files.cfg.idle_timeout);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn one_open_pool(dir: &Path) -> (SqliteFiles, PathBuf) {
        let template = Builder::file("unused")
            .on_startup(|c| c.execute_batch("CREATE TABLE IF NOT EXISTS t(x)"));
        // Room for exactly one pool: its writer and its reader.
        let cfg = FilesConfig::default().max_connections(2);
        let files = SqliteFiles::new(template, cfg).expect("files");
        let path = dir.join("a.db");
        let db = files.get(&path).await.expect("open");
        db.read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)))
            .await
            .expect("read");
        drop(db);
        let key = key_for(&path).expect("key");
        (files, key)
    }

    /// A `get()` that took the slot but has not cloned its pool yet holds
    /// the slot: neither the cap's reclaim nor the idle reaper may close it.
    #[tokio::test]
    async fn a_slot_a_get_is_handing_out_is_never_closed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (files, key) = one_open_pool(dir.path()).await;
        assert_eq!(
            files.open_connections(),
            files.max_connections(),
            "cap full"
        );
        let in_flight = files.inner.slots.lock().get(&key).cloned();
        assert!(in_flight.is_some());

        files.inner.reclaim_now();
        assert_eq!(files.inner.close_idle(Duration::ZERO), 0);
        assert!(files.is_open(&key), "the slot stays while a get() holds it");

        drop(in_flight);
        files.inner.reclaim_now();
        assert!(!files.is_open(&key), "then reclaim closes it");
    }

    #[tokio::test]
    async fn a_pool_someone_holds_is_never_closed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (files, key) = one_open_pool(dir.path()).await;
        let held = files.get(&key).await.expect("get");
        assert_eq!(files.inner.close_idle(Duration::ZERO), 0);
        files.inner.reclaim_now();
        assert!(files.is_open(&key));
        drop(held);
        assert_eq!(files.inner.close_idle(Duration::ZERO), 1);
        assert!(!files.is_open(&key));
    }
}

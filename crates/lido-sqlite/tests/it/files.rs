//! SqliteFiles: one pool per file, reuse, idle close, and the global cap.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_sqlite::rusqlite::functions::FunctionFlags;
use lido_sqlite::{Builder, FilesConfig, SqliteFiles, SqlitePool};

fn template() -> Builder {
    Builder::file("template-path-unused")
        .acquire_timeout(Duration::from_secs(10))
        .on_startup(|c| c.execute_batch("CREATE TABLE IF NOT EXISTS t(x INTEGER)"))
}

async fn insert_and_count(db: &SqlitePool) -> i64 {
    db.write(|c| c.execute("INSERT INTO t VALUES (1)", []))
        .await
        .expect("write");
    db.read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
        .await
        .expect("read")
}

async fn wait_until(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn opens_on_first_use_and_reuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = SqliteFiles::new(template(), FilesConfig::default()).expect("files");
    let path = dir.path().join("a.db");
    assert!(!files.is_open(&path));
    let first = files.get(&path).await.expect("open");
    assert_eq!(insert_and_count(&first).await, 1);
    let again = files.get(&path).await.expect("reuse");
    assert!(first.ptr_eq(&again), "the same pool");
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    let roundabout = files
        .get(dir.path().join("sub/../a.db"))
        .await
        .expect("same file, other spelling");
    assert!(
        first.ptr_eq(&roundabout),
        "one pool per file, however it is named"
    );
    assert_eq!(insert_and_count(&again).await, 2);
    let other = files.get(dir.path().join("b.db")).await.expect("open b");
    assert!(!other.ptr_eq(&first));
    assert_eq!(insert_and_count(&other).await, 1, "files are separate");
    assert_eq!(files.open_files(), 2);
    assert!(files.close(&path, Duration::from_secs(1)).await);
    assert!(!files.is_open(&path));
}

#[tokio::test]
async fn concurrent_first_use_builds_one_pool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = SqliteFiles::new(template(), FilesConfig::default()).expect("files");
    let path = dir.path().join("race.db");
    let gets: Vec<_> = (0..16)
        .map(|_| {
            let (files, path) = (files.clone(), path.clone());
            tokio::spawn(async move { files.get(path).await })
        })
        .collect();
    let mut pools = Vec::new();
    for g in gets {
        pools.push(g.await.expect("task").expect("get"));
    }
    assert!(pools.iter().all(|p| p.ptr_eq(&pools[0])));
    assert_eq!(files.open_files(), 1);
}

#[tokio::test]
async fn idle_pools_close_and_reopen_with_their_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = FilesConfig::default().idle_timeout(Duration::from_millis(100));
    let files = SqliteFiles::new(template(), cfg).expect("files");
    let (idle, held) = (dir.path().join("idle.db"), dir.path().join("held.db"));
    let db = files.get(&idle).await.expect("open");
    insert_and_count(&db).await;
    drop(db);
    let keep = files.get(&held).await.expect("open held");
    assert!(
        wait_until(|| !files.is_open(&idle)).await,
        "idle pool closed"
    );
    assert!(files.is_open(&held), "a held pool stays open");
    assert!(
        wait_until(|| files.open_connections() <= 2).await,
        "only the held pool's writer and reader slot remain"
    );
    let db = files.get(&idle).await.expect("reopen");
    assert_eq!(insert_and_count(&db).await, 2, "data survived the close");
    drop(keep);
}

/// Real SQLite connections alive: +1 when one opens (after-connect hook),
/// -1 when SQLite closes it (it frees the connection's functions, and with
/// them the `Alive` guard registered in the hook). `max` is the most seen.
#[derive(Default)]
struct Census {
    alive: AtomicUsize,
    max: AtomicUsize,
}

struct Alive(Arc<Census>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

fn counted_template(census: &Arc<Census>) -> Builder {
    let census = Arc::clone(census);
    template().after_connect(move |c, _role| {
        let now = census.alive.fetch_add(1, Ordering::SeqCst) + 1;
        census.max.fetch_max(now, Ordering::SeqCst);
        let alive = Alive(Arc::clone(&census));
        c.create_scalar_function("lido_census", 0, FunctionFlags::SQLITE_UTF8, move |_| {
            let _ = &alive;
            Ok(0)
        })
    })
}

async fn churn(files: SqliteFiles, dir: PathBuf, worker: usize, done: Arc<AtomicUsize>) {
    for round in 0..5 {
        let path = dir.join(format!("f{}.db", (worker + round) % 8));
        let db = files.get(&path).await.expect("get under the cap");
        insert_and_count(&db).await;
        drop(db);
        done.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_cap_holds_across_files() {
    const CAP: usize = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let census = Arc::new(Census::default());
    let cfg = FilesConfig::default()
        .max_connections(CAP)
        .readers_per_file(2)
        .idle_timeout(Duration::from_secs(60));
    let files = SqliteFiles::new(counted_template(&census), cfg).expect("files");

    // Eight files, more than the cap can hold open at once (two per file).
    let done = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (files, dir) = (files.clone(), dir.path().to_path_buf());
            tokio::spawn(churn(files, dir, w, Arc::clone(&done)))
        })
        .collect();
    for w in workers {
        w.await.expect("worker");
    }
    assert_eq!(
        done.load(Ordering::Relaxed),
        30,
        "every operation succeeded"
    );
    let max = census.max.load(Ordering::SeqCst);
    assert!(
        max <= CAP,
        "{max} SQLite connections were open at once, cap {CAP}"
    );
    assert!(max >= 2, "the census saw the connections: {max}");
    assert!(census.alive.load(Ordering::SeqCst) <= CAP);
    assert!(
        files.open_files() <= CAP,
        "idle pools were closed to make room"
    );
    drop(files);
    assert!(
        wait_until(|| census.alive.load(Ordering::SeqCst) == 0).await,
        "every connection closed with the manager"
    );
}

#[tokio::test]
async fn a_cap_below_two_is_rejected() {
    let err = SqliteFiles::new(template(), FilesConfig::default().max_connections(1))
        .expect_err("too small");
    assert!(matches!(err, lido_sqlite::Error::Config(_)), "{err:?}");
}

//! A server that stops answering without closing its sockets (issue 11):
//! its processes stopped with SIGSTOP ([`PgServer::freeze`]). The pool's
//! watchdog notices within about 1 s, in-flight calls end with the typed
//! [`PgError::NotAnswering`], new acquires fail fast with it, readiness goes
//! not-ready, and service returns after [`PgServer::thaw`] with no session
//! leaked. Also: the default call timeout, its `statement_timeout`
//! push-down, and per-call overrides longer than it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_http::{HealthMonitor, Status};
use lido_postgres::{PgConfig, PgError, PgPool, TxOptions, DEFAULT_QUERY_TIMEOUT};
use lido_testkit::PgServer;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::common;

const APP: &str = "lido_frozen";
/// The bound asserted on detection and recovery (the target is ~1 s and
/// ~50 ms; the rest is margin for CI noise).
const BOUND: Duration = Duration::from_secs(3);
/// "Fails fast": far under the 30 s `acquire_timeout`.
const FAST: Duration = Duration::from_millis(250);

/// How long each call took, and how it ended.
type Seen = Vec<(Duration, Result<(), PgError>)>;

/// Callers looping a short query; each call bounded by 5 s.
struct Load {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(pool: &PgPool, n: usize) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..n)
            .map(|_| {
                let (pool, seen, stop) = (pool.clone(), Arc::clone(&seen), Arc::clone(&stop));
                tokio::spawn(async move {
                    let mut i = 0i64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let t0 = Instant::now();
                        let call = async {
                            let conn = pool.get().await.map_err(PgError::from)?;
                            conn.query_one("SELECT $1::int8 + 1", &[&i]).await?;
                            Ok::<(), PgError>(())
                        };
                        let r = tokio::time::timeout(Duration::from_secs(5), call)
                            .await
                            .unwrap_or_else(|_| panic!("a call ran past its 5 s deadline"));
                        let failed = r.is_err();
                        seen.lock().push((t0.elapsed(), r));
                        if failed {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                })
            })
            .collect();
        Self { seen, stop, tasks }
    }

    /// Stops the callers and returns what they saw.
    async fn finish(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("caller");
        }
        std::mem::take(&mut *self.seen.lock())
    }
}

/// Waits up to `limit` for `cond`; returns how long it took.
async fn until(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if cond() {
            return Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_is_noticed_fails_fast_and_comes_back() {
    // Timed: not beside the fault suite's faults.
    let _serial = crate::faults_suite::SERIAL.lock().await;
    let server = PgServer::start().expect("server");
    let db = server.create_database().expect("db");
    let cfg = PgConfig::parse(&server.url(&db)).expect("url");
    // Nothing about timeouts configured: the defaults do the work.
    let pool = PgPool::builder(cfg)
        .max_size(4)
        .application_name(APP)
        .build()
        .await
        .expect("pool");
    let monitor = HealthMonitor::builder()
        .pool("frozen", pool.clone())
        .interval(Duration::from_millis(200))
        .spawn()
        .expect("monitor");
    assert!(until(BOUND, || monitor.readiness().status == Status::Pass)
        .await
        .is_some());
    let load = Load::start(&pool, 8);
    tokio::time::sleep(Duration::from_millis(300)).await;

    tokio::task::block_in_place(|| server.freeze()).expect("freeze");
    let frozen_at = Instant::now();
    let noticed = until(BOUND, || monitor.readiness().status == Status::Fail).await;
    let noticed =
        noticed.unwrap_or_else(|| panic!("not-ready within {BOUND:?}: {:?}", monitor.readiness()));
    println!(
        "frozen server: readiness not-ready {:.0} ms after SIGSTOP",
        noticed.as_secs_f64() * 1e3
    );
    assert!(pool.server_silent_for().is_some());

    // A new acquire fails fast, typed, naming the server and the silence.
    let t0 = Instant::now();
    let err = pool.get().await.expect_err("no lease from a frozen server");
    let took = t0.elapsed();
    println!(
        "frozen server: get() failed in {:.2} ms: {err}",
        took.as_secs_f64() * 1e3
    );
    assert!(took < FAST, "{took:?}");
    assert!(
        matches!(err, lido_core::Error::Unavailable { .. }),
        "{err:?}"
    );
    let pg = err.backend().expect("a PgError inside");
    assert!(matches!(pg, PgError::NotAnswering { .. }), "{pg:?}");
    assert!(PgError::from(err.clone()).is_not_answering());
    let port = server
        .url(&db)
        .split(':')
        .nth(3)
        .map(|p| p.split('/').next().unwrap_or("").to_owned());
    let text = err.to_string();
    assert!(text.contains("is not answering: no reply for"), "{text}");
    assert!(
        port.is_some_and(|p| text.contains(&format!(":{p}"))),
        "names the server: {text}"
    );

    // In-flight calls ended, typed: nobody is stuck in a query any more.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stuck = pool.status().in_use;
    assert_eq!(
        stuck,
        0,
        "leases still held while frozen: {:?}",
        pool.status()
    );
    let frozen_for = frozen_at.elapsed();

    tokio::task::block_in_place(|| server.thaw()).expect("thaw");
    let thawed = Instant::now();
    let answering = until(BOUND, || pool.server_silent_for().is_none()).await;
    println!(
        "frozen server: watchdog saw it answer {:?} after SIGCONT",
        answering
    );
    let mut back = None;
    while thawed.elapsed() < BOUND {
        let ok = async {
            let conn = pool.get().await.ok()?;
            conn.query_one("SELECT 1", &[]).await.ok()
        };
        if ok.await.is_some() {
            back = Some(thawed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let back = back.unwrap_or_else(|| panic!("not serving {BOUND:?} after thaw"));
    println!(
        "frozen server: served again {:.1} ms after SIGCONT",
        back.as_secs_f64() * 1e3
    );
    assert!(until(BOUND, || monitor.readiness().status == Status::Pass)
        .await
        .is_some());

    let seen = load.finish().await;
    let not_answering = seen
        .iter()
        .filter(|(_, r)| r.as_ref().is_err_and(PgError::is_not_answering))
        .count();
    let other: Vec<String> = seen
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .filter(|e| !e.is_not_answering())
        .map(ToString::to_string)
        .take(5)
        .collect();
    let longest = seen.iter().map(|(d, _)| *d).max().unwrap_or_default();
    println!(
        "frozen server: {} calls, {not_answering} failed NotAnswering, longest call {:.0} ms, frozen {:.1} s",
        seen.len(),
        longest.as_secs_f64() * 1e3,
        frozen_for.as_secs_f64()
    );
    assert!(
        not_answering >= 1,
        "calls in flight at the freeze fail typed"
    );
    assert!(other.is_empty(), "other errors: {other:#?}");
    // Calls stuck in a query end with the error itself, a timeout.
    let in_flight: Vec<&PgError> = seen
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .filter(|e| matches!(e, PgError::NotAnswering { .. }))
        .collect();
    assert!(
        !in_flight.is_empty(),
        "a call in flight at the freeze ended NotAnswering"
    );
    assert!(in_flight.iter().all(|e| e.is_timeout()));
    assert!(longest < BOUND, "a call took {longest:?}");
    // Stuck connections were discarded, and their server sessions end.
    common::no_leaked_sessions(&server, &pool, APP).await;
}

#[tokio::test]
async fn the_default_query_timeout_is_pushed_down_as_statement_timeout() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let pool = PgPool::builder(common::config(server, &db))
        .max_size(1)
        .build()
        .await
        .expect("pool");
    let conn = pool.get().await.expect("conn");
    let row = conn
        .query_one("SHOW statement_timeout", &[])
        .await
        .expect("show");
    let shown: String = row.get(0);
    assert_eq!(DEFAULT_QUERY_TIMEOUT, Duration::from_secs(30));
    assert_eq!(shown, "31s", "query_timeout 30 s + 1 s");
    // A user's own statement_timeout is sent as it is.
    let own = PgPool::builder(common::config(server, &db))
        .statement_timeout(Duration::from_secs(7))
        .build()
        .await
        .expect("pool");
    let row = own
        .get()
        .await
        .expect("conn")
        .query_one("SHOW statement_timeout", &[])
        .await
        .expect("show");
    assert_eq!(row.get::<_, String>(0), "7s");
    // query_timeout(None): nothing pushed down.
    let none = PgPool::builder(common::config(server, &db))
        .query_timeout(None)
        .build()
        .await
        .expect("pool");
    let row = none
        .get()
        .await
        .expect("conn")
        .query_one("SHOW statement_timeout", &[])
        .await
        .expect("show");
    assert_eq!(row.get::<_, String>(0), "0");
}

/// The session's `statement_timeout`, asked without lido's own methods.
async fn show(conn: &lido_postgres::PgConn) -> String {
    let row = conn
        .client()
        .query_one("SHOW statement_timeout", &[])
        .await
        .expect("show");
    row.get(0)
}

#[tokio::test]
async fn longer_per_call_limits_are_not_cut_short_by_the_pushed_down_one() {
    let server = PgServer::shared();
    let db = server.create_database().expect("db");
    let pool = PgPool::builder(common::config(server, &db))
        .max_size(1)
        .query_timeout(Some(Duration::from_millis(200)))
        .build()
        .await
        .expect("pool");
    let conn = pool.get().await.expect("conn");
    assert_eq!(show(&conn).await, "1200ms");

    // The pool's limit applies when nothing else is said: typed timeout.
    let t0 = Instant::now();
    let e = conn
        .query("SELECT pg_sleep(5)", &[])
        .await
        .expect_err("times out");
    assert!(e.is_timeout(), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());

    // The server stops what the client does not wait for: the pushed-down
    // statement_timeout ends a statement sent past lido's timeout.
    let t0 = Instant::now();
    let e = conn
        .client()
        .query("SELECT pg_sleep(5)", &[])
        .await
        .expect_err("server stops it");
    assert_eq!(e.code().map(|c| c.code()), Some("57014"), "{e}");
    println!(
        "pushed-down statement_timeout ended the statement after {:?}",
        t0.elapsed()
    );

    // A per-call limit longer than the pushed-down one is not cut short.
    let rows = conn
        .timeout(Duration::from_secs(4))
        .query("SELECT pg_sleep(1.5)", &[])
        .await
        .expect("a 4 s limit runs a 1.5 s statement");
    assert_eq!(rows.len(), 1);
    assert_eq!(show(&conn).await, "5s", "raised for the session");

    // Inside a transaction the raise is SET LOCAL: gone after it.
    drop(conn);
    let pool2 = PgPool::builder(common::config(server, &db))
        .max_size(1)
        .query_timeout(Some(Duration::from_millis(200)))
        .build()
        .await
        .expect("pool");
    let mut conn = pool2.get().await.expect("conn");
    {
        let tx = conn
            .begin(&TxOptions::new().timeout(Duration::from_secs(4)))
            .await
            .expect("begin");
        tx.timeout(Duration::from_secs(3))
            .query("SELECT pg_sleep(1.5)", &[])
            .await
            .expect("within the per-call and transaction limits");
        tx.commit().await.expect("commit");
    }
    assert_eq!(
        show(&conn).await,
        "1200ms",
        "SET LOCAL ended with the transaction"
    );
    // No limit at all: unlimited on the server too.
    conn.no_timeout()
        .query("SELECT pg_sleep(1.3)", &[])
        .await
        .expect("no limit");
    assert_eq!(show(&conn).await, "0");
}

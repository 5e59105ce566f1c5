//! The fault suite (issue 11): a pool with the default settings (but
//! `max_size` 8, for CI's 2 cores) under a loop of 32 callers running
//! `SELECT $1::int8 + 1`, each call bounded by a 5 s deadline, while its
//! throwaway server goes through a fast restart, a crash, a 2 s outage, a
//! 2 s freeze (SIGSTOP, then SIGCONT) and `pg_terminate_backend` of every
//! session. Each fault asserts:
//!
//! - no caller returns past its deadline, nor even reaches it;
//! - no leak afterwards: every connection back in the pool, whose counts
//!   add up, and the server's `pg_stat_activity` holds exactly the pool's
//!   connections for its `application_name`;
//! - the first caller is served within [`RECOVERY_BOUND`] of the server
//!   accepting connections again (the target is 50 ms; the margin is for CI
//!   noise; the measured figure is printed);
//! - every error is typed: `CircuitOpen`, `Connect` or `AcquireTimeout`
//!   from the pool, or a `PgError` of a connection class (or
//!   `NotAnswering`), and its Display carries the server's reason when the
//!   server gave one.
//!
//! The faults run one at a time (each on its own server) so they do not
//! disturb each other's timings.
//!
//! The freeze also asserts what the pool's watchdog does: readiness goes
//! not-ready within [`FREEZE_NOTICED`] of SIGSTOP (the target is ~1 s; the
//! figure is printed), a `get()` while frozen fails within [`FAIL_FAST`]
//! with the typed `PgError::NotAnswering` naming the server, and calls in
//! flight at the freeze end with it (none reaches its deadline).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_core::Error as CoreError;
use lido_postgres::{PgConfig, PgError, PgPool, PoolError};
use lido_testkit::{PgServer, StopMode};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::common;

const APP: &str = "lido_faults_suite";
const MAX_SIZE: usize = 8;
const CALLERS: usize = 32;
/// Each call (get + query) is bounded by this.
const DEADLINE: Duration = Duration::from_secs(5);
/// What "past its deadline" allows for scheduling.
const SLACK: Duration = Duration::from_millis(500);
/// The recovery target is 50 ms; this is the bound asserted on CI.
const RECOVERY_BOUND: Duration = Duration::from_secs(1);
/// A frozen server is reported not-ready within this (target ~1 s).
const FREEZE_NOTICED: Duration = Duration::from_secs(3);
/// A `get()` while frozen fails within this (`acquire_timeout` is 30 s).
const FAIL_FAST: Duration = Duration::from_millis(250);
/// A caller's pause after an error (a real application would back off).
const ERROR_PAUSE: Duration = Duration::from_millis(5);

/// One fault at a time: they are timed (`frozen.rs` takes it too).
pub(crate) static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Clone, Copy, Debug)]
enum Fault {
    FastRestart,
    Crash,
    Outage(Duration),
    Freeze(Duration),
    TerminateAll,
}

/// How one call ended.
enum Outcome {
    Ok,
    Failed(Call),
    /// The caller's deadline passed first.
    DeadlineHit,
}

/// A failed call: the pool's error or the query's.
enum Call {
    Pool(PoolError),
    Query(PgError),
}

struct Op {
    end: Instant,
    took: Duration,
    outcome: Outcome,
}

/// The callers' loop and what it saw.
struct Load {
    stop: Arc<AtomicBool>,
    ops: Arc<Mutex<Vec<Op>>>,
    tasks: Vec<JoinHandle<()>>,
}

async fn call(pool: &PgPool, i: i64) -> Result<(), Call> {
    let conn = pool.get().await.map_err(Call::Pool)?;
    let row = conn
        .query_one("SELECT $1::int8 + 1", &[&i])
        .await
        .map_err(Call::Query)?;
    assert_eq!(row.get::<_, i64>(0), i + 1);
    Ok(())
}

impl Load {
    fn start(pool: &PgPool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..CALLERS)
            .map(|_| {
                let (pool, stop, ops) = (pool.clone(), Arc::clone(&stop), Arc::clone(&ops));
                tokio::spawn(async move {
                    let mut i = 0i64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let start = Instant::now();
                        let outcome = match tokio::time::timeout(DEADLINE, call(&pool, i)).await {
                            Ok(Ok(())) => Outcome::Ok,
                            Ok(Err(e)) => Outcome::Failed(e),
                            Err(_) => Outcome::DeadlineHit,
                        };
                        let pause = !matches!(outcome, Outcome::Ok);
                        let end = Instant::now();
                        let took = end - start;
                        ops.lock().push(Op { end, took, outcome });
                        if pause {
                            tokio::time::sleep(ERROR_PAUSE).await;
                        }
                    }
                })
            })
            .collect();
        Self { stop, ops, tasks }
    }

    /// The end of the first successful call ending at or after `t0`
    /// (waits up to 15 s for one).
    async fn first_success_after(&self, t0: Instant) -> Option<Instant> {
        let until = t0 + Duration::from_secs(15);
        while Instant::now() < until {
            let found = self
                .ops
                .lock()
                .iter()
                .filter(|op| op.end >= t0 && matches!(op.outcome, Outcome::Ok))
                .map(|op| op.end)
                .min();
            if found.is_some() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        None
    }

    /// Stops the callers (each ends within its deadline) and returns what they saw.
    async fn finish(self) -> Vec<Op> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("caller task");
        }
        std::mem::take(&mut *self.ops.lock())
    }
}

/// The first instant a plain connect (and query) succeeds, probing every ms.
async fn first_accept(url: String) -> Instant {
    loop {
        if let Ok(Ok((client, conn))) = tokio::time::timeout(
            Duration::from_secs(1),
            tokio_postgres::connect(&url, tokio_postgres::NoTls),
        )
        .await
        {
            let at = Instant::now();
            drop(client);
            drop(conn);
            return at;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Stops the server in `mode`, leaves it down for `down`, starts it again
/// and returns when it accepted connections again.
async fn stop_and_start(server: &PgServer, url: &str, mode: StopMode, down: Duration) -> Instant {
    tokio::task::block_in_place(|| server.stop_with(mode)).expect("stop");
    tokio::time::sleep(down).await;
    let probe = tokio::spawn(first_accept(url.to_owned()));
    tokio::task::block_in_place(|| server.start_again()).expect("start again");
    tokio::time::timeout(Duration::from_secs(30), probe)
        .await
        .expect("the server accepts within 30 s")
        .expect("probe task")
}

/// Freezes the server for `d` and checks what the pool does meanwhile:
/// not-ready within [`FREEZE_NOTICED`], `get()` failing within
/// [`FAIL_FAST`] with `NotAnswering`. Returns the thaw's instant.
async fn freeze_for(server: &PgServer, pool: &PgPool, d: Duration) -> Instant {
    let monitor = lido_http::HealthMonitor::builder()
        .pool("faults", pool.clone())
        .interval(Duration::from_millis(200))
        .spawn()
        .expect("monitor");
    tokio::task::block_in_place(|| server.freeze()).expect("freeze");
    let frozen = Instant::now();
    let not_ready = loop {
        if monitor.readiness().status == lido_http::Status::Fail {
            break frozen.elapsed();
        }
        assert!(
            frozen.elapsed() < FREEZE_NOTICED,
            "still ready {FREEZE_NOTICED:?} after the freeze: {:?}",
            monitor.readiness()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let t0 = Instant::now();
    let err = pool.get().await.expect_err("no lease while frozen");
    let took = t0.elapsed();
    println!(
        "Freeze: not-ready {:.0} ms after SIGSTOP; get() failed in {:.2} ms: {err}",
        not_ready.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e3
    );
    assert!(took < FAIL_FAST, "get() took {took:?} while frozen");
    assert!(
        err.backend().is_some_and(PgError::is_not_answering),
        "{err:?}"
    );
    tokio::time::sleep(d.saturating_sub(frozen.elapsed())).await;
    tokio::task::block_in_place(|| server.thaw()).expect("thaw");
    Instant::now()
}

/// Runs `fault`; returns when the server accepts (serves) again.
async fn inject(server: &PgServer, pool: &PgPool, url: &str, fault: Fault) -> Instant {
    match fault {
        Fault::FastRestart => stop_and_start(server, url, StopMode::Fast, Duration::ZERO).await,
        Fault::Crash => stop_and_start(server, url, StopMode::Immediate, Duration::ZERO).await,
        Fault::Outage(d) => stop_and_start(server, url, StopMode::Fast, d).await,
        Fault::Freeze(d) => freeze_for(server, pool, d).await,
        Fault::TerminateAll => {
            let n =
                tokio::task::block_in_place(|| server.terminate_all_sessions()).expect("terminate");
            assert!(n >= 1, "sessions to terminate");
            Instant::now()
        }
    }
}

/// Why `e` is not an outage error as the suite wants it, if it is not.
fn untyped(e: &Call) -> Option<String> {
    let (text, pg) = match e {
        Call::Pool(p) => {
            let ok = matches!(
                p,
                CoreError::CircuitOpen { .. }
                    | CoreError::Connect { .. }
                    | CoreError::Unavailable { .. }
                    | CoreError::AcquireTimeout { .. }
            );
            if !ok {
                return Some(format!("pool error of another kind: {p}"));
            }
            (p.to_string(), p.backend())
        }
        Call::Query(q) => {
            if !connection_class(q) {
                return Some(format!("query error of another class: {q} ({q:?})"));
            }
            (q.to_string(), Some(q))
        }
    };
    let reason = pg.and_then(PgError::as_db_error).map(|db| db.message());
    match reason {
        Some(reason) if !text.contains(reason) => {
            Some(format!("{text:?} lacks the server's reason {reason:?}"))
        }
        _ => None,
    }
}

/// A connection was lost or refused: closed, an I/O error, SQLSTATE class
/// 08 (connection exception) or 57 (operator intervention), or a connect
/// error.
fn connection_class(e: &PgError) -> bool {
    let code = e.code().map(|c| c.code().to_owned()).unwrap_or_default();
    let io = {
        let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
        let mut found = false;
        while let Some(s) = src {
            found |= s.is::<std::io::Error>();
            src = s.source();
        }
        found
    };
    e.is_closed()
        || e.is_not_answering()
        || io
        || code.starts_with("08")
        || code.starts_with("57")
        || matches!(e, PgError::Connect { .. } | PgError::Startup { .. })
}

/// The outcomes: no caller past its deadline, typed errors; returns
/// (errors, deadline hits).
fn check_outcomes(fault: Fault, ops: &[Op]) -> (usize, usize) {
    let late: Vec<Duration> = ops
        .iter()
        .map(|op| op.took)
        .filter(|t| *t > DEADLINE + SLACK)
        .collect();
    assert!(
        late.is_empty(),
        "{fault:?}: callers past their deadline: {late:?}"
    );
    let hits = ops
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::DeadlineHit))
        .count();
    assert_eq!(hits, 0, "{fault:?}: calls that ran into their deadline");
    let mut wrong = Vec::new();
    let mut errors = 0;
    for op in ops {
        if let Outcome::Failed(e) = &op.outcome {
            errors += 1;
            wrong.extend(untyped(e));
        }
    }
    wrong.truncate(5);
    assert!(wrong.is_empty(), "{fault:?}: untyped errors: {wrong:#?}");
    if matches!(fault, Fault::Freeze(_)) {
        let typed = ops.iter().filter(|op| match &op.outcome {
            Outcome::Failed(Call::Query(q)) => q.is_not_answering(),
            Outcome::Failed(Call::Pool(p)) => p.backend().is_some_and(PgError::is_not_answering),
            _ => false,
        });
        assert!(typed.count() >= 1, "{fault:?}: no NotAnswering error");
    }
    (errors, hits)
}

/// No leak: the pool's counts add up and the server holds exactly its
/// connections.
async fn assert_no_leaks(server: &PgServer, pool: &PgPool) {
    let s = common::settled(pool, Duration::from_secs(10)).await;
    assert_eq!(s.in_use, 0, "{s:?}");
    assert_eq!(s.size, s.idle, "every connection back and idle: {s:?}");
    assert_eq!((s.waiters, s.connecting), (0, 0), "{s:?}");
    assert!(s.size <= MAX_SIZE, "{s:?}");
    common::no_leaked_sessions(server, pool, APP).await;
}

async fn run(fault: Fault) {
    let _serial = SERIAL.lock().await;
    let server = PgServer::start().expect("server");
    let db = server.create_database().expect("db");
    let url = server.url(&db);
    let pool = PgPool::builder(PgConfig::parse(&url).expect("url"))
        .max_size(MAX_SIZE)
        .application_name(APP)
        .build()
        .await
        .expect("pool");
    let load = Load::start(&pool);
    let warm = load.first_success_after(Instant::now()).await;
    assert!(warm.is_some(), "served before the fault");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let attempts = pool.pg_stats().connect_attempts();
    let began = Instant::now();
    let t0 = inject(&server, &pool, &url, fault).await;
    let attempts = pool.pg_stats().connect_attempts() - attempts;
    let first = load.first_success_after(t0).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ops = load.finish().await;
    let first = first.unwrap_or_else(|| panic!("{fault:?}: never served again"));
    let recovery = first.saturating_duration_since(t0);
    let during: Vec<Op> = ops.into_iter().filter(|op| op.end >= began).collect();
    let (errors, hits) = check_outcomes(fault, &during);
    println!(
        "{fault:?}: first success {:.1} ms after the server accepted again; \
         {errors} errors, {hits} deadline hits, {attempts} connect attempts \
         in {:.1} s of fault",
        recovery.as_secs_f64() * 1e3,
        (t0 - began).as_secs_f64()
    );
    assert!(
        recovery < RECOVERY_BOUND,
        "{fault:?}: first success {recovery:?} after the server accepted again"
    );
    assert_no_leaks(&server, &pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_restart() {
    run(Fault::FastRestart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_and_restart() {
    run(Fault::Crash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_for_two_seconds() {
    run(Fault::Outage(Duration::from_secs(2))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_for_two_seconds() {
    run(Fault::Freeze(Duration::from_secs(2))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_session_terminated() {
    run(Fault::TerminateAll).await;
}

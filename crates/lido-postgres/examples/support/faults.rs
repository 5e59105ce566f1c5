//! One round of a fault table: callers looping on a pool while the server
//! goes through a fault, and what the round measured.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lido_testkit::{PgServer, StopMode};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::pools::Target;
use super::within;

/// A fault; the server accepts (or serves) again at its end.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// `pg_ctl stop -m fast`, then start.
    FastRestart,
    /// `pg_ctl stop -m immediate`, then start (crash recovery).
    Crash,
    /// A fast stop, this long down, then start.
    Outage(Duration),
    /// `pg_terminate_backend` of every session.
    TerminateAll,
}

impl Fault {
    pub fn label(self) -> String {
        match self {
            Fault::FastRestart => "fast restart".to_owned(),
            Fault::Crash => "crash (stop -m immediate, start)".to_owned(),
            Fault::Outage(d) => format!("{} s outage (stopped, started)", d.as_secs()),
            Fault::TerminateAll => "pg_terminate_backend of every session".to_owned(),
        }
    }
}

/// What one round measured.
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    /// From the server accepting again to the first successful call.
    pub first_success: Duration,
    /// Failed calls (deadline hits included) from the fault's start to the
    /// first success.
    pub errors: usize,
    /// Calls that ran into their deadline in that span.
    pub deadline_hits: usize,
    /// Failed calls from the server accepting again to 300 ms after the
    /// first success (what callers see of the recovery itself).
    pub errors_after_accept: usize,
    /// Connect attempts from the fault's start to the first success.
    pub connects: u64,
}

/// The callers' settings.
#[derive(Clone, Copy)]
pub struct Callers {
    pub count: usize,
    pub deadline: Duration,
    /// A caller's pause after a failed call.
    pub pause: Duration,
}

struct Op {
    end: Instant,
    ok: bool,
    deadline_hit: bool,
}

struct Load {
    stop: Arc<AtomicBool>,
    ops: Arc<Mutex<Vec<Op>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(target: &Target, c: Callers) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..c.count)
            .map(|_| {
                let (target, stop, ops) = (target.clone(), Arc::clone(&stop), Arc::clone(&ops));
                tokio::spawn(async move {
                    let mut i = 0i64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let r = tokio::time::timeout(c.deadline, target.call(i)).await;
                        let op = Op {
                            end: Instant::now(),
                            ok: matches!(r, Ok(Ok(()))),
                            deadline_hit: r.is_err(),
                        };
                        let ok = op.ok;
                        ops.lock().push(op);
                        if !ok {
                            tokio::time::sleep(c.pause).await;
                        }
                    }
                })
            })
            .collect();
        Self { stop, ops, tasks }
    }

    /// The end of the first successful call ending at or after `t0`.
    async fn first_success_after(&self, t0: Instant) -> Instant {
        loop {
            let found = self
                .ops
                .lock()
                .iter()
                .filter(|op| op.ok && op.end >= t0)
                .map(|op| op.end)
                .min();
            if let Some(at) = found {
                return at;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    async fn finish(self) -> Vec<Op> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        std::mem::take(&mut *self.ops.lock())
    }
}

/// The first instant a plain tokio-postgres connect succeeds (every ms).
async fn first_accept(url: String) -> Instant {
    loop {
        let attempt = tokio::time::timeout(
            Duration::from_secs(1),
            tokio_postgres::connect(&url, tokio_postgres::NoTls),
        );
        if let Ok(Ok(_)) = attempt.await {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn stop_and_start(server: &PgServer, url: &str, mode: StopMode, down: Duration) -> Instant {
    tokio::task::block_in_place(|| server.stop_with(mode)).expect("stop");
    tokio::time::sleep(down).await;
    let probe = tokio::spawn(first_accept(url.to_owned()));
    tokio::task::block_in_place(|| server.start_again()).expect("start again");
    within("the server accepting connections", probe)
        .await
        .expect("probe task")
}

/// Runs `fault`; returns when the server accepts again.
async fn inject(server: &PgServer, url: &str, fault: Fault) -> Instant {
    match fault {
        Fault::FastRestart => stop_and_start(server, url, StopMode::Fast, Duration::ZERO).await,
        Fault::Crash => stop_and_start(server, url, StopMode::Immediate, Duration::ZERO).await,
        Fault::Outage(d) => stop_and_start(server, url, StopMode::Fast, d).await,
        Fault::TerminateAll => {
            tokio::task::block_in_place(|| server.terminate_all_sessions()).expect("terminate");
            Instant::now()
        }
    }
}

/// One round: a fresh `target` under `callers`, warmed up, then `fault`.
pub async fn round(
    server: &PgServer,
    url: &str,
    target: Target,
    callers: Callers,
    fault: Fault,
) -> Measured {
    let load = Load::start(&target, callers);
    within(
        "serving before the fault",
        load.first_success_after(Instant::now()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = target.connect_attempts();
    let began = Instant::now();
    let t0 = inject(server, url, fault).await;
    let first = within("serving after the fault", load.first_success_after(t0)).await;
    let connects = target.connect_attempts() - before;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ops = load.finish().await;
    target.close().await;
    // `finish` stops the callers; calls ending later than this are theirs
    // winding down, not part of the round.
    let ops: Vec<Op> = ops
        .into_iter()
        .filter(|op| op.end <= first + Duration::from_millis(300))
        .collect();
    let span: Vec<&Op> = ops
        .iter()
        .filter(|op| op.end >= began && op.end <= first)
        .collect();
    let after = ops.iter().filter(|op| !op.ok && op.end >= t0).count();
    Measured {
        errors_after_accept: after,
        first_success: first.saturating_duration_since(t0),
        errors: span.iter().filter(|op| !op.ok).count(),
        deadline_hits: span.iter().filter(|op| op.deadline_hit).count(),
        connects,
    }
}

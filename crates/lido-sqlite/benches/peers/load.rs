//! Running one cell: tasks looping over a pool, counted per round.

use std::time::{Duration, Instant};

use crate::pools::{Failure, Op, Peer};
use crate::ROWS;

#[derive(Default, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) ops: u64,
    pub(crate) busy: u64,
    pub(crate) errors: u64,
    pub(crate) secs: f64,
    /// Process CPU seconds (user + system) spent, when /proc tells.
    pub(crate) cpu: f64,
}

impl Sample {
    pub(crate) fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    /// CPU microseconds per operation: independent of how busy the machine is.
    pub(crate) fn cpu_us(&self) -> f64 {
        self.cpu * 1e6 / (self.ops.max(1) as f64)
    }

    pub(crate) fn add(&mut self, o: Sample) {
        self.ops += o.ops;
        self.busy += o.busy;
        self.errors += o.errors;
        self.secs += o.secs;
        self.cpu += o.cpu;
    }
}

/// This process's CPU time in seconds from /proc/self/stat (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of the file (utime, stime), in clock ticks of 1/100 s.
    (ticks(11) + ticks(12)) / 100.0
}

async fn task(peer: Peer, write_pct: u32, write: Op, until: Instant, seed: u64) -> Sample {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut s = Sample::default();
    while Instant::now() < until {
        let op = if rng.u32(0..100) < write_pct {
            write
        } else {
            Op::Read
        };
        match peer.op(op, rng.i64(1..=ROWS)).await {
            Ok(()) => s.ops += 1,
            Err(Failure::Busy) => s.busy += 1,
            Err(Failure::Other) => s.errors += 1,
        }
    }
    s
}

pub(crate) async fn measure(
    peer: &Peer,
    tasks: usize,
    write_pct: u32,
    write: Op,
    secs: f64,
) -> Sample {
    let cpu_start = cpu_seconds();
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..tasks)
        .map(|i| tokio::spawn(task(peer.clone(), write_pct, write, until, i as u64 + 1)))
        .collect();
    let mut total = Sample::default();
    for h in handles {
        if let Ok(s) = h.await {
            total.add(s);
        }
    }
    total.secs = started.elapsed().as_secs_f64();
    total.cpu = cpu_seconds() - cpu_start;
    total
}

//! The command line: pools, sizes, tasks, hold modes, fairness.

use std::fmt;

use clap::{Parser, ValueEnum};

/// How a task holds each guard before dropping it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Hold {
    /// get, drop (the public benchmark's loop).
    None,
    /// get, `yield_now().await`, drop.
    Yield,
    /// get, a round trip to another task (as a database client's call
    /// waits for its connection's task to answer), drop.
    Echo,
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hold::None => "none",
            Hold::Yield => "yield",
            Hold::Echo => "echo",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Lido,
    /// lido with `statistics(false)` (no wait/hold/connect histograms; the
    /// counters stay); not a peer, shown to price the statistics.
    LidoNostats,
    /// lido with statistics and leak detection off; not a peer, shown to
    /// price leak detection on top of the statistics.
    LidoBare,
    Deadpool,
    Bb8,
    Mobc,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Lido => "lido",
            Kind::LidoNostats => "lido-nostats",
            Kind::LidoBare => "lido-bare",
            Kind::Deadpool => "deadpool",
            Kind::Bb8 => "bb8",
            Kind::Mobc => "mobc",
        }
    }

    /// A pool lido is compared against (ratios, summary).
    pub fn is_peer(self) -> bool {
        !matches!(self, Kind::Lido | Kind::LidoNostats | Kind::LidoBare)
    }
}

/// Which pools the fairness check runs for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FairnessMode {
    Off,
    Lido,
    All,
}

/// lido-core vs deadpool 0.13 / bb8 0.9 / mobc 0.9 with do-nothing managers.
#[derive(Parser, Debug)]
#[command(name = "core_peers")]
pub struct Args {
    /// Pool sizes (comma separated).
    #[arg(long, env = "LIDO_BENCH_SIZES", value_delimiter = ',', default_values_t = [4usize, 8, 16, 32])]
    pub sizes: Vec<usize>,
    /// Concurrent task counts (comma separated).
    #[arg(long, env = "LIDO_BENCH_TASKS", value_delimiter = ',', default_values_t = [1usize, 4, 16, 64, 256, 1024])]
    pub tasks: Vec<usize>,
    /// Total gets per cell, split evenly across the tasks.
    #[arg(long, env = "LIDO_BENCH_GETS", default_value_t = 1 << 20)]
    pub gets: u64,
    /// Repetitions per cell (the median is reported).
    #[arg(long, env = "LIDO_BENCH_REPS", default_value_t = 5)]
    pub reps: usize,
    /// Hold modes to run (comma separated: none, yield, echo).
    #[arg(long, env = "LIDO_BENCH_HOLD", value_delimiter = ',', default_values = ["none", "yield"])]
    pub hold: Vec<Hold>,
    /// Pools to run (comma separated: lido, deadpool, bb8, mobc; also
    /// lido-nostats = lido with statistics off, lido-bare = statistics and
    /// leak detection off: shown with what each costs, not peers).
    #[arg(long, env = "LIDO_BENCH_POOLS", value_delimiter = ',', default_values = ["lido", "deadpool", "bb8", "mobc"])]
    pub pools: Vec<Kind>,
    /// FIFO fairness check after the table: off, lido, or all pools.
    #[arg(long, env = "LIDO_BENCH_FAIRNESS", default_value = "lido")]
    pub fairness: FairnessMode,
    /// Total gets per fairness cell (defaults to --gets / 4).
    #[arg(long, env = "LIDO_BENCH_FAIRNESS_GETS")]
    pub fairness_gets: Option<u64>,
    /// Keep one timer (a 1 s interval) in the runtime for the whole run, as
    /// an application with any timeout or periodic task has (`true`, the
    /// default). tokio's timer driver then reads the clock whenever a worker
    /// parks, for every pool alike; without it, only lido pays that (its
    /// maintenance keeps a timer), and a pool measured right after a lido
    /// pool used to inherit its timer for up to a second. `false`: a bare
    /// runtime.
    #[arg(long, env = "LIDO_BENCH_AMBIENT_TIMER", default_value_t = true, action = clap::ArgAction::Set)]
    pub ambient_timer: bool,
    /// Runtime worker threads (defaults to all cores).
    #[arg(long, env = "LIDO_BENCH_THREADS")]
    pub threads: Option<usize>,
    /// Quick smoke run: sizes 8,32, tasks 1,64,1024, 2^16 gets, 1 rep.
    #[arg(long)]
    pub quick: bool,
}

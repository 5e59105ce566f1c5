//! One server of a cluster: its pool, and what the monitor last found about
//! it. What routing reads on every call is in atomics (no lock); the rest,
//! for reports, behind a mutex only the monitor and reports take.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::cluster::lsn::Lsn;
use crate::cluster::rotation::Rotation;
use crate::pool::PgPool;

/// What a node is, as the monitor last found it (`pg_is_in_recovery()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Accepts writes (not in recovery), and is the cluster's write target.
    Primary,
    /// In recovery: a streaming replica (hot standby).
    Replica,
    /// Not known: not probed yet, or its last probe failed.
    Unknown,
}

impl Role {
    /// `primary`, `replica` or `unknown` (the metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::Unknown => "unknown",
        }
    }

    fn from_u8(v: u8) -> Role {
        match v {
            1 => Role::Primary,
            2 => Role::Replica,
            _ => Role::Unknown,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Role::Primary => 1,
            Role::Replica => 2,
            Role::Unknown => 0,
        }
    }
}

/// One node as a report shows it ([`PgCluster::nodes`](crate::cluster::PgCluster::nodes)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NodeReport {
    /// `host:port` (never the password).
    pub address: String,
    /// Its role as last probed.
    pub role: Role,
    /// Whether its last probe answered.
    pub up: bool,
    /// Whether it takes reads now (replicas; the primary takes writes).
    pub in_rotation: bool,
    /// Replicas: bytes of WAL the primary has that it has not replayed.
    pub lag_bytes: Option<u64>,
    /// Replicas: how long ago the primary first held WAL it has not
    /// replayed (zero when caught up), to within one monitor round.
    pub lag: Option<Duration>,
    /// Replicas: time since the last transaction it replayed committed on
    /// the primary (`pg_last_xact_replay_timestamp()`); large on an idle
    /// primary, so not used for routing.
    pub replay_age: Option<Duration>,
    /// Replicas: `pg_last_wal_replay_lsn()`; the primary: the replay
    /// position that covers its WAL insert position (see [`Lsn::replayed_mark`]).
    pub lsn: Option<Lsn>,
    /// Why it is out of rotation or down, when it is.
    pub reason: Option<String>,
    /// Leases of this node held now through the cluster.
    pub in_flight: usize,
    /// Round trip of its health probe (moving average).
    pub probe_rtt: Option<Duration>,
}

/// What the monitor keeps about a node besides the atomics.
#[derive(Debug, Default)]
pub(crate) struct Detail {
    pub(crate) up: bool,
    pub(crate) lag_bytes: Option<u64>,
    pub(crate) lag: Option<Duration>,
    pub(crate) replay_age: Option<Duration>,
    pub(crate) reason: Option<String>,
    pub(crate) rotation: Rotation,
    /// When it last turned from replica (or unknown) to primary.
    pub(crate) promoted_at: Option<Instant>,
    /// Whether it was ever seen a replica.
    pub(crate) was_replica: bool,
}

/// A server of the cluster.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) address: String,
    pub(crate) pool: PgPool,
    role: AtomicU8,
    /// Replicas: replay position; the primary: insert position.
    lsn: AtomicU64,
    in_rotation: AtomicBool,
    pub(crate) in_flight: AtomicUsize,
    /// Probe round trip, µs, moving average (0: none yet).
    rtt_us: AtomicU64,
    /// Replicas: lag in time as last measured, µs.
    lag_us: AtomicU64,
    pub(crate) detail: Mutex<Detail>,
}

impl Node {
    pub(crate) fn new(address: String, pool: PgPool) -> Node {
        Node {
            address,
            pool,
            role: AtomicU8::new(Role::Unknown.to_u8()),
            lsn: AtomicU64::new(0),
            in_rotation: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            rtt_us: AtomicU64::new(0),
            lag_us: AtomicU64::new(0),
            detail: Mutex::new(Detail::default()),
        }
    }

    pub(crate) fn role(&self) -> Role {
        Role::from_u8(self.role.load(Ordering::Acquire))
    }

    pub(crate) fn set_role(&self, role: Role) {
        self.role.store(role.to_u8(), Ordering::Release);
    }

    /// The position last probed (replay for a replica).
    pub(crate) fn lsn(&self) -> Lsn {
        Lsn(self.lsn.load(Ordering::Acquire))
    }

    /// Raises the known position (never lowers it: a probe result that
    /// arrives late must not undo a newer check).
    pub(crate) fn saw_lsn(&self, lsn: Lsn) {
        self.lsn.fetch_max(lsn.0, Ordering::AcqRel);
    }

    /// Sets the position outright (a node that changed role starts over).
    pub(crate) fn reset_lsn(&self, lsn: Lsn) {
        self.lsn.store(lsn.0, Ordering::Release);
    }

    pub(crate) fn in_rotation(&self) -> bool {
        self.in_rotation.load(Ordering::Acquire)
    }

    pub(crate) fn set_in_rotation(&self, yes: bool) {
        self.in_rotation.store(yes, Ordering::Release);
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn rtt(&self) -> Option<Duration> {
        match self.rtt_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Folds a probe's round trip into the moving average (weight 1/4).
    pub(crate) fn saw_rtt(&self, rtt: Duration) {
        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
        let old = self.rtt_us.load(Ordering::Relaxed);
        let new = if old == 0 { us } else { (old * 3 + us) / 4 };
        self.rtt_us.store(new.max(1), Ordering::Relaxed);
    }

    /// Replicas: lag in time as last measured.
    pub(crate) fn lag(&self) -> Duration {
        Duration::from_micros(self.lag_us.load(Ordering::Relaxed))
    }

    pub(crate) fn set_lag(&self, lag: Duration) {
        let us = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        self.lag_us.store(us, Ordering::Relaxed);
    }

    /// A load score for balancing: lower is better.
    pub(crate) fn load(&self) -> u64 {
        let rtt = self.rtt_us.load(Ordering::Relaxed).max(1);
        (self.in_flight() as u64 + 1).saturating_mul(rtt)
    }

    pub(crate) fn report(&self) -> NodeReport {
        let d = self.detail.lock();
        let role = self.role();
        NodeReport {
            address: self.address.clone(),
            role,
            up: d.up,
            in_rotation: self.in_rotation(),
            lag_bytes: d.lag_bytes,
            lag: d.lag,
            replay_age: d.replay_age,
            lsn: (d.up && role != Role::Unknown).then(|| self.lsn()),
            reason: d.reason.clone(),
            in_flight: self.in_flight(),
            probe_rtt: self.rtt(),
        }
    }
}

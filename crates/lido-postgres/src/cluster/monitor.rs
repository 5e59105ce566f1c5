//! The background monitor: every round (jittered) it probes every node at
//! once, then decides the write target and the read rotation from what it
//! found. It holds the cluster weakly: dropping the last handle stops it.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::cluster::node::{Node, Role};
use crate::cluster::probe::{self, Sample};
use crate::cluster::rotation::Verdict;
use crate::cluster::shared::Shared;
use crate::cluster::stats::Counter;
use crate::conn::pgconn::PgConn;

/// One probe's outcome per node, in node order.
pub(crate) type Round = Vec<Result<Sample, String>>;

/// Runs rounds until the cluster is dropped.
/// `first` hears when the first round is done.
pub(crate) async fn run(
    cluster: Weak<Shared>,
    wake: Arc<Notify>,
    first: tokio::sync::oneshot::Sender<()>,
) {
    let mut first = Some(first);
    let mut conns: Vec<Option<PgConn>> = Vec::new();
    loop {
        let wait = {
            let Some(shared) = cluster.upgrade() else {
                return;
            };
            conns.resize_with(shared.nodes.len(), || None);
            shared.round(&mut conns).await;
            if let Some(tell) = first.take() {
                let _ = tell.send(());
            }
            shared.settings.next_wait()
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => {}
        }
    }
}

impl Shared {
    /// Probes every node at once and applies what it found.
    pub(crate) async fn round(&self, conns: &mut [Option<PgConn>]) {
        let timeout = self.settings.probe_timeout;
        let probes = self
            .nodes
            .iter()
            .zip(conns.iter_mut())
            .map(|(node, conn)| probe::probe(node, conn, timeout));
        let round = futures::future::join_all(probes).await;
        self.apply(&round, Instant::now());
    }

    /// Decides roles, the write target, lags and the rotation from `round`.
    pub(crate) fn apply(&self, round: &Round, now: Instant) {
        let mut changed = false;
        for (node, result) in self.nodes.iter().zip(round) {
            note_role(node, result.as_ref().ok(), now);
        }
        let primary = self.choose_primary(round);
        if self.set_primary(primary) {
            changed = true;
            if primary.is_some_and(|i| self.note_target(i)) {
                self.stats.add(Counter::PrimaryChange);
            }
            match primary {
                Some(i) => {
                    tracing::warn!(primary = %self.nodes[i].address, "lido-postgres cluster: new write target")
                }
                None => tracing::warn!("lido-postgres cluster: no node accepts writes"),
            }
        }
        let primary_sample = primary.and_then(|i| round[i].as_ref().ok());
        {
            let mut history = self.history.lock();
            match primary_sample {
                Some(s) => {
                    history.push(s.taken_at, s.receive.unwrap_or(s.lsn));
                    *self.last_insert.lock() = Some((s.taken_at, s.lsn));
                }
                None if primary.is_none() => history.clear(),
                None => {}
            }
        }
        for (i, (node, result)) in self.nodes.iter().zip(round).enumerate() {
            let is_primary = Some(i) == primary;
            changed |= self.judge(node, result, primary_sample, is_primary, now);
        }
        if changed {
            self.bump();
        }
    }

    /// The write target: the one node not in recovery; of several (a
    /// replica promoted while the old primary still runs), the one promoted
    /// last. The current target stays while it merely fails to answer: a
    /// slow primary is still the primary, and calls to a dead one fail fast
    /// in its own pool. It is dropped once it answers as a replica.
    fn choose_primary(&self, round: &Round) -> Option<usize> {
        let writable: Vec<usize> = round
            .iter()
            .enumerate()
            .filter(|(_, r)| r.as_ref().is_ok_and(|s| !s.in_recovery))
            .map(|(i, _)| i)
            .collect();
        let current = self.primary_index();
        match writable.as_slice() {
            [] => current.filter(|&i| round[i].is_err()),
            [only] => Some(*only),
            several => {
                let latest = several
                    .iter()
                    .copied()
                    .max_by_key(|&i| (self.nodes[i].detail.lock().promoted_at, Some(i) == current));
                let names: Vec<&str> = several
                    .iter()
                    .map(|&i| self.nodes[i].address.as_str())
                    .collect();
                tracing::warn!(nodes = ?names, "lido-postgres cluster: several nodes accept writes; writing to the one promoted last");
                latest
            }
        }
    }

    /// Updates one node's lag and rotation; returns whether its rotation changed.
    fn judge(
        &self,
        node: &Node,
        result: &Result<Sample, String>,
        primary: Option<&Sample>,
        is_primary: bool,
        now: Instant,
    ) -> bool {
        let s = &self.settings;
        let mut d = node.detail.lock();
        let verdict = match result {
            Err(e) => {
                d.up = false;
                d.lag_bytes = None;
                d.lag = None;
                d.reason = Some(format!("probe failed: {e}"));
                Verdict::Unhealthy
            }
            Ok(sample) if !sample.in_recovery => {
                d.up = true;
                d.lag_bytes = None;
                d.lag = None;
                d.replay_age = None;
                d.reason = (!is_primary).then(|| {
                    "accepts writes but is not the write target (promoted earlier)".to_owned()
                });
                Verdict::Unhealthy
            }
            Ok(sample) => {
                d.up = true;
                d.replay_age = sample.replay_age;
                // From what the primary has flushed: WAL only inserted
                // cannot have reached any replica yet.
                let lag_bytes = primary.map(|p| p.receive.unwrap_or(p.lsn).bytes_after(sample.lsn));
                let lag = match primary {
                    Some(_) => self.history.lock().lag(sample.lsn, now),
                    // No primary to compare with: caught up when it has
                    // replayed all it received.
                    None if sample.receive.is_none_or(|r| sample.lsn >= r) => Duration::ZERO,
                    None => sample.replay_age.unwrap_or_default(),
                };
                d.lag_bytes = lag_bytes;
                d.lag = Some(lag);
                node.set_lag(lag);
                d.reason = lag_reason(lag_bytes, lag, s.max_lag_bytes, s.max_lag);
                if d.reason.is_some() {
                    Verdict::Unhealthy
                } else {
                    Verdict::Healthy
                }
            }
        };
        let moved = d.rotation.judge(verdict, now, s.hold_down);
        let inside = d.rotation.in_rotation();
        if !inside && d.reason.is_none() && verdict == Verdict::Healthy {
            d.reason = Some("healthy again; waiting out the hold-down".to_owned());
        }
        drop(d);
        node.set_in_rotation(inside);
        if moved {
            let (counter, what) = if inside {
                (Counter::ReplicaRestored, "back in the read rotation")
            } else {
                (Counter::ReplicaRemoved, "out of the read rotation")
            };
            self.stats.add(counter);
            tracing::info!(node = %node.address, "lido-postgres cluster: replica {what}");
        }
        moved
    }
}

/// Records a node's role (and when it became writable) from its sample.
fn note_role(node: &Node, sample: Option<&Sample>, now: Instant) {
    let role = match sample {
        None => Role::Unknown,
        Some(s) if s.in_recovery => Role::Replica,
        Some(_) => Role::Primary,
    };
    let old = node.role();
    {
        let mut d = node.detail.lock();
        if role == Role::Replica {
            d.was_replica = true;
        }
        if role == Role::Primary && old != Role::Primary && d.was_replica {
            d.promoted_at = Some(now);
        }
    }
    if let Some(s) = sample {
        node.saw_rtt(s.rtt);
        if old == role {
            node.saw_lsn(s.lsn);
        } else {
            node.reset_lsn(s.lsn);
        }
    }
    if old != role && role != Role::Unknown {
        tracing::info!(node = %node.address, role = role.as_str(), "lido-postgres cluster: node role");
    }
    node.set_role(role);
}

/// Why a replica lagging this far is out, or `None` when within limits.
fn lag_reason(
    bytes: Option<u64>,
    lag: Duration,
    max_bytes: u64,
    max_lag: Duration,
) -> Option<String> {
    if let Some(b) = bytes.filter(|&b| b > max_bytes) {
        return Some(format!(
            "lags {b} bytes of WAL behind the primary (max {max_bytes})"
        ));
    }
    (lag > max_lag).then(|| {
        format!(
            "lags {} ms behind the primary (max {} ms)",
            lag.as_millis(),
            max_lag.as_millis()
        )
    })
}

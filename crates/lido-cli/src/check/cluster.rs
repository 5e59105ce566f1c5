//! The cluster steps of `lido check` for a connection string with several
//! hosts: each node's role (primary, replica, or down), whether a replica
//! takes reads, and its lag, as lido-postgres's [`PgCluster`] monitor finds
//! them; then which node is the write target.
//!
//! Lag in bytes is exact as of the monitor's last round. Lag in time counts
//! from the monitor's own samples of the primary's WAL position, so the
//! check watches a few rounds first ([`WATCH`] at [`ROUND`] intervals) and a
//! lag that reaches back to the first sample is shown as `≥` (it is at
//! least that, and could be more).

use std::time::{Duration, Instant};

use lido_postgres::cluster::{NodeReport, PgCluster, Role};
use lido_postgres::PgConfig;
use serde_json::json;

use super::report::{ms, Failure, Reporter, Step};

/// The monitor's round while the check watches.
const ROUND: Duration = Duration::from_millis(50);

/// How long the check watches after the first round: several primary
/// samples, so that lag in time means something.
const WATCH: Duration = Duration::from_millis(300);

/// The most one probe (connect included) may take; `--timeout` when lower.
const PROBE_TIMEOUT_MAX: Duration = Duration::from_secs(2);

/// What the monitor found, read once after watching.
struct Seen {
    nodes: Vec<NodeReport>,
    primary: Option<String>,
    watched: Duration,
    probe_timeout: Duration,
}

/// Reports every node of `cfg` (which names several hosts) and fails when
/// no node accepts writes; replicas down or out of rotation are warnings.
pub async fn report(cfg: &PgConfig, timeout: Duration, rep: &mut Reporter) -> Result<(), Failure> {
    let seen = watch(cfg, timeout).await?;
    let pw = cfg.password.as_ref().map(|p| p.expose().to_owned());
    let scrub = |text: &str| match pw.as_deref() {
        Some(p) if p.len() >= 3 => text.replace(p, "***"),
        _ => text.to_owned(),
    };
    for node in &seen.nodes {
        let is_target = seen.primary.as_deref() == Some(node.address.as_str());
        report_node(node, is_target, &seen, &scrub, rep);
    }
    summary(&seen, &scrub, rep)
}

/// Builds the cluster (its first round probes every node), watches a few
/// more rounds and closes it.
async fn watch(cfg: &PgConfig, timeout: Duration) -> Result<Seen, Failure> {
    let probe_timeout = timeout.min(PROBE_TIMEOUT_MAX);
    let cluster = PgCluster::builder(cfg.clone())
        .monitor_interval(ROUND)
        .probe_timeout(probe_timeout)
        .build()
        .await
        .map_err(|e| Failure::new(Step::Cluster, format!("cannot watch the nodes: {e}")))?;
    let first = Instant::now();
    tokio::time::sleep(WATCH).await;
    let seen = Seen {
        nodes: cluster.nodes(),
        primary: cluster.primary_address().map(str::to_owned),
        watched: first.elapsed(),
        probe_timeout,
    };
    cluster.close(Duration::from_millis(200)).await;
    Ok(seen)
}

fn report_node(
    node: &NodeReport,
    is_target: bool,
    seen: &Seen,
    scrub: &dyn Fn(&str) -> String,
    rep: &mut Reporter,
) {
    let reason = node.reason.as_deref().map(scrub);
    let data = node_json(node, is_target, seen, reason.as_deref());
    let addr = &node.address;
    if !node.up {
        let why = reason.unwrap_or_else(|| "no answer".to_owned());
        let line = format!("{addr}  down: {why}");
        // The write target down is the cluster step's failure.
        let hint = (!is_target).then(|| "start the server, or drop it from the host list".into());
        return rep.warn(Step::Node, line, hint, data);
    }
    match node.role {
        Role::Primary if is_target => {
            let line = format!("{addr}  primary  takes writes");
            rep.ok(Step::Node, line, None, data);
        }
        Role::Primary => {
            let why = reason.unwrap_or_else(|| "not the write target".to_owned());
            let hint = Some("several nodes accept writes: fence or demote the old primary".into());
            rep.warn(Step::Node, format!("{addr}  primary  {why}"), hint, data);
        }
        Role::Replica => {
            let lag = lag_text(node, seen);
            let age = node
                .replay_age
                .map(|a| format!("  last replayed commit {} ago", duration_text(a)))
                .unwrap_or_default();
            if node.in_rotation {
                let line = format!("{addr}  replica  in rotation  {lag}{age}");
                rep.ok(Step::Node, line, None, data);
            } else {
                let why = reason.unwrap_or_else(|| "out of the read rotation".to_owned());
                let line = format!("{addr}  replica  out of rotation: {why}  {lag}{age}");
                let hint = Some("the replica is behind: check its replication (pg_stat_replication on the primary, its log)".into());
                rep.warn(Step::Node, line, hint, data);
            }
        }
        _ => {
            let why = reason.unwrap_or_else(|| "role not known".to_owned());
            rep.warn(Step::Node, format!("{addr}  unknown  {why}"), None, data);
        }
    }
}

/// `lag 1.2 KiB / 150 ms`, with `≥` where the time reaches back to the
/// first sample the check took.
fn lag_text(node: &NodeReport, seen: &Seen) -> String {
    let bytes = node
        .lag_bytes
        .map_or_else(|| "? B (no primary to compare)".to_owned(), bytes_text);
    let time = match node.lag {
        Some(t) if at_least(t, seen) => format!("≥ {}", duration_text(t)),
        Some(t) => duration_text(t),
        None => "? ms".to_owned(),
    };
    format!("lag {bytes} / {time}")
}

/// Whether a time lag reaches back to the start of the watch (so it is a
/// lower bound: the replica was behind before the check looked).
fn at_least(lag: Duration, seen: &Seen) -> bool {
    !lag.is_zero() && lag + ROUND * 2 >= seen.watched
}

fn node_json(
    node: &NodeReport,
    is_target: bool,
    seen: &Seen,
    reason: Option<&str>,
) -> serde_json::Value {
    json!({
        "address": node.address,
        "role": if node.up { node.role.as_str() } else { "down" },
        "up": node.up,
        "write_target": is_target,
        "in_rotation": node.in_rotation,
        "lag_bytes": node.lag_bytes,
        "lag_ms": node.lag.map(ms),
        "lag_at_least": node.lag.is_some_and(|t| at_least(t, seen)),
        "replay_age_ms": node.replay_age.map(ms),
        "lsn": node.lsn.map(|l| l.to_string()),
        "reason": reason,
        "probe_rtt_ms": node.probe_rtt.map(ms),
    })
}

/// The cluster line, or the failure when no node accepts writes.
fn summary(seen: &Seen, scrub: &dyn Fn(&str) -> String, rep: &mut Reporter) -> Result<(), Failure> {
    let target = seen
        .primary
        .as_deref()
        .and_then(|p| seen.nodes.iter().find(|n| n.address == p));
    let replicas: Vec<&NodeReport> = seen
        .nodes
        .iter()
        .filter(|n| n.up && n.role == Role::Replica)
        .collect();
    let serving = replicas.iter().filter(|n| n.in_rotation).count();
    let out = replicas.len() - serving;
    let down = seen.nodes.iter().filter(|n| !n.up).count();
    let watch = format!(
        "watched {} ms in {} ms monitor rounds; lag in time counts from the first round",
        seen.watched.as_millis(),
        ROUND.as_millis()
    );
    let Some(primary) = target.filter(|n| n.up) else {
        return Err(no_primary(seen, target, scrub));
    };
    let line = format!(
        "primary {}; replicas up: {serving} in rotation, {out} out; {down} of {} nodes down ({watch})",
        primary.address,
        seen.nodes.len()
    );
    let data = json!({
        "primary": primary.address,
        "nodes": seen.nodes.len(),
        "replicas": replicas.len(),
        "replicas_in_rotation": serving,
        "down": down,
        "watched_ms": ms(seen.watched),
        "monitor_interval_ms": ms(ROUND),
        "probe_timeout_ms": ms(seen.probe_timeout),
    });
    rep.ok(Step::Cluster, line, None, data);
    Ok(())
}

fn no_primary(seen: &Seen, target: Option<&NodeReport>, scrub: &dyn Fn(&str) -> String) -> Failure {
    if let Some(t) = target {
        let why = scrub(t.reason.as_deref().unwrap_or("no answer"));
        return Failure::new(
            Step::Cluster,
            format!("the primary {} does not answer: {why}", t.address),
        )
        .hint("start the primary, or promote a replica (SELECT pg_promote())");
    }
    let states: Vec<String> = seen
        .nodes
        .iter()
        .map(|n| match (n.up, n.role) {
            (false, _) => format!("{} down", n.address),
            (true, role) => format!("{} {}", n.address, role.as_str()),
        })
        .collect();
    Failure::new(
        Step::Cluster,
        format!("no node accepts writes ({})", states.join(", ")),
    )
    .hint("start the primary, or promote the most advanced replica (SELECT pg_promote())")
}

/// `512 B`, `1.5 KiB`, `3.2 MiB`, `1.1 GiB`.
fn bytes_text(b: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// `0 ms`, `250 ms`, `12.3 s`.
fn duration_text(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_read_as_people_write_them() {
        assert_eq!(bytes_text(0), "0 B");
        assert_eq!(bytes_text(1023), "1023 B");
        assert_eq!(bytes_text(1536), "1.5 KiB");
        assert_eq!(bytes_text(3 << 20), "3.0 MiB");
        assert_eq!(bytes_text(5 << 30), "5.0 GiB");
        assert_eq!(duration_text(Duration::ZERO), "0 ms");
        assert_eq!(duration_text(Duration::from_millis(250)), "250 ms");
        assert_eq!(duration_text(Duration::from_millis(12_340)), "12.3 s");
    }

    #[test]
    fn a_lag_as_old_as_the_watch_is_a_lower_bound() {
        let seen = Seen {
            nodes: Vec::new(),
            primary: None,
            watched: Duration::from_millis(300),
            probe_timeout: Duration::from_millis(500),
        };
        assert!(!at_least(Duration::ZERO, &seen));
        assert!(!at_least(Duration::from_millis(100), &seen));
        assert!(at_least(Duration::from_millis(320), &seen));
    }
}

//! The monitor's decisions and the balancer, on synthetic probe results
//! (no server: the node pools are lazy and never connect).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::lsn::Lsn;
use crate::cluster::monitor::Round;
use crate::cluster::node::Role;
use crate::cluster::probe::Sample;
use crate::cluster::route::pick;
use crate::cluster::settings::Settings;
use crate::cluster::shared::Shared;
use crate::config::pgconfig::PgConfig;
use crate::pool::PgPool;

fn shared(nodes: usize) -> Arc<Shared> {
    let pools = (0..nodes)
        .map(|i| {
            let cfg = PgConfig::parse(&format!("host=127.0.0.1 port={} user=u", 1 + i)).unwrap();
            (
                format!("127.0.0.1:{}", 1 + i),
                PgPool::builder(cfg).build_lazy().unwrap(),
            )
        })
        .collect();
    let settings = Settings {
        max_lag: Duration::from_millis(300),
        hold_down: Duration::from_millis(500),
        ..Settings::default()
    };
    Arc::new(Shared::new(pools, settings))
}

fn sample(in_recovery: bool, lsn: u64, at: Instant) -> Result<Sample, String> {
    Ok(Sample {
        in_recovery,
        lsn: Lsn(lsn),
        receive: in_recovery.then_some(Lsn(lsn)),
        replay_age: None,
        rtt: Duration::from_millis(1),
        taken_at: at,
    })
}

fn down() -> Result<Sample, String> {
    Err("connection refused".to_owned())
}

#[tokio::test]
async fn the_primary_is_found_and_kept_while_it_only_fails_to_answer() {
    let s = shared(2);
    let t0 = Instant::now();
    let round: Round = vec![sample(true, 100, t0), sample(false, 100, t0)];
    s.apply(&round, t0);
    assert_eq!(s.primary_index(), Some(1));
    assert_eq!(s.nodes[0].role(), Role::Replica);
    assert!(s.nodes[0].in_rotation());
    // The primary misses a probe: still the write target (its own pool fails fast if it is dead).
    s.apply(
        &vec![sample(true, 100, t0), down()],
        t0 + Duration::from_millis(150),
    );
    assert_eq!(s.primary_index(), Some(1));
    // It answers as a replica: never a write target again.
    let t1 = t0 + Duration::from_millis(300);
    s.apply(&vec![sample(true, 100, t1), sample(true, 100, t1)], t1);
    assert_eq!(s.primary_index(), None);
    assert_eq!(s.stats.primary_changes(), 0, "no other target was found");
}

#[tokio::test]
async fn of_two_writable_nodes_the_one_promoted_last_takes_the_writes() {
    let s = shared(2);
    let t0 = Instant::now();
    s.apply(&vec![sample(false, 100, t0), sample(true, 100, t0)], t0);
    assert_eq!(s.primary_index(), Some(0));
    let t1 = t0 + Duration::from_millis(150);
    s.apply(&vec![sample(false, 120, t1), sample(false, 100, t1)], t1);
    assert_eq!(
        s.primary_index(),
        Some(1),
        "node 1 was a replica and was promoted"
    );
    assert_eq!(s.stats.primary_changes(), 1);
    assert!(
        !s.nodes[0].in_rotation(),
        "a writable node is not a read replica"
    );
    let reason = s.nodes[0].report().reason.unwrap_or_default();
    assert!(reason.contains("not the write target"), "{reason}");
}

#[tokio::test]
async fn lag_in_time_and_bytes_takes_a_replica_out_until_the_hold_down_passes() {
    let s = shared(2);
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    s.apply(&vec![sample(false, 1000, t0), sample(true, 1000, t0)], t0);
    assert!(s.nodes[1].in_rotation());
    // The primary moves on; the replica stays at 1000: 400 ms after the
    // first sample it has not replayed (> 300 ms).
    for step in 1..=5u64 {
        let t = t0 + ms(100 * step);
        let mut replica = sample(true, 1000, t);
        if let Ok(r) = replica.as_mut() {
            r.receive = Some(Lsn(1000 + 500 * step));
        }
        s.apply(&vec![sample(false, 1000 + 500 * step, t), replica], t);
    }
    let report = s.nodes[1].report();
    assert!(!report.in_rotation, "{report:?}");
    assert_eq!(report.lag_bytes, Some(2500));
    assert!(
        report.reason.unwrap_or_default().contains("lags 400 ms"),
        "lag from the first unreplayed sample"
    );
    // Caught up: back only after 500 ms of health.
    let t = t0 + ms(600);
    s.apply(&vec![sample(false, 3000, t), sample(true, 3000, t)], t);
    assert!(!s.nodes[1].in_rotation());
    let t = t0 + ms(1100);
    s.apply(&vec![sample(false, 3000, t), sample(true, 3000, t)], t);
    assert!(s.nodes[1].in_rotation());
    assert_eq!(
        (s.stats.replicas_removed(), s.stats.replicas_restored()),
        (1, 1)
    );
}

#[tokio::test]
async fn an_idle_primary_is_not_lag() {
    let s = shared(2);
    let t0 = Instant::now();
    for step in 0..40u64 {
        let t = t0 + Duration::from_millis(150 * step);
        s.apply(&vec![sample(false, 5000, t), sample(true, 5000, t)], t);
    }
    let report = s.nodes[1].report();
    assert!(report.in_rotation, "{report:?}");
    assert_eq!(report.lag, Some(Duration::ZERO));
}

#[tokio::test]
async fn two_choices_prefer_the_less_loaded_node() {
    let s = shared(3);
    s.nodes[0]
        .in_flight
        .store(50, std::sync::atomic::Ordering::Relaxed);
    let mut zero = 0;
    for _ in 0..300 {
        if pick(&s, &[0, 1, 2]) == Some(0) {
            zero += 1;
        }
    }
    assert_eq!(zero, 0, "the loaded node loses every pair it is in");
    assert_eq!(pick(&s, &[2]), Some(2));
    assert_eq!(pick(&s, &[]), None);
}

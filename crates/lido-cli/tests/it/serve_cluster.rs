//! `lido serve` with several hosts: the cluster registered under the pool
//! name, each node's pool on `/metrics`, and the `/cluster` JSON the
//! dashboard's Cluster panel reads, against a real primary and streaming
//! replica (lido-testkit's `PgReplicaSet`), through the real binary.

use lido_testkit::PgReplicaSet;
use serde_json::Value;

use crate::common::{get, get_until, serve, Response};

/// `node` of the `/cluster` document whose address is `127.0.0.1:port`.
fn node(doc: &Value, port: u16) -> Value {
    let addr = format!("127.0.0.1:{port}");
    doc["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["address"] == addr.as_str())
        .unwrap_or_else(|| panic!("no node {addr}: {doc}"))
        .clone()
}

fn json(r: &Response) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
}

#[test]
fn serve_shows_a_cluster_and_a_replica_down_as_a_warning() {
    let set = PgReplicaSet::start(1).expect("primary and replica");
    let db = set.create_database().expect("database");
    let (p, r) = (set.primary().port(), set.replica(0).port());
    let s = serve(&[&set.multi_host_url(&db)]);
    let mut seen: Vec<Response> = Vec::new();

    let ready = get_until(s.addr, "/health/ready", |r| r.status == 200);
    assert_eq!(ready.status, 200, "{}", ready.body);
    seen.push(ready);

    let families = |m: &Response| {
        m.body.contains("lido_cluster_replica_lag_bytes{")
            && m.body.contains("lido_cluster_node_up{")
            && m.body.contains(&format!("pool=\"primary@127.0.0.1:{p}\""))
            && m.body.contains(&format!("pool=\"primary@127.0.0.1:{r}\""))
    };
    let m = get_until(s.addr, "/metrics", families);
    assert!(families(&m), "{}", m.body);
    assert!(m
        .body
        .contains("lido_pool_connections_max{pool=\"primary\"}"));
    seen.push(m);

    let both = |c: &Response| {
        let doc = json(c);
        node(&doc, p)["role"] == "primary" && node(&doc, r)["role"] == "replica"
    };
    let c = get_until(s.addr, "/cluster", both);
    assert_eq!(c.status, 200, "{}", c.body);
    assert!(c.header("content-type").starts_with("application/json"));
    let doc = json(&c);
    println!("/cluster, both up: {doc}"); // shown with --nocapture
    assert!(both(&c), "{doc}");
    assert_eq!(doc["pool"], "primary");
    assert_eq!(doc["primary"], format!("127.0.0.1:{p}").as_str());
    assert_eq!(doc["nodes"].as_array().map(Vec::len), Some(2), "{doc}");
    let (pj, rj) = (node(&doc, p), node(&doc, r));
    assert_eq!(pj["write_target"], true, "{pj}");
    assert_eq!(
        (&rj["up"], &rj["write_target"]),
        (&Value::Bool(true), &Value::Bool(false))
    );
    assert!(rj["lag_bytes"].is_u64(), "{rj}");
    seen.push(c);

    set.replica(0).stop().expect("stop the replica");
    let down = |c: &Response| node(&json(c), r)["up"] == false;
    let c = get_until(s.addr, "/cluster", down);
    let doc = json(&c);
    println!("/cluster, replica down: {doc}");
    assert!(down(&c), "{doc}");
    assert_eq!(node(&doc, r)["in_rotation"], false, "{doc}");
    assert!(node(&doc, r)["reason"].is_string(), "{doc}");
    assert_eq!(node(&doc, p)["up"], true, "{doc}");
    seen.push(c);

    let warned = |h: &Response| json(h)["status"] == "warn";
    let h = get_until(s.addr, "/health", warned);
    let hdoc = json(&h);
    assert_eq!(hdoc["status"], "warn", "{hdoc}");
    assert_eq!(h.status, 200, "a warning still serves: {hdoc}");
    let replicas = &hdoc["checks"]["cluster:replicas"][0];
    assert_eq!(replicas["status"], "warn", "{hdoc}");
    assert_eq!(replicas["componentId"], "primary", "{hdoc}");
    let output = replicas["output"].as_str().unwrap_or_default();
    assert!(output.contains(&format!("127.0.0.1:{r}")), "{hdoc}");
    seen.push(h);
    let ready = get(s.addr, "/health/ready");
    assert_eq!(
        ready.status, 200,
        "readiness follows the primary: {}",
        ready.body
    );
    seen.push(ready);
    seen.push(get(s.addr, "/metrics"));
    seen.push(get(s.addr, "/"));

    for resp in &seen {
        assert!(
            !resp.body.contains(set.primary().password()),
            "password leaked: {}",
            resp.body
        );
    }
}

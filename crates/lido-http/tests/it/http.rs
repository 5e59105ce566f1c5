//! Every endpoint through a real TCP listener: status codes, content types,
//! bodies, and a probe storm that adds no database load.

use crate::common;
use lido_testkit::fake::{Fake, Script};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use lido_core::Pool;
use lido_http::{HealthMonitor, Status, HEALTH_JSON, OPENMETRICS_CONTENT_TYPE};
use prometheus_parse::{Scrape, Value};

type Http = Client<HttpConnector, Empty<Bytes>>;

struct Reply {
    code: u16,
    content_type: String,
    body: String,
}

async fn fetch(client: &Http, addr: SocketAddr, path: &str) -> Reply {
    let uri = format!("http://{addr}{path}").parse().expect("uri");
    let res = client.get(uri).await.expect("request");
    let code = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    Reply {
        code,
        content_type,
        body: String::from_utf8(body.to_vec()).expect("utf-8"),
    }
}

async fn serve(monitor: &HealthMonitor) -> SocketAddr {
    let app: axum::Router = axum::Router::new().merge(lido_http::router(monitor));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn json(r: &Reply) -> serde_json::Value {
    assert_eq!(r.content_type, HEALTH_JSON);
    serde_json::from_str(&r.body).expect("json body")
}

/// Leases and connects so far: what a probe must not add to.
fn load(pool: &Pool<Fake>, knobs: &Script) -> (u64, u64, u64) {
    let s = pool.stats();
    let gets = s.gets_direct() + s.gets_waited() + s.get_errors() + s.acquire_timeouts();
    (gets, s.created(), knobs.checks())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_answer_from_memory_over_tcp() {
    let (primary, pk) = common::pool(4).await;
    let (replica, rk) = common::pool(2).await;
    let monitor = HealthMonitor::builder()
        .pool("primary", primary.clone())
        .pool("replica", replica.clone())
        .interval(Duration::from_secs(3600))
        .spawn()
        .expect("monitor");
    // The loop's first round runs at once; the next one is an hour away.
    let mut reports = monitor.subscribe();
    reports
        .wait_for(Option::is_some)
        .await
        .expect("first report");
    let addr = serve(&monitor).await;
    let client: Http = Client::builder(TokioExecutor::new()).build_http();

    let r = fetch(&client, addr, "/health").await;
    assert_eq!(r.code, 200, "{}", r.body);
    let body = json(&r);
    assert_eq!(body["status"], "pass");
    assert_eq!(
        body["checks"]["database:responseTime"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    for path in ["/health/live", "/health/ready"] {
        let r = fetch(&client, addr, path).await;
        assert_eq!(r.code, 200, "{path}: {}", r.body);
        assert_eq!(json(&r)["status"], "pass", "{path}");
    }
    assert_eq!(fetch(&client, addr, "/nope").await.code, 404);

    let r = fetch(&client, addr, "/metrics").await;
    assert_eq!(r.code, 200);
    assert_eq!(r.content_type, OPENMETRICS_CONTENT_TYPE);
    check_metrics(&r.body, &primary, &replica);

    let before = (load(&primary, &pk), load(&replica, &rk));
    let mut storm = Vec::new();
    for t in 0..10 {
        let (client, path) = (
            client.clone(),
            ["/health", "/health/live", "/health/ready", "/metrics"][t % 4],
        );
        storm.push(tokio::spawn(async move {
            for _ in 0..100 {
                assert!(fetch(&client, addr, path).await.code < 500, "{path}");
            }
        }));
    }
    for t in storm {
        t.await.expect("probe task");
    }
    let after = (load(&primary, &pk), load(&replica, &rk));
    assert_eq!(before, after, "1000 probes leased or connected nothing");

    rk.set_down(true);
    rk.check_fails.store(true, Ordering::SeqCst);
    let report = monitor.refresh().await;
    assert_eq!(report.status, Status::Fail);
    let r = fetch(&client, addr, "/health").await;
    assert_eq!(r.code, 503);
    let body = json(&r);
    assert_eq!(body["status"], "fail");
    assert!(body["output"].as_str().expect("output").contains("replica"));
    let r = fetch(&client, addr, "/health/ready").await;
    assert_eq!(r.code, 503);
    assert_eq!(json(&r)["status"], "fail");
    let r = fetch(&client, addr, "/health/live").await;
    assert_eq!(r.code, 200, "liveness ignores the database: {}", r.body);

    let r = fetch(&client, addr, "/metrics").await;
    let s = parse(&r.body);
    assert_eq!(gauge(&s, "lido_health_ready", &[]), 0.0);
    assert_eq!(gauge(&s, "lido_health_live", &[]), 1.0);
    assert_eq!(gauge(&s, "lido_health_status", &[]), 2.0);
    let rt = [("pool", "replica"), ("check", "database:responseTime")];
    assert_eq!(gauge(&s, "lido_health_check_status", &rt), 2.0);
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses")
}

fn gauge(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let hit = s
        .samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)));
    match hit.map(|x| &x.value) {
        Some(Value::Gauge(v) | Value::Counter(v) | Value::Untyped(v)) => *v,
        other => panic!("{name}{labels:?}: {other:?}"),
    }
}

fn check_metrics(text: &str, primary: &Pool<Fake>, replica: &Pool<Fake>) {
    let s = parse(text);
    for (name, pool) in [("primary", primary), ("replica", replica)] {
        let st = pool.status();
        let p = ("pool", name);
        assert_eq!(
            gauge(&s, "lido_pool_connections", &[p, ("state", "idle")]),
            st.idle as f64
        );
        assert_eq!(
            gauge(&s, "lido_pool_connections", &[p, ("state", "in_use")]),
            st.in_use as f64
        );
        assert_eq!(
            gauge(&s, "lido_pool_connections_max", &[p]),
            st.max_size as f64
        );
        assert_eq!(gauge(&s, "lido_pool_waiters", &[p]), 0.0);
        let closed = [p, ("state", "closed")];
        assert_eq!(gauge(&s, "lido_pool_breaker_state", &closed), 1.0);
    }
    assert_eq!(gauge(&s, "lido_health_ready", &[]), 1.0);
    assert_eq!(gauge(&s, "lido_health_status", &[]), 0.0);
}

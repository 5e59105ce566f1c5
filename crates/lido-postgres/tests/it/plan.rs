//! The pool and `lido check` (through `connect_traced`) try the same
//! servers, in the same order, with the same rules: one [`ConnectPlan`]
//! and one dialer serve both.

use std::time::Duration;

use lido_core::Manager;
use lido_postgres::{
    connect_traced, default_host, DialEvent, DialObserver, Next, PgConfig, PgPool,
};
use lido_testkit::urls::{closed_port, host_rule_table};
use lido_testkit::PgServer;

use crate::common::capture::Capture;

/// The server of each failed attempt after which the dialer moved on to
/// another server (or gave up): the order servers were tried in.
#[derive(Default)]
struct Tried(Vec<String>);

impl DialObserver for Tried {
    fn event(&mut self, e: &DialEvent<'_>) {
        if let DialEvent::Failed { target, next, .. } = e {
            if matches!(next, Next::Target | Next::AnyServer | Next::GiveUp) {
                self.0.push(target.to_string());
            }
        }
    }
}

fn pool_tries(cfg: &PgConfig, rt: &tokio::runtime::Runtime) -> (Vec<String>, Vec<String>) {
    let manager = PgPool::builder(cfg.clone()).manager().expect("manager");
    let planned = manager
        .plan()
        .targets()
        .iter()
        .map(ToString::to_string)
        .collect();
    let cap = Capture::default();
    let _guard = cap.install();
    rt.block_on(async {
        let e = manager.connect().await.expect_err("nothing listens");
        assert!(!e.to_string().is_empty());
    });
    let tried = cap
        .events_for("lido_postgres::net::plan")
        .iter()
        .filter(|e| {
            e.fields
                .get("message")
                .is_some_and(|m| m.contains("host failed"))
        })
        .map(|e| e.fields["server"].clone())
        .collect();
    (planned, tried)
}

#[test]
fn pool_and_check_try_the_same_servers_in_the_same_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nosock = dir.path().join("nosock").display().to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for url in host_rule_table(&nosock) {
        let cfg = PgConfig::parse(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
        let plan: Vec<String> = cfg
            .plan()
            .targets()
            .iter()
            .map(ToString::to_string)
            .collect();
        let (pool_plan, pool_tried) = pool_tries(&cfg, &rt);
        let mut check = Tried::default();
        let err = rt
            .block_on(connect_traced(&cfg, &mut check))
            .err()
            .unwrap_or_else(|| panic!("{url}: nothing listens"));
        assert_eq!(
            pool_plan, plan,
            "{url}: the pool's plan is the configuration's"
        );
        assert_eq!(
            pool_tried, check.0,
            "{url}: pool and check try the same servers"
        );
        let passes = if url.contains("prefer-standby") { 2 } else { 1 };
        let expected: Vec<String> = (0..passes).flat_map(|_| plan.clone()).collect();
        assert_eq!(check.0, expected, "{url}: every server, in order ({err})");
    }
}

#[test]
fn no_host_means_the_default_socket_directory_for_both() {
    let port = closed_port();
    let cfg = PgConfig::parse(&format!("postgresql:///app?user=app&port={port}")).expect("valid");
    let plan = cfg.plan();
    let only = &plan.targets()[0];
    assert!(only.is_unix(), "{only}");
    assert_eq!(only.host(), default_host());
    assert_eq!(
        only.to_string(),
        format!("{}/.s.PGSQL.{port}", default_host().trim_end_matches('/'))
    );
}

/// A server that also listens in the default socket directory: the pool and
/// `connect_traced` both reach it with no host given at all.
#[tokio::test]
async fn no_host_reaches_a_server_in_the_default_socket_directory() {
    let server = socket_server();
    let db = server.create_database().expect("database");
    let url = format!(
        "postgresql:///{db}?user={}&port={}",
        server.user(),
        server.port()
    );
    let cfg = PgConfig::parse(&url).expect("valid");
    let mut events = Vec::<String>::new();
    let dialed = connect_traced(&cfg, &mut events)
        .await
        .expect("connects over the socket");
    let want = format!(
        "{}/.s.PGSQL.{}",
        default_host().trim_end_matches('/'),
        server.port()
    );
    assert_eq!(dialed.address, want, "{events:#?}");
    assert!(dialed.tls.is_none());
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("tls") && e.contains("UnixSocket")),
        "{events:#?}"
    );
    let pool = PgPool::builder(cfg)
        .max_size(1)
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .await
        .expect("pool");
    let conn = pool
        .get()
        .await
        .expect("the pool connects over the same socket");
    let row = conn
        .query_one("SELECT current_setting('port')", &[])
        .await
        .expect("query");
    assert_eq!(row.get::<_, String>(0), server.port().to_string());
}

fn socket_server() -> PgServer {
    let dir = default_host();
    PgServer::builder()
        .socket_dir(dir)
        .start()
        .expect("a server listening in the default socket directory")
}

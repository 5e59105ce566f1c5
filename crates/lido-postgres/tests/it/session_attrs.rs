//! `target_session_attrs` over two real servers: a read-write one and one
//! whose sessions are read-only (`default_transaction_read_only = on`).

use crate::common;

use lido_core::ErrorClass;
use lido_postgres::{PgConfig, PgError, TargetSessionAttrs};
use lido_testkit::PgServer;

/// Connects through `hosts` (in that order) with `attrs`; returns the port
/// of the server the pool's connection went to.
async fn port_chosen(
    hosts: [&PgServer; 2],
    password: &str,
    attrs: TargetSessionAttrs,
) -> Result<u16, PgError> {
    let url = format!(
        "postgres://lido@127.0.0.1:{},127.0.0.1:{}/postgres?sslmode=disable",
        hosts[0].port(),
        hosts[1].port()
    );
    let mut cfg = PgConfig::parse(&url).expect("url").password(password);
    cfg.target_session_attrs = attrs;
    let pool = common::builder(cfg, 1).build_lazy().expect("pool");
    let conn = pool.get().await?;
    let row = conn
        .query_one("SELECT inet_server_port()", &[])
        .await
        .expect("port");
    Ok(u16::try_from(row.get::<_, i32>(0)).expect("a port"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_target_session_attrs_value_picks_its_server() {
    let rw = PgServer::shared();
    let ro = PgServer::builder()
        .setting("default_transaction_read_only", "on")
        .start()
        .expect("read-only server");
    // One password for both, so one URL reaches either.
    ro.psql(
        "postgres",
        &format!("ALTER ROLE lido PASSWORD '{}';", rw.password()),
    )
    .expect("password");
    let pw = rw.password();
    use TargetSessionAttrs as T;
    for (attrs, hosts, want) in [
        (T::ReadWrite, [&ro, rw], rw.port()),
        (T::ReadWrite, [rw, &ro], rw.port()),
        (T::ReadOnly, [rw, &ro], ro.port()),
        (T::ReadOnly, [&ro, rw], ro.port()),
        (T::Any, [&ro, rw], ro.port()),
        (T::Any, [rw, &ro], rw.port()),
        // Neither server is in recovery: both are primaries.
        (T::Primary, [&ro, rw], ro.port()),
        (T::PreferStandby, [rw, &ro], rw.port()),
    ] {
        let got = port_chosen(hosts, pw, attrs).await;
        assert_eq!(got.expect("connects"), want, "{attrs:?}");
    }
    let e = port_chosen([rw, &ro], pw, T::Standby)
        .await
        .expect_err("no standby");
    let backend = match &e {
        PgError::Pool(p) => p.backend().expect("backend error"),
        other => other,
    };
    assert!(
        matches!(
            backend,
            PgError::WrongSession {
                wanted: "standby",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("not in hot standby mode"), "{e}");
    assert_eq!(
        backend.class(),
        ErrorClass::Transient,
        "a failover may fix it"
    );
    let e = port_chosen([&ro, &ro], pw, T::ReadWrite)
        .await
        .expect_err("no read-write server");
    assert!(e.to_string().contains("the session is read-only"), "{e}");
}

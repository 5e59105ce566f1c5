//! Errors that say what the server said: a server error displays its
//! severity, SQLSTATE, message, DETAIL and HINT (as libpq shows them); a
//! connect error names the target tried and the server's reason; the
//! breaker's "circuit open" error carries that reason. None of them shows
//! the password or a parameter value.

use crate::common;

use std::time::Duration;

use lido_core::{BreakerConfig, Error as CoreError, Manager};
use lido_postgres::{PgConfig, PgError, PgPool};
use lido_testkit::PgServer;

/// A password no server message, setting or error text contains by chance.
const WRONG_PASSWORD: &str = "Zq7-not-the-password-4f1c";

/// Neither the Display nor the Debug form of `e` shows `secret`.
fn hides(e: &dyn std::fmt::Debug, shown: &str, secret: &str) {
    assert!(!shown.contains(secret), "{secret} in Display: {shown}");
    let debug = format!("{e:?}");
    assert!(!debug.contains(secret), "{secret} in Debug: {debug}");
}

fn wrong_password(server: &PgServer) -> PgConfig {
    common::config(server, "postgres").password(WRONG_PASSWORD)
}

/// `127.0.0.1:5432: FATAL 28P01: password authentication failed for user "u"`.
fn auth_failure(server: &PgServer) -> String {
    format!(
        "127.0.0.1:{}: FATAL 28P01: password authentication failed for user \"{}\"",
        server.port(),
        server.user()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_shows_severity_sqlstate_message_detail_and_hint() {
    let (_db, pool) = common::shared_pool(1).await;
    let conn = pool.get().await.expect("get");
    let param = "p4ram-v4lue-91b";

    let e = conn
        .query("SELECT length($1::text) FROM nope", &[&param])
        .await
        .expect_err("no such table");
    let shown = e.to_string();
    assert_eq!(shown, r#"ERROR 42P01: relation "nope" does not exist"#);
    hides(&e, &shown, param);

    conn.batch_execute("CREATE TABLE t (id int PRIMARY KEY)")
        .await
        .expect("ddl");
    conn.execute("INSERT INTO t VALUES (1)", &[])
        .await
        .expect("insert");
    let e = conn
        .execute("INSERT INTO t VALUES (1)", &[])
        .await
        .expect_err("duplicate key");
    assert_eq!(
        e.to_string(),
        "ERROR 23505: duplicate key value violates unique constraint \"t_pkey\"; \
         DETAIL: Key (id)=(1) already exists."
    );

    let e = conn
        .query("SELECT no_such_function(1)", &[])
        .await
        .expect_err("no such function");
    let shown = e.to_string();
    assert!(
        shown.starts_with("ERROR 42883: function no_such_function(integer) does not exist; HINT: "),
        "{shown}"
    );
    assert_eq!(e.code().map(|c| c.code()), Some("42883"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_error_names_the_target_and_the_servers_reason() {
    let server = PgServer::shared();
    let m = common::builder(wrong_password(server), 1)
        .manager()
        .expect("manager");
    let e = m.connect().await.expect_err("wrong password");
    assert!(matches!(e, PgError::Rejected { .. }), "{e:?}");
    assert_eq!(e.code().map(|c| c.code()), Some("28P01"));
    let shown = e.to_string();
    assert!(shown.starts_with(&auth_failure(server)), "{shown}");
    assert!(
        shown.contains("; to fix: check the user name and password"),
        "{shown}"
    );
    hides(&e, &shown, WRONG_PASSWORD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_breaker_error_carries_the_last_connect_reason() {
    let server = PgServer::shared();
    let pool = PgPool::builder(wrong_password(server))
        .pool_config(lido_core::Config {
            max_size: 1,
            acquire_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            leak_threshold: None,
            breaker: BreakerConfig {
                consecutive_failures: 2,
                open_for: Duration::from_secs(60),
                ..BreakerConfig::default()
            },
            ..Default::default()
        })
        .build_lazy()
        .expect("pool");
    let mut open = None;
    for _ in 0..10 {
        match pool.get().await {
            Err(e @ CoreError::CircuitOpen { .. }) => {
                open = Some(e);
                break;
            }
            Err(e) => hides(&e, &e.to_string(), WRONG_PASSWORD),
            Ok(_) => panic!("the password is wrong"),
        }
    }
    let e = open.expect("the breaker opens after repeated failed connects");
    let shown = e.to_string();
    let reason = format!("; last connect error: {}", auth_failure(server));
    assert!(shown.contains(&reason), "{shown}");
    hides(&e, &shown, WRONG_PASSWORD);
    // The same through PgError (what PgPool's own methods return).
    let e = PgError::from(e);
    let shown = e.to_string();
    assert!(shown.contains(&reason), "{shown}");
    hides(&e, &shown, WRONG_PASSWORD);
}

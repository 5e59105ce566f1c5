//! Connection strings that exercise libpq's host rules, for tests that
//! compare what two parts of lido make of them.

use std::net::TcpListener;

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
///
/// # Panics
///
/// When no port on 127.0.0.1 can be bound (a test could not run anyway).
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a port on 127.0.0.1")
}

/// Connection strings whose servers all refuse at once: no host at all
/// (libpq's default socket directory), host lists mixing TCP and Unix
/// sockets (`nosock` is a directory with no socket in it), `hostaddr`, a
/// socket path in a URL, every `sslmode`, `target_session_attrs`
/// (`prefer-standby` makes two passes) and `connect_timeout`.
pub fn host_rule_table(nosock: &str) -> Vec<String> {
    let (a, b) = (closed_port(), closed_port());
    let url_sock = nosock.replace('/', "%2F");
    vec![
        format!("postgresql:///app?user=app&port={a}"),
        format!("host=127.0.0.1,{nosock} port={a},{b} user=app sslmode=require"),
        format!("host=db.invalid hostaddr=127.0.0.1 port={a} user=app sslmode=verify-full"),
        format!("postgres://app@localhost:{a},127.0.0.1:{b}/db?sslmode=prefer&target_session_attrs=read-write"),
        format!("postgres://app@{url_sock}:{a}/db?sslmode=allow"),
        format!("host={nosock},{nosock}2 port={a} user=u sslmode=disable"),
        format!("host=127.0.0.1,{nosock} port={a} user=u target_session_attrs=prefer-standby"),
        format!("hostaddr=127.0.0.1,127.0.0.1 port={a},{b} user=u sslmode=verify-ca connect_timeout=2"),
    ]
}

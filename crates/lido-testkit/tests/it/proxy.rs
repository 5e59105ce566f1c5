//! FaultProxy modes, against a plain echo server and a real PostgreSQL.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use lido_testkit::{Fault, FaultProxy, PgServer};

/// A TCP echo server on 127.0.0.1 for the life of the test process.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo");
    let addr = listener.local_addr().expect("addr");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn connect(proxy: &FaultProxy) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", proxy.port())).expect("connect to proxy");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s
}

fn echo(stream: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(msg)?;
    let mut buf = vec![0u8; msg.len()];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

#[test]
fn pass_forwards_both_ways() {
    let proxy = FaultProxy::start(echo_server()).expect("proxy");
    assert_eq!(proxy.mode(), Fault::Pass);
    let mut s = connect(&proxy);
    assert_eq!(echo(&mut s, b"hello").expect("echo"), b"hello");
    let big = vec![7u8; 200_000];
    let mut writer = s.try_clone().expect("clone");
    let sent = big.clone();
    let t = thread::spawn(move || writer.write_all(&sent));
    let mut back = vec![0u8; big.len()];
    s.read_exact(&mut back).expect("read back");
    t.join().expect("join").expect("write");
    assert_eq!(back, big);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_carries_the_postgres_protocol() {
    let server = PgServer::shared();
    let proxy = FaultProxy::start(server.addr()).expect("proxy");
    let url = server.url_with_port("postgres", proxy.port());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect through the proxy");
    tokio::spawn(connection);
    let row = client.query_one("SELECT 6 * 7", &[]).await.expect("query");
    assert_eq!(row.get::<_, i32>(0), 42);
}

#[test]
fn latency_delays_every_round_trip() {
    let proxy = FaultProxy::start(echo_server()).expect("proxy");
    let mut s = connect(&proxy);
    echo(&mut s, b"warm").expect("echo");
    proxy.set(Fault::Latency(Duration::from_millis(150)));
    let started = Instant::now();
    assert_eq!(echo(&mut s, b"slow").expect("echo"), b"slow");
    // 150 ms each way; allow generous slack below, none asserted above.
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    proxy.set(Fault::Pass);
    assert_eq!(echo(&mut s, b"fast").expect("echo"), b"fast");
}

#[test]
fn blackhole_stalls_new_and_open_connections_until_lifted() {
    let proxy = FaultProxy::start(echo_server()).expect("proxy");
    let mut open = connect(&proxy);
    echo(&mut open, b"before").expect("echo");

    proxy.set(Fault::Blackhole);
    open.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    open.write_all(b"held").expect("write is accepted");
    let mut buf = [0u8; 4];
    let err = open.read(&mut buf).expect_err("no answer while blackholed");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err:?}"
    );

    let mut fresh = connect(&proxy);
    fresh
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    fresh.write_all(b"new!").expect("connect and write succeed");
    let err = fresh
        .read(&mut buf)
        .expect_err("no answer while blackholed");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err:?}"
    );

    proxy.set(Fault::Pass);
    open.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    open.read_exact(&mut buf).expect("held data arrives");
    assert_eq!(&buf, b"held");
}

#[test]
fn reset_resets_open_and_new_connections() {
    let proxy = FaultProxy::start(echo_server()).expect("proxy");
    let mut open = connect(&proxy);
    echo(&mut open, b"ping").expect("echo");

    proxy.set(Fault::Reset);
    let mut buf = [0u8; 4];
    let err = open.read(&mut buf).expect_err("reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err:?}");

    let mut fresh = connect(&proxy);
    let err = echo(&mut fresh, b"ping").expect_err("new connections are reset");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
        ),
        "{err:?}"
    );

    proxy.set(Fault::Pass);
    let mut again = connect(&proxy);
    assert_eq!(echo(&mut again, b"pong").expect("echo"), b"pong");
}

#[test]
fn refuse_closes_the_port_and_pass_reopens_it() {
    let proxy = FaultProxy::start(echo_server()).expect("proxy");
    let mut open = connect(&proxy);

    proxy.set(Fault::Refuse);
    let err = TcpStream::connect(("127.0.0.1", proxy.port())).expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
    assert_eq!(
        echo(&mut open, b"still").expect("open connections keep working"),
        b"still"
    );

    proxy.set(Fault::Pass);
    let mut again = connect(&proxy);
    assert_eq!(echo(&mut again, b"back").expect("echo"), b"back");
}

#[test]
fn dropping_the_proxy_closes_everything() {
    let proxy = FaultProxy::start(echo_server()).expect("proxy");
    let port = proxy.port();
    let mut open = connect(&proxy);
    echo(&mut open, b"ping").expect("echo");
    drop(proxy);
    let mut buf = [0u8; 1];
    assert!(matches!(open.read(&mut buf), Ok(0) | Err(_)));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

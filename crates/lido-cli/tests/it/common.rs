//! Shared by the CLI tests: run the real `lido` binary, talk HTTP to `lido serve`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Variables that would change what `lido` connects to.
const SCRUB: [&str; 10] = [
    "DATABASE_URL",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "LIDO_LISTEN",
];

/// `lido` with a clean environment plus `env`.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lido"));
    cmd.args(args);
    for k in SCRUB {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `lido` to the end.
pub fn lido(args: &[&str], env: &[(&str, &str)]) -> Output {
    command(args, env).output().expect("run lido")
}

/// stdout and stderr as text.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `lido serve` child, killed on drop.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    pub lines: mpsc::Receiver<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `lido serve --listen 127.0.0.1:0 <extra>` and waits for its address.
pub fn serve(extra: &[&str]) -> Served {
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--health-interval",
        "1s",
    ];
    args.extend_from_slice(extra);
    let mut child = command(&args, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn lido serve");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("lido serve printed no address; output so far: {seen:?}"));
        if let Some(rest) = line.strip_prefix("listening on http://") {
            let addr = rest.split('/').next().expect("address");
            break addr.parse().expect("socket address");
        }
        seen.push(line);
    };
    Served {
        child,
        addr,
        lines: rx,
    }
}

/// A response: status, lower-cased headers, body.
pub struct Response {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// `GET path` with a hand-written HTTP/1.0 request.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect to lido serve");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("header/body separator");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Polls `GET path` until `ok` holds (bounded, never a timing assertion).
pub fn get_until(addr: SocketAddr, path: &str, ok: impl Fn(&Response) -> bool) -> Response {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = get(addr, path);
        if ok(&r) || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub use lido_testkit::urls::closed_port;

//! [`FaultProxy`]: a TCP proxy on 127.0.0.1 that can delay, stall, reset or
//! refuse connections to a target, switchable while connections are open.

use std::fmt;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::TestkitError;

/// What a [`FaultProxy`] does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward bytes both ways unchanged.
    Pass,
    /// Forward, but deliver each chunk this long after it was read, in each
    /// direction (a request/response round trip gains at least twice this).
    Latency(Duration),
    /// Accept connections and take what clients send, but forward nothing
    /// and answer nothing, as a network partition would: reads on the
    /// client side time out. Data is held, not lost: switching back to
    /// [`Fault::Pass`] delivers it (new connections then reach the target).
    Blackhole,
    /// Reset (TCP RST) every open connection at once; connections accepted
    /// while in this mode are reset immediately.
    Reset,
    /// Close the listening socket so `connect()` is refused; open
    /// connections keep forwarding. Leaving this mode listens again on the
    /// same port.
    Refuse,
}

struct State {
    mode: Fault,
    listening: bool,
    shutdown: bool,
    /// Local ports of our own connections made to wake the acceptor.
    wake_ports: Vec<u16>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    conns: Mutex<Vec<Weak<Conn>>>,
    addr: SocketAddr,
    target: SocketAddr,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live_conns(&self) -> Vec<Arc<Conn>> {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.retain(|w| w.strong_count() > 0);
        conns.iter().filter_map(Weak::upgrade).collect()
    }
}

struct Conn {
    client: TcpStream,
    upstream: TcpStream,
    reset: AtomicBool,
}

impl Conn {
    /// Makes both sockets send RST when their last handle closes, and wakes
    /// the readers so every handle closes.
    fn reset(&self) {
        self.reset.store(true, Ordering::SeqCst);
        for s in [&self.client, &self.upstream] {
            let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
            let _ = s.shutdown(Shutdown::Read);
        }
    }

    fn kill(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }
}

/// A TCP proxy on `127.0.0.1:<port>` in front of a target address, with a
/// switchable [`Fault`] mode (initially [`Fault::Pass`]). It runs on plain
/// threads, so it works with or without a tokio runtime.
///
/// Dropping it stops listening and closes every proxied connection.
pub struct FaultProxy {
    shared: Arc<Shared>,
    acceptor: Option<thread::JoinHandle<()>>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.shared.addr)
            .field("target", &self.shared.target)
            .field("mode", &self.mode())
            .finish()
    }
}

impl FaultProxy {
    /// Starts a proxy in [`Fault::Pass`] mode on a free port of 127.0.0.1.
    pub fn start(target: SocketAddr) -> Result<FaultProxy, TestkitError> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| TestkitError::io("FaultProxy: binding 127.0.0.1:0", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| TestkitError::io("FaultProxy: local_addr", e))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                mode: Fault::Pass,
                listening: true,
                shutdown: false,
                wake_ports: Vec::new(),
            }),
            changed: Condvar::new(),
            conns: Mutex::new(Vec::new()),
            addr,
            target,
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("fault-proxy-{}", addr.port()))
                .spawn(move || accept_loop(&shared, listener))
                .map_err(|e| TestkitError::io("FaultProxy: spawning a thread", e))?
        };
        Ok(FaultProxy {
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.shared.addr.port()
    }

    /// The proxy's address, `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The current mode.
    pub fn mode(&self) -> Fault {
        self.shared.state().mode
    }

    /// Switches the mode. When this returns, the change is in effect:
    /// after `set(Fault::Refuse)` connects are refused, after leaving it the
    /// port listens again, and after `set(Fault::Reset)` every connection
    /// that was open has been reset.
    pub fn set(&self, mode: Fault) {
        {
            let mut st = self.shared.state();
            st.mode = mode;
            if mode == Fault::Refuse && st.listening {
                // Wake the acceptor blocked in accept() so it closes the socket.
                if let Ok(s) = TcpStream::connect(self.shared.addr) {
                    if let Ok(local) = s.local_addr() {
                        st.wake_ports.push(local.port());
                    }
                }
            }
            if mode == Fault::Reset {
                // Under the state lock, so no held chunk slips out first.
                for conn in self.shared.live_conns() {
                    conn.reset();
                }
            }
            self.shared.changed.notify_all();
        }
        // Wait for the acceptor to (re)open or close the listening socket.
        let want_listening = mode != Fault::Refuse;
        let st = self.shared.state();
        let (st, timeout) = self
            .shared
            .changed
            .wait_timeout_while(st, Duration::from_secs(5), |st| {
                st.listening != want_listening && st.mode == mode
            })
            .unwrap_or_else(|e| e.into_inner());
        if timeout.timed_out() && st.listening != want_listening {
            tracing::warn!(
                "lido-testkit: FaultProxy on {} could not switch listening to {want_listening}",
                self.shared.addr
            );
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let woke = {
            let mut st = self.shared.state();
            st.shutdown = true;
            self.shared.changed.notify_all();
            if st.listening {
                match TcpStream::connect(self.shared.addr) {
                    Ok(s) => {
                        if let Ok(local) = s.local_addr() {
                            st.wake_ports.push(local.port());
                        }
                        true
                    }
                    Err(_) => false,
                }
            } else {
                true
            }
        };
        if woke {
            if let Some(handle) = self.acceptor.take() {
                let _ = handle.join();
            }
        }
        for conn in self.shared.live_conns() {
            conn.kill();
        }
    }
}

fn accept_loop(shared: &Arc<Shared>, first: TcpListener) {
    let mut listener = Some(first);
    loop {
        let Some(l) = &listener else {
            // Refusing: wait for another mode, then listen on the same port.
            let mut st = shared.state();
            while st.mode == Fault::Refuse && !st.shutdown {
                st = shared.changed.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.shutdown {
                return;
            }
            drop(st);
            match TcpListener::bind(shared.addr) {
                Ok(l) => {
                    listener = Some(l);
                    shared.state().listening = true;
                    shared.changed.notify_all();
                }
                Err(e) => {
                    tracing::debug!("lido-testkit: FaultProxy rebinding {}: {e}", shared.addr);
                    thread::sleep(Duration::from_millis(20));
                }
            }
            continue;
        };
        let (stream, peer) = match l.accept() {
            Ok(accepted) => accepted,
            Err(_) => {
                if shared.state().shutdown {
                    return;
                }
                thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        let mut st = shared.state();
        if st.shutdown {
            return;
        }
        let wake = match st.wake_ports.iter().position(|p| *p == peer.port()) {
            Some(i) => {
                st.wake_ports.swap_remove(i);
                true
            }
            None => false,
        };
        match st.mode {
            Fault::Refuse if wake => {
                // Connections queued behind the wake-up are reset by the close;
                // those ahead of it were made before `set` and are served.
                listener = None;
                st.listening = false;
                shared.changed.notify_all();
            }
            _ if wake => {}
            Fault::Reset => rst(&stream),
            _ => {
                drop(st);
                let shared = Arc::clone(shared);
                let spawned = thread::Builder::new()
                    .name("fault-proxy-conn".to_owned())
                    .spawn(move || serve(&shared, stream));
                if let Err(e) = spawned {
                    tracing::warn!("lido-testkit: FaultProxy could not spawn a thread: {e}");
                }
            }
        }
    }
}

/// Closes `stream` with an RST.
fn rst(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// Proxies one accepted connection.
fn serve(shared: &Arc<Shared>, client: TcpStream) {
    {
        // A connection accepted while blackholed waits, unanswered.
        let mut st = shared.state();
        while st.mode == Fault::Blackhole && !st.shutdown {
            st = shared.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if st.shutdown || st.mode == Fault::Reset {
            rst(&client);
            return;
        }
    }
    let Ok(upstream) = TcpStream::connect_timeout(&shared.target, Duration::from_secs(5)) else {
        rst(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let conn = Arc::new(Conn {
        client,
        upstream,
        reset: AtomicBool::new(false),
    });
    {
        // Registered under the state lock, so a concurrent `set(Reset)`
        // either sees this connection or is seen by it.
        let st = shared.state();
        if st.shutdown || st.mode == Fault::Reset {
            rst(&conn.client);
            rst(&conn.upstream);
            return;
        }
        shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&conn));
    }
    let back = {
        let (shared, conn) = (Arc::clone(shared), Arc::clone(&conn));
        thread::Builder::new()
            .name("fault-proxy-pump".to_owned())
            .spawn(move || pump(&shared, &conn, false))
    };
    if back.is_err() {
        conn.kill();
        return;
    }
    pump(shared, &conn, true);
}

enum Chunk {
    Data(Instant, Vec<u8>),
    Eof,
}

/// Moves bytes one way (client to upstream when `forward`): a reader thread
/// timestamps chunks, this thread delivers them according to the mode.
fn pump(shared: &Arc<Shared>, conn: &Arc<Conn>, forward: bool) {
    let (tx, rx) = mpsc::channel();
    let reader = {
        let conn = Arc::clone(conn);
        thread::Builder::new()
            .name("fault-proxy-read".to_owned())
            .spawn(move || {
                let src = if forward {
                    &conn.client
                } else {
                    &conn.upstream
                };
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match (&*src).read(&mut buf) {
                        Ok(0) | Err(_) => {
                            let _ = tx.send(Chunk::Eof);
                            return;
                        }
                        Ok(n) => {
                            if tx
                                .send(Chunk::Data(Instant::now(), buf[..n].to_vec()))
                                .is_err()
                            {
                                return;
                            }
                        }
                    }
                }
            })
    };
    if reader.is_err() {
        conn.kill();
        return;
    }
    let dst = if forward {
        &conn.upstream
    } else {
        &conn.client
    };
    for chunk in rx {
        let (read_at, bytes) = match chunk {
            Chunk::Data(at, bytes) => (at, bytes),
            Chunk::Eof => {
                if !conn.reset.load(Ordering::SeqCst) {
                    let _ = dst.shutdown(Shutdown::Write);
                }
                return;
            }
        };
        let delay = {
            let mut st = shared.state();
            while st.mode == Fault::Blackhole && !st.shutdown && !conn.reset.load(Ordering::SeqCst)
            {
                st = shared.changed.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            match st.mode {
                Fault::Latency(d) => d,
                _ => Duration::ZERO,
            }
        };
        if let Some(wait) = (read_at + delay).checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        if conn.reset.load(Ordering::SeqCst) {
            return;
        }
        if (&*dst).write_all(&bytes).is_err() {
            conn.kill();
            return;
        }
    }
}

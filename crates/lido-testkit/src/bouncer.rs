//! [`PgBouncer`]: Debian's pgbouncer (1.18) in front of a [`PgServer`].

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::binaries;
use crate::error::TestkitError;
use crate::process::{self, Watchdog};
use crate::server::PgServer;

/// A running pgbouncer in front of a [`PgServer`], on its own port of
/// 127.0.0.1, with SCRAM-SHA-256 client auth for the server's
/// [`user`](PgServer::user) (the `auth_file` holds the SCRAM secret from
/// `pg_authid`, which pgbouncer also uses to log in to the server). Every
/// database name is routed to the server (`* =` entry).
///
/// Started as the `postgres` OS user with `pgbouncer -d` (no systemd);
/// stopped (SIGTERM) and its directory removed on drop.
pub struct PgBouncer {
    dir: PathBuf,
    port: u16,
    user: String,
    password: String,
    // Declared last: dropped after `Drop::drop` has stopped pgbouncer.
    _watchdog: Watchdog,
}

impl fmt::Debug for PgBouncer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBouncer")
            .field("port", &self.port)
            .field("dir", &self.dir)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl PgBouncer {
    /// Starts pgbouncer for `server` with the given `pool_mode`
    /// (`"session"`, `"transaction"` or `"statement"`) and
    /// `default_pool_size`, and waits until it accepts TCP connections.
    ///
    /// Fails with [`TestkitError::PgBouncerNotFound`] (saying to run
    /// `apt-get install -y pgbouncer`) when the program is missing.
    pub fn start(
        server: &PgServer,
        pool_mode: &str,
        default_pool_size: u32,
    ) -> Result<PgBouncer, TestkitError> {
        let program = binaries::pgbouncer()?;
        let secret = server.psql(
            "postgres",
            &format!(
                "SELECT rolpassword FROM pg_authid WHERE rolname = '{}';",
                server.user()
            ),
        )?;
        let secret = secret.trim();
        if !secret.starts_with("SCRAM-SHA-256$") {
            return Err(TestkitError::InvalidState(format!(
                "role {} has no SCRAM-SHA-256 secret",
                server.user()
            )));
        }
        let dir = process::make_temp_dir("lido-pgbouncer-")?;
        let pid_file = process::sh_quote(dir.join("pgbouncer.pid").as_os_str());
        let watchdog = Watchdog::spawn(&format!(
            "if [ -f {pid_file} ]; then kill -KILL \"$(cat {pid_file})\"; fi; rm -rf {}",
            process::sh_quote(dir.as_os_str())
        ));
        let mut bouncer = PgBouncer {
            dir,
            port: 0,
            user: server.user().to_owned(),
            password: server.password().to_owned(),
            _watchdog: watchdog,
        };
        process::write_file(
            &bouncer.dir.join("userlist.txt"),
            &format!("\"{}\" \"{secret}\"\n", server.user()),
            0o600,
        )?;
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            bouncer.port = process::free_port()?;
            let ini = bouncer.ini(server, pool_mode, default_pool_size);
            process::write_file(&bouncer.dir.join("pgbouncer.ini"), &ini, 0o644)?;
            process::chown_to_postgres(&bouncer.dir)?;
            match bouncer.launch(&program) {
                Ok(()) => break,
                Err(e) => {
                    let log = process::tail(&bouncer.log_path(), 2000);
                    if attempt < ATTEMPTS && log.contains("Address already in use") {
                        bouncer.kill();
                        let _ = std::fs::remove_file(bouncer.log_path());
                        continue;
                    }
                    return Err(e);
                }
            }
        }
        Ok(bouncer)
    }

    fn ini(&self, server: &PgServer, pool_mode: &str, default_pool_size: u32) -> String {
        let dir = self.dir.display();
        format!(
            "; written by lido-testkit\n\
             [databases]\n\
             * = host=127.0.0.1 port={server_port}\n\
             \n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir = {dir}\n\
             auth_type = scram-sha-256\n\
             auth_file = {dir}/userlist.txt\n\
             pool_mode = {pool_mode}\n\
             default_pool_size = {default_pool_size}\n\
             max_client_conn = 1000\n\
             server_tls_sslmode = disable\n\
             ignore_startup_parameters = extra_float_digits\n\
             admin_users = {user}\n\
             stats_users = {user}\n\
             logfile = {dir}/pgbouncer.log\n\
             pidfile = {dir}/pgbouncer.pid\n",
            server_port = server.port(),
            port = self.port,
            user = self.user,
        )
    }

    fn launch(&self, program: &std::path::Path) -> Result<(), TestkitError> {
        let mut cmd = process::command(program, true, &self.dir);
        cmd.arg("-d").arg(self.dir.join("pgbouncer.ini"));
        process::run(cmd, None).map_err(|e| self.with_log(e))?;
        process::wait_for_tcp(self.port, Duration::from_secs(10), "pgbouncer").map_err(|e| {
            TestkitError::InvalidState(format!(
                "{e}\n--- tail of {} ---\n{}",
                self.log_path().display(),
                process::tail(&self.log_path(), 4000)
            ))
        })
    }

    fn with_log(&self, e: TestkitError) -> TestkitError {
        process::with_log_tail(e, &self.log_path())
    }

    /// Sends SIGTERM (immediate shutdown) and waits up to 5 s for the pid
    /// file to go away.
    fn kill(&self) {
        let pid_file = self.dir.join("pgbouncer.pid");
        let Ok(pid) = std::fs::read_to_string(&pid_file) else {
            return;
        };
        let mut cmd = process::command("kill", false, &self.dir);
        cmd.args(["-TERM", pid.trim()]);
        if process::run(cmd, None).is_err() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while pid_file.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The port pgbouncer listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// pgbouncer's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("pgbouncer.log")
    }

    /// `postgres://lido:<password>@127.0.0.1:<port>/<db>?sslmode=disable`,
    /// through pgbouncer (`db = "pgbouncer"` is the admin console).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{db}?sslmode=disable",
            self.user, self.password, self.port
        )
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        self.kill();
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!("lido-testkit: removing {}: {e}", self.dir.display());
        }
    }
}

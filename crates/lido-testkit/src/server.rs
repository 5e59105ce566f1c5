//! [`PgServer`]: a real, throwaway PostgreSQL cluster for one test (or one
//! test binary, through [`PgServer::shared`]).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::binaries::PgBinaries;
use crate::certs;
use crate::error::TestkitError;
use crate::process::{self, Watchdog};
use crate::template;

use crate::builder::{PgServerBuilder, StopMode, REPLICATION_SETTINGS};

/// The role every server creates: a SCRAM-SHA-256 password login with
/// SUPERUSER, so tests may `pg_terminate_backend` and create databases.
pub(crate) const USER: &str = "lido";

/// Where a new server's data directory comes from.
pub(crate) enum DataSource<'a> {
    /// A copy of the template cluster; the server then creates its role.
    Template,
    /// A base backup of a running primary, which makes the new server its
    /// streaming replica; the role and its password come with the backup.
    BaseBackup(&'a PgServer),
}

/// A client certificate and its key, made by [`PgServer::client_cert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// The PEM certificate (`sslcert`).
    pub cert: PathBuf,
    /// The PEM PKCS#8 private key (`sslkey`, mode 0600).
    pub key: PathBuf,
}

/// A running throwaway PostgreSQL cluster on 127.0.0.1.
///
/// The cluster lives in a fresh temporary directory (data directory, Unix
/// socket, certificates, `postgres.log`). Dropping the value runs
/// `pg_ctl stop -m immediate` and removes the directory, also while a test
/// panics; a watchdog process does the same if the test process dies
/// without unwinding.
///
/// Lifecycle methods take `&self` so a test can stop or restart a server
/// that pool code also refers to.
pub struct PgServer {
    pub(crate) bins: PgBinaries,
    pub(crate) dir: PathBuf,
    pub(crate) data_dir: PathBuf,
    pub(crate) port: u16,
    password: String,
    tls: bool,
    ca_pem: String,
    ca_cert_path: PathBuf,
    /// Signs client certificates.
    ca: certs::Ca,
    pub(crate) running: Mutex<bool>,
    /// The processes `freeze` stopped, until `thaw`.
    pub(crate) frozen: Mutex<Vec<u32>>,
    // Declared last: dropped after `Drop::drop` has stopped the server.
    _watchdog: Watchdog,
}

impl fmt::Debug for PgServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgServer")
            .field("addr", &self.addr())
            .field("dir", &self.dir)
            .field("user", &USER)
            .field("password", &"<redacted>")
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl PgServer {
    /// Starts a server with the default options (TLS on, 100 connections).
    pub fn start() -> Result<PgServer, TestkitError> {
        PgServer::builder().start()
    }

    /// Options for a server; finish with [`PgServerBuilder::start`].
    pub fn builder() -> PgServerBuilder {
        PgServerBuilder::default()
    }

    /// One server per test binary, started on first use and never stopped
    /// before the process exits (a watchdog removes it then). Tests sharing
    /// it should each use their own [`create_database`](Self::create_database)
    /// and must not stop it.
    ///
    /// # Panics
    ///
    /// When the server cannot start; every later call panics the same way.
    pub fn shared() -> &'static PgServer {
        static SHARED: OnceLock<Result<PgServer, String>> = OnceLock::new();
        match SHARED.get_or_init(|| PgServer::start().map_err(|e| e.to_string())) {
            Ok(server) => server,
            Err(e) => panic!("lido-testkit: the shared PostgreSQL server could not start: {e}"),
        }
    }

    /// Starts a server whose data directory comes from `source`.
    pub(crate) fn start_from(
        options: &PgServerBuilder,
        source: DataSource<'_>,
    ) -> Result<PgServer, TestkitError> {
        let bins = PgBinaries::locate()?;
        let dir = process::make_temp_dir("lido-pg-")?;
        let data_dir = dir.join("data");
        let pg_ctl = process::sh_quote(bins.program("pg_ctl").as_os_str());
        let as_postgres = if process::is_root() {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let quoted_data = process::sh_quote(data_dir.as_os_str());
        // A frozen server (SIGSTOP) is resumed first, or it could not stop.
        let watchdog = Watchdog::spawn(&format!(
            "if [ -f {quoted_data}/postmaster.pid ]; then \
             pm=$(head -n 1 {quoted_data}/postmaster.pid); \
             kill -CONT $pm $(ps -o pid= --ppid $pm) 2>/dev/null; \
             {as_postgres}{pg_ctl} stop -D {quoted_data} -m immediate -w; fi; rm -rf {}",
            process::sh_quote(dir.as_os_str())
        ));
        let (tls, ca) = certs::generate_server_tls()?;
        let mut server = PgServer {
            bins,
            ca_cert_path: dir.join("ca.crt"),
            dir,
            data_dir,
            port: 0,
            password: match source {
                DataSource::Template => std::iter::repeat_with(fastrand::alphanumeric)
                    .take(24)
                    .collect(),
                DataSource::BaseBackup(primary) => primary.password.clone(),
            },
            tls: options.tls,
            ca_pem: tls.ca_pem.clone(),
            ca,
            running: Mutex::new(false),
            frozen: Mutex::new(Vec::new()),
            _watchdog: watchdog,
        };
        // From here on an error drops `server`, which cleans up.
        server.init(options, &tls, &source)?;
        tracing::debug!(port = server.port, dir = %server.dir.display(), "lido-testkit: PostgreSQL started");
        Ok(server)
    }

    fn init(
        &mut self,
        options: &PgServerBuilder,
        tls: &certs::ServerTls,
        source: &DataSource<'_>,
    ) -> Result<(), TestkitError> {
        process::write_file(&self.ca_cert_path, &tls.ca_pem, 0o644)?;
        process::write_file(&self.dir.join("server.crt"), &tls.cert_pem, 0o644)?;
        process::write_file(&self.dir.join("server.key"), &tls.key_pem, 0o600)?;
        match source {
            DataSource::Template => {
                let mut cp = process::command("cp", false, &self.dir);
                cp.arg("-a")
                    .arg(template::data_dir(&self.bins)?)
                    .arg(&self.data_dir);
                process::run(cp, None)?;
            }
            DataSource::BaseBackup(primary) => self.base_backup(primary)?,
        }
        if !options.hba.is_empty() || options.replication {
            let hba = template::hba(&options.hba, options.replication);
            process::write_file(&self.data_dir.join("pg_hba.conf"), &hba, 0o600)?;
        }

        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            self.port = process::free_port()?;
            process::write_file(
                &self.data_dir.join("lido.conf"),
                &self.config(options),
                0o644,
            )?;
            if attempt == 1 {
                process::chown_to_postgres(&self.dir)?;
            }
            let log_len = std::fs::metadata(self.log_path()).map_or(0, |m| m.len());
            match self.pg_ctl_start() {
                Ok(()) => break,
                Err(e) => {
                    let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                    let new_log = log.get(log_len as usize..).unwrap_or_default();
                    if attempt < ATTEMPTS && new_log.contains("could not bind") {
                        tracing::debug!(port = self.port, "lido-testkit: port taken, retrying");
                        continue;
                    }
                    return Err(e);
                }
            }
        }
        *self.lock() = true;
        if let DataSource::BaseBackup(_) = source {
            return Ok(());
        }
        self.psql(
            "postgres",
            &format!(
                "CREATE ROLE {USER} WITH LOGIN SUPERUSER PASSWORD '{pw}';\n\
                 CREATE EXTENSION IF NOT EXISTS pg_stat_statements;\n\
                 \\c template1\n\
                 CREATE EXTENSION IF NOT EXISTS pg_stat_statements;\n",
                pw = self.password
            ),
        )?;
        Ok(())
    }

    /// Fills this (not yet started) server's data directory with a
    /// `pg_basebackup -R -X stream` of `primary`, as the `postgres` OS user.
    fn base_backup(&self, primary: &PgServer) -> Result<(), TestkitError> {
        // pg_basebackup, run as `postgres`, creates the data directory here.
        process::chown_to_postgres(&self.dir)?;
        let mut cmd = process::command(self.bins.program("pg_basebackup"), true, &self.dir);
        cmd.env("PGPASSWORD", primary.password())
            .args(["-R", "-X", "stream", "-c", "fast", "-h"])
            .arg(primary.host())
            .arg("-p")
            .arg(primary.port().to_string())
            .args(["-U", USER, "-D"])
            .arg(&self.data_dir);
        process::run(cmd, None).map(drop)
    }

    fn config(&self, options: &PgServerBuilder) -> String {
        let quote = |v: &str| format!("'{}'", v.replace('\'', "''"));
        let dir = self.dir.to_string_lossy();
        let mut settings: Vec<(String, String)> = vec![
            ("listen_addresses", "127.0.0.1".to_owned()),
            ("port", self.port.to_string()),
            // Its own directory first: the testkit's `psql` uses it.
            (
                "unix_socket_directories",
                std::iter::once(dir.to_string())
                    .chain(options.socket_dirs.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("max_connections", options.max_connections.to_string()),
            ("shared_buffers", "32MB".to_owned()),
            ("fsync", "off".to_owned()),
            ("synchronous_commit", "off".to_owned()),
            ("full_page_writes", "off".to_owned()),
            ("shared_preload_libraries", "pg_stat_statements".to_owned()),
            ("password_encryption", "scram-sha-256".to_owned()),
            ("ssl", if options.tls { "on" } else { "off" }.to_owned()),
            ("ssl_cert_file", format!("{dir}/server.crt")),
            ("ssl_key_file", format!("{dir}/server.key")),
            // Client certificates signed by the test CA (asked for, required only by pg_hba).
            ("ssl_ca_file", format!("{dir}/ca.crt")),
            ("lc_messages", "C".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if options.replication {
            settings.extend(
                REPLICATION_SETTINGS
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
        }
        settings.extend(options.settings.iter().cloned());
        let mut out = String::from("# written by lido-testkit\n");
        for (key, value) in settings {
            out.push_str(&format!("{key} = {}\n", quote(&value)));
        }
        out
    }

    /// `"127.0.0.1"`.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// The TCP port (fixed for the server's life, across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`, e.g. as a [`FaultProxy`](crate::FaultProxy) target.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The directory holding the Unix socket (`.s.PGSQL.<port>`); it is the
    /// server's temporary directory.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server log (`pg_ctl -l`).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// The binaries this server runs.
    pub fn binaries(&self) -> &PgBinaries {
        &self.bins
    }

    /// The SCRAM-SHA-256 login role, a SUPERUSER: `"lido"`.
    pub fn user(&self) -> &str {
        USER
    }

    /// The role's random password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Whether the server was started with `ssl = on`.
    pub fn tls_enabled(&self) -> bool {
        self.tls
    }

    /// `postgres://lido:<password>@127.0.0.1:<port>/<db>?sslmode=disable`.
    pub fn url(&self, db: &str) -> String {
        self.url_with_port(db, self.port)
    }

    /// [`url`](Self::url) with `sslmode=require`, for clients given
    /// [`ca_pem`](Self::ca_pem) as their only trusted root.
    pub fn tls_url(&self, db: &str) -> String {
        self.url(db).replace("sslmode=disable", "sslmode=require")
    }

    /// [`url`](Self::url) with another port, e.g. a
    /// [`FaultProxy`](crate::FaultProxy)'s in front of this server.
    pub fn url_with_port(&self, db: &str, port: u16) -> String {
        format!(
            "postgres://{USER}:{}@127.0.0.1:{port}/{db}?sslmode=disable",
            self.password
        )
    }

    /// The PEM file of the CA that signed the server certificate.
    pub fn ca_cert_path(&self) -> &Path {
        &self.ca_cert_path
    }

    /// The PEM text of the CA that signed the server certificate (SAN
    /// `localhost` and `127.0.0.1`).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Creates a fresh, uniquely named database owned by [`user`](Self::user)
    /// from `template1` (which has `pg_stat_statements`), and returns its name.
    pub fn create_database(&self) -> Result<String, TestkitError> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let name = format!(
            "lido_t{}_{}",
            NEXT.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..) % 36u32.pow(4)
        );
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {name} OWNER {USER} TEMPLATE template1;"),
        )?;
        Ok(name)
    }

    /// Drops a database, disconnecting its sessions (`WITH (FORCE)`).
    pub fn drop_database(&self, db: &str) -> Result<(), TestkitError> {
        let ident = format!("\"{}\"", db.replace('"', "\"\""));
        self.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {ident} WITH (FORCE);"),
        )
        .map(drop)
    }

    /// A client certificate and key for role `user` (its common name),
    /// signed by this server's CA, written to files in the server's
    /// directory: for `sslcert`/`sslkey`, with `cert` authentication or
    /// `clientcert=verify-full` in a [`hba_line`](crate::PgServerBuilder::hba_line).
    pub fn client_cert(&self, user: &str) -> Result<ClientCert, TestkitError> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let (cert_pem, key_pem) = certs::client_cert(&self.ca, user)?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let cert = self.dir.join(format!("client{n}.crt"));
        let key = self.dir.join(format!("client{n}.key"));
        process::write_file(&cert, &cert_pem, 0o644)?;
        process::write_file(&key, &key_pem, 0o600)?;
        Ok(ClientCert { cert, key })
    }

    /// Runs `sql` through `psql` as the `postgres` superuser over the Unix
    /// socket and returns stdout, unaligned and tuples-only (`-A -t`): one
    /// line per row, columns separated by `|`. Statements run one by one;
    /// the first error stops the script and becomes the error. Sessions are
    /// read-write even on a server set to `default_transaction_read_only`.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, TestkitError> {
        let mut cmd = process::command(self.bins.program("psql"), false, &self.dir);
        cmd.env("PGOPTIONS", "-c default_transaction_read_only=off");
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d", db, "-f", "-"]);
        process::run(cmd, Some(sql))
    }
}

impl PgServerBuilder {
    /// Creates and starts the server.
    pub fn start(self) -> Result<PgServer, TestkitError> {
        PgServer::start_from(&self, DataSource::Template)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Err(e) = self.thaw() {
            tracing::warn!("lido-testkit: thawing {}: {e}", self.dir.display());
        }
        if *self.lock() || self.data_dir.join("postmaster.pid").exists() {
            if let Err(e) = self.pg_ctl_stop(StopMode::Immediate) {
                tracing::warn!("lido-testkit: stopping {}: {e}", self.dir.display());
            }
        }
        if std::fs::remove_dir_all(&self.dir).is_err() {
            std::thread::sleep(std::time::Duration::from_millis(50));
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                tracing::warn!("lido-testkit: removing {}: {e}", self.dir.display());
            }
        }
    }
}

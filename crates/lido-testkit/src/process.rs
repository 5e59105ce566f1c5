//! Running external programs, as the `postgres` OS user when we are root,
//! and cleaning up after the test process even when it dies abruptly.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::TestkitError;

/// Whether this process runs as root (`id -u` prints 0), once per process.
pub(crate) fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false)
    })
}

/// A command for `program`, run as `postgres` through `runuser` when we are
/// root (initdb, pg_ctl and pgbouncer refuse root), directly otherwise.
///
/// Every `PG*` variable of the environment is removed so a developer's
/// `PGHOST` or `PGSSLMODE` cannot change what the testkit does.
pub(crate) fn command(program: impl AsRef<OsStr>, as_postgres: bool, cwd: &Path) -> Command {
    let mut cmd = if as_postgres && is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(cwd).stdin(Stdio::null());
    cmd
}

/// Renders a command line for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let _ = write!(s, " {}", arg.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion, feeding it `stdin`, and returns its stdout.
/// A non-zero exit becomes [`TestkitError::CommandFailed`].
pub(crate) fn run(mut cmd: Command, stdin: Option<&str>) -> Result<String, TestkitError> {
    let line = describe(&cmd);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| TestkitError::io(format!("could not run `{line}`"), e))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A failed write shows up as the command's own error below.
        let _ = pipe.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| TestkitError::io(format!("waiting for `{line}`"), e))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(TestkitError::CommandFailed {
            command: line,
            status: out.status.to_string(),
            output: format!("{}{}", String::from_utf8_lossy(&out.stderr), stdout),
        })
    }
}

/// Gives `path` (recursively) to the `postgres` OS user when we are root.
pub(crate) fn chown_to_postgres(path: &Path) -> Result<(), TestkitError> {
    if !is_root() {
        return Ok(());
    }
    let mut cmd = Command::new("chown");
    cmd.args(["-R", "postgres:postgres"]).arg(path);
    run(cmd, None).map(drop)
}

/// Creates a fresh, uniquely named directory (mode 0755) for a server.
///
/// As root it lives under `/tmp`, which the `postgres` user can always
/// traverse; otherwise under the usual temporary directory.
pub(crate) fn make_temp_dir(prefix: &str) -> Result<PathBuf, TestkitError> {
    let base = if is_root() {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    for _ in 0..32 {
        let name = format!("{prefix}{}", fastrand::u64(..) % 36u64.pow(10));
        let path = base.join(name);
        match std::fs::create_dir(&path) {
            Ok(()) => {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| TestkitError::io(format!("chmod {}", path.display()), e))?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(TestkitError::io(
                    format!("creating a directory in {}", base.display()),
                    e,
                ))
            }
        }
    }
    Err(TestkitError::InvalidState(format!(
        "could not find a free directory name under {}",
        base.display()
    )))
}

/// Writes `contents` to `path` with the given mode.
pub(crate) fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), TestkitError> {
    std::fs::write(path, contents)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)))
        .map_err(|e| TestkitError::io(format!("writing {}", path.display()), e))
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, release).
pub(crate) fn free_port() -> Result<u16, TestkitError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| TestkitError::io("picking a free TCP port", e))
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub(crate) fn wait_for_tcp(port: u16, timeout: Duration, what: &str) -> Result<(), TestkitError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(TestkitError::Timeout(format!(
                "{what} did not accept connections on {addr} within {timeout:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Quotes `s` for `sh`.
pub(crate) fn sh_quote(s: &OsStr) -> String {
    format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"))
}

/// Appends the tail of `log` to a failed command's output.
pub(crate) fn with_log_tail(e: TestkitError, log: &Path) -> TestkitError {
    match e {
        TestkitError::CommandFailed {
            command,
            status,
            output,
        } => TestkitError::CommandFailed {
            command,
            status,
            output: format!(
                "{output}\n--- tail of {} ---\n{}",
                log.display(),
                tail(log, 4000)
            ),
        },
        other => other,
    }
}

/// The last `max` bytes of a log file, for error messages.
pub(crate) fn tail(path: &Path, max: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

/// A detached shell that runs a cleanup script once this test process is
/// gone — however it ended (panic=abort, SIGKILL, Ctrl-C). Normal teardown
/// happens in `Drop`; dropping the watchdog then kills the shell.
#[derive(Debug)]
pub(crate) struct Watchdog {
    child: Option<Child>,
}

impl Watchdog {
    /// Starts the watchdog. Failing to start one only loses the fallback,
    /// so it is logged rather than returned.
    pub(crate) fn spawn(cleanup_script: &str) -> Watchdog {
        let script = format!(
            "trap '' INT TERM HUP; while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {cleanup_script}",
            pid = std::process::id()
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => Watchdog { child: Some(child) },
            Err(e) => {
                tracing::warn!("lido-testkit: could not start a cleanup watchdog: {e}");
                Watchdog { child: None }
            }
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

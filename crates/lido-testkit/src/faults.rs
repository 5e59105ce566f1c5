//! The faults a fault table runs against a [`PgServer`], beyond the plain
//! stop and start of `lifecycle.rs`: freezing every server process
//! (SIGSTOP, then SIGCONT), a fast restart, a crash and restart, an outage
//! of a given length, and terminating every session.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::builder::StopMode;
use crate::error::TestkitError;
use crate::process;
use crate::server::PgServer;

impl PgServer {
    /// The server's processes: the postmaster (the first line of
    /// `postmaster.pid`) first, then its children — every backend and
    /// auxiliary process — found through `/proc`.
    pub fn server_pids(&self) -> Result<Vec<u32>, TestkitError> {
        let pid_file = self.data_dir.join("postmaster.pid");
        let text = std::fs::read_to_string(&pid_file)
            .map_err(|e| TestkitError::io(format!("reading {}", pid_file.display()), e))?;
        let postmaster: u32 = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| {
                TestkitError::InvalidState(format!(
                    "no postmaster pid in {}: {text:?}",
                    pid_file.display()
                ))
            })?;
        let mut pids = vec![postmaster];
        pids.extend(children_of(postmaster)?);
        Ok(pids)
    }

    /// Freezes the server: SIGSTOP to the postmaster, then to each of its
    /// children, and waits (up to 5 s) until each one is stopped. Sockets
    /// stay open but nothing answers: queries in flight hang, new connects
    /// wait in the listen backlog. Returns how many processes it stopped. [`thaw`](Self::thaw) resumes them; dropping
    /// the server thaws it first.
    pub fn freeze(&self) -> Result<usize, TestkitError> {
        // `running` before `frozen`, the order `stop_with` takes them in.
        if !self.is_running() {
            return Err(TestkitError::InvalidState(
                "freeze: the server is not running".to_owned(),
            ));
        }
        let mut frozen = self.frozen_pids();
        if !frozen.is_empty() {
            return Err(TestkitError::InvalidState(
                "freeze: the server is frozen already".to_owned(),
            ));
        }
        // The postmaster first, so it forks no new child meanwhile.
        let postmaster = self.server_pids()?[..1].to_vec();
        signal("STOP", &postmaster)?;
        frozen.extend(&postmaster);
        let children = children_of(postmaster[0])?;
        signal("STOP", &children)?;
        frozen.extend(&children);
        wait_stopped(&frozen)?;
        Ok(frozen.len())
    }

    /// Resumes a [`freeze`](Self::freeze)d server (SIGCONT to every process
    /// it stopped); a server that is not frozen is left alone.
    pub fn thaw(&self) -> Result<(), TestkitError> {
        let mut frozen = self.frozen_pids();
        if frozen.is_empty() {
            return Ok(());
        }
        signal("CONT", &frozen)?;
        frozen.clear();
        Ok(())
    }

    /// Whether the server is [`freeze`](Self::freeze)d.
    pub fn is_frozen(&self) -> bool {
        !self.frozen_pids().is_empty()
    }

    /// Freezes the server for `d`, then thaws it (blocks meanwhile).
    pub fn freeze_for(&self, d: Duration) -> Result<(), TestkitError> {
        self.freeze()?;
        std::thread::sleep(d);
        self.thaw()
    }

    /// `pg_ctl restart -m fast`, as two steps: a fast stop (sessions end
    /// with 57P01 admin_shutdown), then a start on the same port.
    pub fn fast_restart(&self) -> Result<(), TestkitError> {
        self.restart(StopMode::Fast)
    }

    /// A crash: `pg_ctl stop -m immediate` (every process killed at once,
    /// sessions cut without a goodbye). [`start_again`](Self::start_again)
    /// then runs crash recovery.
    pub fn crash(&self) -> Result<(), TestkitError> {
        self.stop_with(StopMode::Immediate)
    }

    /// [`crash`](Self::crash), then [`start_again`](Self::start_again).
    pub fn crash_restart(&self) -> Result<(), TestkitError> {
        self.restart(StopMode::Immediate)
    }

    /// An outage of `down`: a fast stop, `down` with nothing listening
    /// (connects are refused), then a start on the same port (blocks
    /// meanwhile).
    pub fn stop_for(&self, down: Duration) -> Result<(), TestkitError> {
        self.stop()?;
        std::thread::sleep(down);
        self.start_again()
    }

    /// Terminates every client backend in every database except the
    /// `psql` session asking, and waits (up to 10 s each) until they are
    /// gone; returns how many there were.
    pub fn terminate_all_sessions(&self) -> Result<usize, TestkitError> {
        self.terminate_where("TRUE")
    }
}

/// The pids whose parent is `parent`, from `/proc/<pid>/stat` (the fourth
/// field, after the parenthesised command name).
fn children_of(parent: u32) -> Result<Vec<u32>, TestkitError> {
    let entries = std::fs::read_dir("/proc").map_err(|e| TestkitError::io("reading /proc", e))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // A process may end while we look: skip what cannot be read.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if ppid(&stat) == Some(parent) {
            out.push(pid);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Waits until every one of `pids` is stopped (or gone): a signal takes
/// effect when its target next runs, not when `kill` returns.
fn wait_stopped(pids: &[u32]) -> Result<(), TestkitError> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let running: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|&pid| state(pid).is_some_and(|s| !matches!(s, 'T' | 't' | 'Z' | 'X')))
            .collect();
        if running.is_empty() {
            return Ok(());
        }
        if Instant::now() >= until {
            return Err(TestkitError::Timeout(format!(
                "freeze: processes {running:?} did not stop within 5 s"
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The state letter of a process (`/proc/<pid>/stat`'s third field), or
/// `None` when it is gone.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// The parent pid in a `/proc/<pid>/stat` line: `pid (comm) state ppid ...`.
fn ppid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `kill -<sig> pids...` (root may signal the `postgres` user's processes).
fn signal(sig: &str, pids: &[u32]) -> Result<(), TestkitError> {
    if pids.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("kill");
    cmd.arg(format!("-{sig}"))
        .args(pids.iter().map(u32::to_string));
    process::run(cmd, None).map(drop)
}

#[cfg(test)]
mod tests {
    use super::ppid;

    #[test]
    fn ppid_reads_past_a_command_name_with_spaces_and_parens() {
        let stat = "4242 (postgres: lido db (x) idle) S 4200 4200 4200 0 -1";
        assert_eq!(ppid(stat), Some(4200));
        assert_eq!(ppid("garbage"), None);
    }
}

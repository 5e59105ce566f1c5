//! Stopping, starting and restarting a [`PgServer`], and terminating its sessions.

use std::sync::MutexGuard;

use crate::builder::StopMode;
use crate::error::TestkitError;
use crate::process;
use crate::server::PgServer;

impl PgServer {
    pub(crate) fn lock(&self) -> MutexGuard<'_, bool> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The processes [`freeze`](Self::freeze) stopped (empty unless frozen).
    pub(crate) fn frozen_pids(&self) -> MutexGuard<'_, Vec<u32>> {
        self.frozen.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn pg_ctl_start(&self) -> Result<(), TestkitError> {
        let mut cmd = process::command(self.bins.program("pg_ctl"), true, &self.dir);
        cmd.arg("start")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "60", "-s"]);
        process::run(cmd, None)
            .map(drop)
            .map_err(|e| self.with_log(e))
    }

    pub(crate) fn pg_ctl_stop(&self, mode: StopMode) -> Result<(), TestkitError> {
        let mut cmd = process::command(self.bins.program("pg_ctl"), true, &self.dir);
        cmd.arg("stop").arg("-D").arg(&self.data_dir).args([
            "-m",
            mode.as_arg(),
            "-w",
            "-t",
            "60",
            "-s",
        ]);
        process::run(cmd, None)
            .map(drop)
            .map_err(|e| self.with_log(e))
    }

    /// Appends the server log's tail to a failed command's output.
    fn with_log(&self, e: TestkitError) -> TestkitError {
        process::with_log_tail(e, &self.log_path())
    }

    /// Stops the server (`pg_ctl stop -m fast`); the port and data stay.
    pub fn stop(&self) -> Result<(), TestkitError> {
        self.stop_with(StopMode::Fast)
    }

    /// Stops the server in the given mode.
    pub fn stop_with(&self, mode: StopMode) -> Result<(), TestkitError> {
        let mut running = self.lock();
        if !*running {
            return Err(TestkitError::InvalidState(
                "stop: the server is not running".to_owned(),
            ));
        }
        if self.is_frozen() {
            return Err(TestkitError::InvalidState(
                "stop: the server is frozen; thaw it first".to_owned(),
            ));
        }
        self.pg_ctl_stop(mode)?;
        *running = false;
        Ok(())
    }

    /// Starts a stopped server again on the same port and data directory.
    pub fn start_again(&self) -> Result<(), TestkitError> {
        let mut running = self.lock();
        if *running {
            return Err(TestkitError::InvalidState(
                "start_again: the server is already running".to_owned(),
            ));
        }
        self.pg_ctl_start()?;
        *running = true;
        Ok(())
    }

    /// Stops the server in `mode`, then starts it again (same port).
    pub fn restart(&self, mode: StopMode) -> Result<(), TestkitError> {
        self.stop_with(mode)?;
        self.start_again()
    }

    /// Whether the server is running (not [`stop`](Self::stop)ped).
    pub fn is_running(&self) -> bool {
        *self.lock()
    }

    /// Terminates every other client backend connected to `db` and waits
    /// (up to 10 s each) until they are gone; returns how many there were.
    pub fn terminate_backends(&self, db: &str) -> Result<usize, TestkitError> {
        self.terminate_where(&format!("datname = '{}'", db.replace('\'', "''")))
    }

    /// Terminates the other client backends matching the SQL `filter` on
    /// `pg_stat_activity`, waiting (up to 10 s each) until they are gone.
    pub(crate) fn terminate_where(&self, filter: &str) -> Result<usize, TestkitError> {
        let out = self.psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 10000) AS gone \
                 FROM pg_stat_activity WHERE ({filter}) \
                 AND backend_type = 'client backend' AND pid <> pg_backend_pid()) t \
                 WHERE gone;"
            ),
        )?;
        out.trim().parse().map_err(|_| {
            TestkitError::InvalidState(format!("terminate: unexpected psql output {out:?}"))
        })
    }

    /// Starts stopping the server in `mode` and returns at once (`pg_ctl
    /// stop -W`). With [`StopMode::Smart`] and sessions open, the server
    /// goes on serving them but refuses new connections with 57P03
    /// (cannot_connect_now) until the last one ends; [`stop_with`](Self::stop_with)
    /// (`Immediate`) or dropping the server finishes it.
    pub fn begin_stop(&self, mode: StopMode) -> Result<(), TestkitError> {
        if !*self.lock() {
            return Err(TestkitError::InvalidState(
                "begin_stop: the server is not running".to_owned(),
            ));
        }
        let mut cmd = process::command(self.bins.program("pg_ctl"), true, &self.dir);
        cmd.arg("stop")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", mode.as_arg(), "-W", "-s"]);
        process::run(cmd, None)
            .map(drop)
            .map_err(|e| self.with_log(e))
    }
}

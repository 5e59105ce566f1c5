//! [`PgReplicaSet`]: a primary [`PgServer`] and its streaming replicas, each
//! made by `pg_basebackup` from the primary.

use std::time::{Duration, Instant};

use crate::builder::PgServerBuilder;
use crate::error::TestkitError;
use crate::server::{DataSource, PgServer, USER};

/// How long [`PgReplicaSet::create_database`] waits for the replicas.
const CREATE_DATABASE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`PgReplicaSet::promote`] and
/// [`PgReplicaSet::set_apply_delay`] wait for their effect.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A primary and `n` streaming replicas: real, throwaway PostgreSQL
/// servers on 127.0.0.1, each its own [`PgServer`] (own directory, port and
/// cleanup), all with the primary's role and password.
///
/// Every node runs with `wal_level = replica`, `hot_standby = on`,
/// `hot_standby_feedback = off` and a little `wal_keep_size`; `pg_hba.conf`
/// allows replication for the `lido` role over 127.0.0.1 and for anyone
/// over the Unix socket. Each replica is a `pg_basebackup -R -X stream` of
/// the primary, so it streams from it (and reconnects after either side
/// restarts). Stop, start, freeze or crash a node with its own
/// [`PgServer`] methods. Dropping the set stops and removes every node,
/// replicas first.
#[derive(Debug)]
pub struct PgReplicaSet {
    /// The primary first, then the replicas.
    nodes: Vec<PgServer>,
}

impl PgReplicaSet {
    /// Starts a primary with the default options and `replicas` replicas.
    pub fn start(replicas: usize) -> Result<PgReplicaSet, TestkitError> {
        PgReplicaSet::start_with(PgServer::builder(), replicas)
    }

    /// Starts a primary with `primary`'s options (with replication added)
    /// and `replicas` replicas with the same options, as a standby needs
    /// settings such as `max_connections` at least as high as its primary's.
    pub fn start_with(
        mut primary: PgServerBuilder,
        replicas: usize,
    ) -> Result<PgReplicaSet, TestkitError> {
        primary.replication = true;
        let first = PgServer::start_from(&primary, DataSource::Template)?;
        let rest = (0..replicas)
            .map(|_| PgServer::start_from(&primary, DataSource::BaseBackup(&first)))
            .collect::<Result<Vec<_>, _>>()?;
        tracing::debug!(
            primary = first.port(),
            replicas = ?rest.iter().map(PgServer::port).collect::<Vec<_>>(),
            "lido-testkit: replica set started"
        );
        Ok(PgReplicaSet {
            nodes: std::iter::once(first).chain(rest).collect(),
        })
    }

    /// The primary (the first node).
    pub fn primary(&self) -> &PgServer {
        &self.nodes[0]
    }

    /// Replica `i` (from 0).
    ///
    /// # Panics
    ///
    /// When there is no replica `i`.
    pub fn replica(&self, i: usize) -> &PgServer {
        match self.replicas().get(i) {
            Some(replica) => replica,
            None => panic!(
                "lido-testkit: no replica {i} in a set of {} replicas",
                self.replicas().len()
            ),
        }
    }

    /// The replicas, in the order they were made.
    pub fn replicas(&self) -> &[PgServer] {
        &self.nodes[1..]
    }

    /// Every node: the primary first, then the replicas.
    pub fn nodes(&self) -> &[PgServer] {
        &self.nodes
    }

    /// `postgres://lido:<password>@127.0.0.1:<primary port>,127.0.0.1:<replica
    /// port>,.../<db>?sslmode=disable`: every node, the primary first.
    pub fn multi_host_url(&self, db: &str) -> String {
        let hosts = self
            .nodes
            .iter()
            .map(|node| format!("{}:{}", node.host(), node.port()))
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "postgres://{USER}:{}@{hosts}/{db}?sslmode=disable",
            self.primary().password()
        )
    }

    /// Creates a fresh database on the primary (see
    /// [`PgServer::create_database`]) and waits (up to 30 s) until every
    /// running replica that is still in recovery has it.
    pub fn create_database(&self) -> Result<String, TestkitError> {
        let name = self.primary().create_database()?;
        self.wait_replicas(
            &format!("EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}')"),
            CREATE_DATABASE_TIMEOUT,
            &format!("database {name} replayed"),
        )?;
        Ok(name)
    }

    /// Waits until every running replica that is still in recovery has
    /// replayed the primary's WAL up to its `pg_current_wal_lsn()` at the
    /// time of the call.
    pub fn wait_caught_up(&self, timeout: Duration) -> Result<(), TestkitError> {
        let lsn = self
            .primary()
            .psql("postgres", "SELECT pg_current_wal_lsn();")?;
        let lsn = lsn.trim();
        self.wait_replicas(
            &format!("pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"),
            timeout,
            &format!("replay caught up with the primary's {lsn}"),
        )
    }

    /// Delays replay on replica `i` by `delay` (`recovery_min_apply_delay`,
    /// through `ALTER SYSTEM` and `pg_reload_conf()`); [`Duration::ZERO`]
    /// turns the delay off. The WAL still arrives at once, so the
    /// replica's receive LSN runs ahead of its replay LSN. Returns once
    /// the new value is in effect for new sessions.
    pub fn set_apply_delay(&self, i: usize, delay: Duration) -> Result<(), TestkitError> {
        let replica = self.checked_replica(i)?;
        let ms = i32::try_from(delay.as_millis()).map_err(|_| {
            TestkitError::InvalidState(format!("set_apply_delay: {delay:?} is too long"))
        })?;
        // `psql -f -` runs each statement on its own, outside a transaction
        // block, as ALTER SYSTEM requires.
        replica.psql(
            "postgres",
            &format!(
                "ALTER SYSTEM SET recovery_min_apply_delay = '{ms}ms';\nSELECT pg_reload_conf();\n"
            ),
        )?;
        // A new session sees the value once the postmaster has reloaded,
        // and the postmaster signals the startup process before that.
        poll(SETTLE_TIMEOUT, || {
            let setting = replica.psql(
                "postgres",
                "SELECT setting FROM pg_settings WHERE name = 'recovery_min_apply_delay';",
            )?;
            Ok((setting.trim() == ms.to_string()).then_some(()))
        })
        .map_err(|e| timeout_on(replica, e, &format!("recovery_min_apply_delay = {ms}ms")))
    }

    /// Promotes replica `i` (`SELECT pg_promote(true, 60)`) and returns
    /// once it is out of recovery, writable. The other replicas go on
    /// following the old primary.
    pub fn promote(&self, i: usize) -> Result<(), TestkitError> {
        let replica = self.checked_replica(i)?;
        let promoted = replica.psql("postgres", "SELECT pg_promote(true, 60);")?;
        if promoted.trim() != "t" {
            return Err(TestkitError::InvalidState(format!(
                "promote: pg_promote on replica {i} (port {}) returned {:?}",
                replica.port(),
                promoted.trim()
            )));
        }
        poll(SETTLE_TIMEOUT, || {
            Ok((!replica.is_in_recovery()?).then_some(()))
        })
        .map_err(|e| timeout_on(replica, e, "out of recovery"))
    }

    /// Replica `i`'s `pg_last_wal_replay_lsn()`, e.g. `"0/3000148"` (empty
    /// when it has replayed nothing yet).
    pub fn replay_lsn(&self, i: usize) -> Result<String, TestkitError> {
        self.checked_replica(i)?
            .psql("postgres", "SELECT pg_last_wal_replay_lsn();")
            .map(|lsn| lsn.trim().to_owned())
    }

    fn checked_replica(&self, i: usize) -> Result<&PgServer, TestkitError> {
        self.replicas().get(i).ok_or_else(|| {
            TestkitError::InvalidState(format!(
                "no replica {i} in a set of {} replicas",
                self.replicas().len()
            ))
        })
    }

    /// Waits until `condition` (SQL) holds on every replica that is running,
    /// not frozen and still in recovery.
    fn wait_replicas(
        &self,
        condition: &str,
        timeout: Duration,
        what: &str,
    ) -> Result<(), TestkitError> {
        let sql = format!("SELECT NOT pg_is_in_recovery() OR coalesce(({condition}), false);");
        let deadline = Instant::now() + timeout;
        for replica in self.replicas() {
            if !replica.is_running() || replica.is_frozen() {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            poll(left, || {
                Ok((replica.psql("postgres", &sql)?.trim() == "t").then_some(()))
            })
            .map_err(|e| timeout_on(replica, e, what))?;
        }
        Ok(())
    }
}

impl Drop for PgReplicaSet {
    fn drop(&mut self) {
        // Replicas first: they would otherwise retry their lost primary.
        while let Some(node) = self.nodes.pop() {
            drop(node);
        }
    }
}

impl PgServer {
    /// Whether the server is a standby still in recovery
    /// (`pg_is_in_recovery()`): true on a replica, false on a primary or
    /// a promoted replica.
    pub fn is_in_recovery(&self) -> Result<bool, TestkitError> {
        let out = self.psql("postgres", "SELECT pg_is_in_recovery();")?;
        match out.trim() {
            "t" => Ok(true),
            "f" => Ok(false),
            other => Err(TestkitError::InvalidState(format!(
                "pg_is_in_recovery: unexpected psql output {other:?}"
            ))),
        }
    }
}

/// Calls `step` every 20 ms until it returns `Some`, an error, or `timeout`
/// passes (then [`TestkitError::Timeout`] saying how long it waited).
fn poll<T>(
    timeout: Duration,
    mut step: impl FnMut() -> Result<Option<T>, TestkitError>,
) -> Result<T, TestkitError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = step()? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(TestkitError::Timeout(format!("{timeout:?}")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Names the node and what it waited for in a [`poll`] timeout.
fn timeout_on(node: &PgServer, e: TestkitError, what: &str) -> TestkitError {
    match e {
        TestkitError::Timeout(waited) => TestkitError::Timeout(format!(
            "the server on port {} did not reach \"{what}\" within {waited}",
            node.port()
        )),
        other => other,
    }
}

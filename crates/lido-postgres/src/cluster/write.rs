//! Finding the write target: the primary the monitor found, or (during a
//! failover) the next one it finds, waiting at most `primary_wait`.

use std::time::Instant;

use crate::cluster::error::ClusterError;
use crate::cluster::shared::Shared;

impl Shared {
    /// The write target's index; waits (bounded) while none is known.
    pub(crate) async fn primary_node(&self) -> Result<usize, ClusterError> {
        if let Some(i) = self.primary_index() {
            return Ok(i);
        }
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.settings.primary_wait;
        let mut changes = self.topology.subscribe();
        self.wake.notify_one();
        loop {
            if let Some(i) = self.primary_index() {
                return Ok(i);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    return Err(ClusterError::NoPrimary {
                        waited: started.elapsed(),
                        nodes: self.unqualified(crate::cluster::lsn::Lsn::ZERO),
                    })
                }
            }
        }
    }

    /// A write on node `i` met a read-only server (SQLSTATE 25006): stop
    /// writing there, wake the monitor, and wait (bounded) for it to find
    /// the real primary. Returns whether a different write target is known.
    pub(crate) async fn write_target_moved(&self, i: usize) -> bool {
        self.forget_primary(i);
        self.bump();
        self.wake.notify_one();
        matches!(self.primary_node().await, Ok(j) if j != i)
    }
}

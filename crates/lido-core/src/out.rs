//! [`Out`]: a connection taken out of the pool's lists for background work —
//! a `reset` after a return, a keepalive ping. It goes back (or is closed)
//! through [`Out::finish`]; if the work panics or its task is dropped, the
//! drop closes it, so the pool's count stays right whatever the manager does.

use std::sync::Arc;

use tokio::time::Instant;

use crate::commit::apply;
use crate::live::Live;
use crate::manager::Manager;
use crate::shared::Shared;
use crate::stats::CloseReason;

/// What the background work is (keepalive pings are counted in `pinging`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Work {
    Reset,
    Ping,
}

pub(crate) struct Out<M: Manager> {
    shared: Arc<Shared<M>>,
    live: Option<Live<M::Connection>>,
    work: Work,
}

impl<M: Manager> Out<M> {
    /// Takes `live` out; for a ping, the caller has counted it in `pinging`.
    pub fn new(shared: Arc<Shared<M>>, live: Live<M::Connection>, work: Work) -> Self {
        Self {
            shared,
            live: Some(live),
            work,
        }
    }

    pub fn shared(&self) -> &Arc<Shared<M>> {
        &self.shared
    }

    pub fn conn(&mut self) -> Option<&mut M::Connection> {
        self.live.as_mut().map(|l| &mut l.conn)
    }

    /// The work passed (`None`: the connection goes back, marked as used for
    /// a reset or as checked for a ping) or failed with a reason to close it.
    pub fn finish(mut self, failed: Option<CloseReason>) {
        if let Some(mut live) = self.live.take() {
            let now = Instant::now();
            match self.work {
                Work::Reset => live.last_used = now,
                Work::Ping => live.last_checked = now,
            }
            self.settle(live, failed);
        }
    }

    fn settle(&self, live: Live<M::Connection>, failed: Option<CloseReason>) {
        let pinged = self.work == Work::Ping;
        apply(&self.shared, |st, step| {
            st.come_back(live, pinged, failed, step);
        });
    }
}

impl<M: Manager> Drop for Out<M> {
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            tracing::error!("lido: a reset or keepalive ping was abandoned (the manager panicked?); closing the connection");
            self.settle(live, Some(CloseReason::Broken));
        }
    }
}

//! A session's I/O task, and where its `NOTIFY` messages go: tokio-postgres
//! hands them to whoever polls the connection, and by default lido drops
//! them (as tokio-postgres does). A lido feature that `LISTEN`s on its own
//! connection (the result cache's trigger feed) subscribes first.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Connection, Notification};

/// Where a session's notifications go: nowhere until someone subscribes.
#[derive(Debug, Default)]
pub(crate) struct NotifySink {
    to: Mutex<Option<mpsc::UnboundedSender<Notification>>>,
}

impl NotifySink {
    /// From now on, the session's notifications arrive on the receiver
    /// (a previous subscriber gets no more); it ends when the session does.
    pub(crate) fn subscribe(&self) -> mpsc::UnboundedReceiver<Notification> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.to.lock() = Some(tx);
        rx
    }

    fn deliver(&self, n: Notification) {
        let mut to = self.to.lock();
        if let Some(tx) = to.as_ref() {
            if tx.send(n).is_err() {
                *to = None; // the subscriber went away
            }
        }
    }

    fn close(&self) {
        self.to.lock().take();
    }
}

/// Runs a session's I/O until it ends: notices are logged at DEBUG,
/// notifications go to `sink`.
pub(crate) async fn drive<S, T>(mut connection: Connection<S, T>, sink: Arc<NotifySink>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let next = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
        match next {
            Some(Ok(AsyncMessage::Notification(n))) => sink.deliver(n),
            Some(Ok(AsyncMessage::Notice(notice))) => {
                tracing::debug!(
                    severity = notice.severity(),
                    message = notice.message(),
                    "lido-postgres: server notice"
                );
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::debug!(error = %e, "lido-postgres: connection ended with an error");
                break;
            }
            None => break,
        }
    }
    sink.close();
}

//! Transactions open now, with where they began: the longest one is what
//! an operator looks for when locks pile up or vacuum stalls.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The longest transaction open now in a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTransaction {
    /// How long it has been open.
    pub age: Duration,
    /// Where it began (`file:line` of the `begin`/`transaction` call).
    pub location: &'static Location<'static>,
}

/// The pool's open transactions.
#[derive(Debug, Default)]
pub(crate) struct OpenTransactions {
    next: AtomicU64,
    open: Mutex<HashMap<u64, (Instant, &'static Location<'static>)>>,
}

/// An open transaction's entry; dropping it takes the entry out.
#[derive(Debug)]
pub(crate) struct OpenTx {
    id: u64,
    book: Arc<OpenTransactions>,
}

impl Drop for OpenTx {
    fn drop(&mut self) {
        self.book.open.lock().remove(&self.id);
    }
}

impl OpenTransactions {
    /// A transaction begun at `location` is open from now.
    pub(crate) fn begin(self: &Arc<Self>, location: &'static Location<'static>) -> OpenTx {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.open.lock().insert(id, (Instant::now(), location));
        OpenTx {
            id,
            book: Arc::clone(self),
        }
    }

    /// The oldest open transaction, if any.
    pub(crate) fn longest(&self) -> Option<OpenTransaction> {
        let open = self.open.lock();
        let (since, location) = open.values().min_by_key(|(t, _)| *t)?;
        Some(OpenTransaction {
            age: since.elapsed(),
            location,
        })
    }

    /// Transactions open now.
    pub(crate) fn count(&self) -> usize {
        self.open.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_open_transaction_and_its_call_site() {
        let book = Arc::new(OpenTransactions::default());
        assert!(book.longest().is_none());
        let first = book.begin(Location::caller());
        std::thread::sleep(Duration::from_millis(2));
        let second = book.begin(Location::caller());
        let l = book.longest().expect("open");
        assert!(l.age >= Duration::from_millis(2));
        assert_eq!(l.location.file(), file!());
        drop(first);
        assert_eq!(book.count(), 1);
        drop(second);
        assert!(book.longest().is_none());
    }
}

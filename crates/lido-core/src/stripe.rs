//! Stripes: each thread gets a small number, handed out round robin, so
//! per-stripe counters let threads on different cores record without
//! bouncing one cache line between them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Stripes per striped counter or histogram.
pub(crate) const STRIPES: usize = 8;

/// This thread's stripe (0..STRIPES).
pub(crate) fn current() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        // `const`: no lazy-initialisation check on the hot path, only the
        // sentinel test below (on the first call of each thread).
        static MINE: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    MINE.with(|m| {
        let mine = m.get();
        if mine != usize::MAX {
            return mine;
        }
        let mine = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
        m.set(mine);
        mine
    })
}

/// A counter bumped from many threads on a hot path (every `get()`, every
/// query): one padded atomic per stripe of threads, so threads on different
/// cores do not fight over one cache line. Reading sums the stripes.
///
/// ```
/// let hits = lido_core::StripedCounter::default();
/// hits.bump();
/// hits.bump();
/// assert_eq!(hits.get(), 2);
/// ```
#[derive(Default)]
pub struct Counter {
    cells: [Cell; STRIPES],
}

#[derive(Default)]
#[repr(align(128))]
struct Cell(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn bump(&self) {
        self.cells[current()].0.fetch_add(1, Ordering::Relaxed);
    }

    /// The sum over every stripe.
    pub fn get(&self) -> u64 {
        self.cells.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

//! The gate's logic on a paused clock: grants up to the cap, weighted
//! round robin among waiting tenants, minimums first, timeouts and
//! cancellation leave no trace, reclaims ask the tenant most over its share.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use super::{Gate, Permit};
use crate::conn::pgconn::GatePermit;
use crate::tenants::slot::{Reclaim, Slot};

#[derive(Default)]
struct Owner {
    asked: AtomicUsize,
}

impl Reclaim for Owner {
    fn close_idle(&self) -> bool {
        self.asked.fetch_add(1, Ordering::Relaxed);
        false
    }

    fn emptied(&self) {}
}

fn tenant(weight: u32, min: usize) -> (Arc<Slot>, Arc<Owner>) {
    let owner = Arc::new(Owner::default());
    let weak: Weak<Owner> = Arc::downgrade(&owner);
    let weak: Weak<dyn Reclaim> = weak;
    (Arc::new(Slot::new(weight, min, weak)), owner)
}

const LONG: Duration = Duration::from_secs(3600);

/// Spawns a waiter for `slot` that records `name` when granted and keeps
/// its permit in `held`.
fn waiter(
    gate: &Arc<Gate>,
    slot: &Arc<Slot>,
    name: &'static str,
    order: &Arc<Mutex<Vec<&'static str>>>,
    held: &Arc<Mutex<Vec<Permit>>>,
) -> tokio::task::JoinHandle<()> {
    let (gate, slot, order, held) = (
        Arc::clone(gate),
        Arc::clone(slot),
        Arc::clone(order),
        Arc::clone(held),
    );
    tokio::spawn(async move {
        let p = gate.acquire(&slot, LONG).await.expect("granted");
        order.lock().push(name);
        held.lock().push(p);
    })
}

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn grants_up_to_the_cap_then_waits() {
    let gate = Gate::new(2, Duration::ZERO);
    let (a, _o) = tenant(1, 0);
    let p1 = gate.acquire(&a, LONG).await.expect("first");
    let _p2 = gate.acquire(&a, LONG).await.expect("second");
    assert_eq!(gate.load(), (2, 0));
    let Err(err) = gate.acquire(&a, Duration::from_millis(50)).await else {
        panic!("granted above the cap");
    };
    assert_eq!(err.cap, 2);
    assert!(err.waited >= Duration::from_millis(50));
    assert_eq!(gate.load(), (2, 0), "the timed-out waiter left the queue");
    drop(p1);
    assert_eq!(gate.load(), (1, 0));
    assert_eq!(a.held(), 1);
}

#[tokio::test(start_paused = true)]
async fn waiting_tenants_are_served_round_robin_by_weight() {
    let gate = Gate::new(1, Duration::ZERO);
    let (a, _oa) = tenant(2, 0);
    let (b, _ob) = tenant(1, 0);
    let (c, _oc) = tenant(1, 0);
    let first = gate.acquire(&a, LONG).await.expect("first");
    let order = Arc::new(Mutex::new(Vec::new()));
    let held = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for (slot, name, n) in [(&a, "a", 5), (&b, "b", 3), (&c, "c", 1)] {
        for _ in 0..n {
            tasks.push(waiter(&gate, slot, name, &order, &held));
            settle().await;
        }
    }
    assert_eq!(gate.load(), (1, 9));
    drop(first);
    for _ in 0..9 {
        settle().await;
        let p = held.lock().pop().expect("one granted");
        drop(p);
    }
    settle().await;
    // Weight 2 for a: two grants per turn; b and c one each.
    assert_eq!(*order.lock(), ["a", "a", "b", "c", "a", "a", "b", "a", "b"]);
    assert_eq!(gate.load(), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_tenant_under_its_minimum_goes_first() {
    let gate = Gate::new(1, Duration::ZERO);
    let (a, _oa) = tenant(1, 0);
    let (m, _om) = tenant(1, 1);
    let first = gate.acquire(&a, LONG).await.expect("first");
    let order = Arc::new(Mutex::new(Vec::new()));
    let held = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..3 {
        waiter(&gate, &a, "a", &order, &held);
        settle().await;
    }
    waiter(&gate, &m, "m", &order, &held);
    settle().await;
    drop(first);
    settle().await;
    assert_eq!(*order.lock(), ["m"]);
}

#[tokio::test(start_paused = true)]
async fn a_starving_tenant_asks_the_largest_holder_for_one_back() {
    let gate = Gate::new(3, Duration::ZERO);
    let (a, oa) = tenant(1, 0);
    let (b, ob) = tenant(1, 0);
    let (c, oc) = tenant(1, 0);
    let _pa = [gate.acquire(&a, LONG).await, gate.acquire(&a, LONG).await];
    let _pb = gate.acquire(&b, LONG).await.expect("b");
    let order = Arc::new(Mutex::new(Vec::new()));
    let held = Arc::new(Mutex::new(Vec::new()));
    waiter(&gate, &c, "c", &order, &held);
    settle().await;
    assert_eq!(oa.asked.load(Ordering::Relaxed), 1, "a holds the most");
    assert_eq!(ob.asked.load(Ordering::Relaxed), 0);
    assert_eq!(oc.asked.load(Ordering::Relaxed), 0);
    // a's next returned connection closes: its manager sees `shed`.
    assert!(a.take_shed());
    assert!(!a.take_shed(), "one reclaim per waiting connect");
}

#[tokio::test(start_paused = true)]
async fn equal_shares_are_left_alone() {
    let gate = Gate::new(2, Duration::ZERO);
    let (a, oa) = tenant(1, 0);
    let (b, _ob) = tenant(1, 0);
    let _pa = gate.acquire(&a, LONG).await.expect("a");
    let _pb = gate.acquire(&b, LONG).await.expect("b");
    let order = Arc::new(Mutex::new(Vec::new()));
    let held = Arc::new(Mutex::new(Vec::new()));
    waiter(&gate, &b, "b", &order, &held);
    settle().await;
    assert_eq!(oa.asked.load(Ordering::Relaxed), 0);
    assert!(!a.take_shed());
}

#[tokio::test(start_paused = true)]
async fn minimums_are_not_reclaimed() {
    let gate = Gate::new(2, Duration::ZERO);
    let (a, oa) = tenant(1, 2);
    let (b, _ob) = tenant(1, 0);
    let _p1 = gate.acquire(&a, LONG).await.expect("a1");
    let _p2 = gate.acquire(&a, LONG).await.expect("a2");
    let order = Arc::new(Mutex::new(Vec::new()));
    let held = Arc::new(Mutex::new(Vec::new()));
    waiter(&gate, &b, "b", &order, &held);
    settle().await;
    assert_eq!(oa.asked.load(Ordering::Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn a_reclaim_nobody_needs_any_more_is_withdrawn() {
    let gate = Gate::new(2, Duration::ZERO);
    let (a, _oa) = tenant(1, 0);
    let (b, _ob) = tenant(1, 0);
    let p1 = gate.acquire(&a, LONG).await.expect("a1");
    let _p2 = gate.acquire(&a, LONG).await.expect("a2");
    let order = Arc::new(Mutex::new(Vec::new()));
    let held = Arc::new(Mutex::new(Vec::new()));
    waiter(&gate, &b, "b", &order, &held);
    settle().await;
    // a gives one back on its own (say, its idle timeout): b is served and
    // the reclaim asked of a is dropped.
    drop(p1);
    settle().await;
    assert_eq!(*order.lock(), ["b"]);
    assert!(!a.take_shed());
    assert_eq!(gate.load(), (2, 0));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_waiter_leaves_the_queue() {
    let gate = Gate::new(1, Duration::ZERO);
    let (a, _oa) = tenant(1, 0);
    let first = gate.acquire(&a, LONG).await.expect("first");
    let mark = a.queue_mark();
    assert!(!a.queued_since(mark), "a granted connect never queued");
    let task = {
        let (gate, a) = (Arc::clone(&gate), Arc::clone(&a));
        tokio::spawn(async move { gate.acquire(&a, LONG).await.map(drop) })
    };
    settle().await;
    assert_eq!(gate.load(), (1, 1));
    assert!(a.queued_since(mark));
    task.abort();
    settle().await;
    assert_eq!(gate.load(), (1, 0));
    // Gone from the queue, and still seen: a caller that timed out while
    // it waited there gets the cap error, whoever ran first.
    assert!(a.queued_since(mark));
    assert!(!a.queued_since(a.queue_mark()));
    drop(first);
    assert_eq!(gate.load(), (0, 0));
    assert_eq!(a.held(), 0);
    assert_eq!(a.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_busy_connection_is_asked_back_after_its_first_lease_and_min_hold() {
    let gate = Gate::new(1, Duration::from_millis(100));
    let (a, _oa) = tenant(1, 0);
    let (b, _ob) = tenant(1, 0);
    let pa = gate.acquire(&a, LONG).await.expect("a");
    let order = Arc::new(Mutex::new(Vec::new()));
    let held = Arc::new(Mutex::new(Vec::new()));
    waiter(&gate, &b, "b", &order, &held);
    settle().await;
    assert!(!pa.shed(), "never at its first checkout");
    assert!(!pa.shed(), "not before min_hold");
    settle().await;
    tokio::time::advance(Duration::from_millis(100)).await;
    settle().await; // b's wait asked a again for an idle one (this fake has none)
    assert!(_oa.asked.load(Ordering::Relaxed) >= 2);
    assert!(pa.shed(), "asked back");
    drop(pa);
    settle().await;
    assert_eq!(*order.lock(), ["b"]);
    assert_eq!(gate.counters.reclaims.load(Ordering::Relaxed), 1);
}

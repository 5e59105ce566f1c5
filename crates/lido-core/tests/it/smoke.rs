use lido_core::{Manager, Pool};
use std::sync::atomic::{AtomicU64, Ordering};

struct Nop(AtomicU64);
impl Manager for Nop {
    type Connection = u64;
    type Error = std::io::Error;
    async fn connect(&self) -> Result<u64, std::io::Error> {
        Ok(self.0.fetch_add(1, Ordering::Relaxed))
    }
    async fn check(&self, _: &mut u64) -> Result<(), std::io::Error> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_share_a_small_pool() {
    let pool = Pool::builder(Nop(AtomicU64::new(0)))
        .max_size(4)
        .build()
        .await
        .expect("build");
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let p = pool.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..200 {
                let c = p.get().await.expect("get");
                tokio::task::yield_now().await;
                drop(c);
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let s = pool.status();
    assert_eq!(s.size, s.idle);
    assert!(s.size <= 4);
    assert_eq!(s.waiters, 0);
    assert_eq!(
        pool.stats().gets_direct() + pool.stats().gets_waited(),
        64 * 200
    );
}

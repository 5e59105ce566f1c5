//! Do-nothing managers for lido, deadpool, bb8 and mobc, one interface over
//! the four pools, and their builders (defaults except the size).

use std::convert::Infallible;
use std::future::Future;

use crate::args::Kind;

pub struct LidoNop;

impl lido_core::Manager for LidoNop {
    type Connection = u64;
    type Error = Infallible;

    async fn connect(&self) -> Result<u64, Infallible> {
        Ok(0)
    }

    async fn check(&self, _conn: &mut u64) -> Result<(), Infallible> {
        Ok(())
    }
}

pub struct DeadpoolNop;

impl deadpool::managed::Manager for DeadpoolNop {
    type Type = u64;
    type Error = Infallible;

    async fn create(&self) -> Result<u64, Infallible> {
        Ok(0)
    }

    async fn recycle(
        &self,
        _conn: &mut u64,
        _metrics: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

pub struct Bb8Nop;

impl bb8::ManageConnection for Bb8Nop {
    type Connection = u64;
    type Error = Infallible;

    async fn connect(&self) -> Result<u64, Infallible> {
        Ok(0)
    }

    async fn is_valid(&self, _conn: &mut u64) -> Result<(), Infallible> {
        Ok(())
    }

    fn has_broken(&self, _conn: &mut u64) -> bool {
        false
    }
}

pub struct MobcNop;

#[mobc::async_trait]
impl mobc::Manager for MobcNop {
    type Connection = u64;
    type Error = Infallible;

    async fn connect(&self) -> Result<u64, Infallible> {
        Ok(0)
    }

    async fn check(&self, conn: u64) -> Result<u64, Infallible> {
        Ok(conn)
    }
}

pub type LidoPool = lido_core::Pool<LidoNop>;
pub type DeadPool = deadpool::managed::Pool<DeadpoolNop>;
pub type Bb8Pool = bb8::Pool<Bb8Nop>;
pub type MobcPool = mobc::Pool<MobcNop>;

/// The operations the benchmark needs from a pool. `acquire` maps the pool's
/// own `get()` result to an `Option` and nothing else, the same for all pools.
pub trait BenchPool: Clone + Send + Sync + 'static {
    type Guard<'a>: Send
    where
        Self: 'a;

    fn acquire(&self) -> impl Future<Output = Option<Self::Guard<'_>>> + Send;

    /// Open connections (idle + in use) as the pool reports them.
    fn open(&self) -> impl Future<Output = usize> + Send;
}

impl BenchPool for LidoPool {
    type Guard<'a> = lido_core::Pooled<LidoNop>;

    async fn acquire(&self) -> Option<Self::Guard<'_>> {
        self.get().await.ok()
    }

    async fn open(&self) -> usize {
        self.status().size
    }
}

impl BenchPool for DeadPool {
    type Guard<'a> = deadpool::managed::Object<DeadpoolNop>;

    async fn acquire(&self) -> Option<Self::Guard<'_>> {
        self.get().await.ok()
    }

    async fn open(&self) -> usize {
        self.status().size
    }
}

impl BenchPool for Bb8Pool {
    type Guard<'a> = bb8::PooledConnection<'a, Bb8Nop>;

    async fn acquire(&self) -> Option<Self::Guard<'_>> {
        self.get().await.ok()
    }

    async fn open(&self) -> usize {
        self.state().connections as usize
    }
}

impl BenchPool for MobcPool {
    type Guard<'a> = mobc::Connection<MobcNop>;

    async fn acquire(&self) -> Option<Self::Guard<'_>> {
        self.get().await.ok()
    }

    async fn open(&self) -> usize {
        self.state().await.connections as usize
    }
}

/// lido with its defaults (`Kind::Lido`), without the wait/hold/connect
/// histograms (`LidoNostats`; the counters stay), or without those and leak
/// detection (`LidoBare`).
pub async fn build_lido(kind: Kind, size: usize) -> Result<LidoPool, String> {
    let mut b = lido_core::Pool::builder(LidoNop).max_size(size);
    if matches!(kind, Kind::LidoNostats | Kind::LidoBare) {
        b = b.statistics(false);
    }
    if kind == Kind::LidoBare {
        b = b.leak_threshold(None);
    }
    b.build().await.map_err(|e| format!("lido build: {e}"))
}

pub async fn build_deadpool(size: usize) -> Result<DeadPool, String> {
    deadpool::managed::Pool::builder(DeadpoolNop)
        .max_size(size)
        .build()
        .map_err(|e| format!("deadpool build: {e}"))
}

pub async fn build_bb8(size: usize) -> Result<Bb8Pool, String> {
    let size = u32::try_from(size).map_err(|e| format!("bb8 size: {e}"))?;
    bb8::Pool::builder()
        .max_size(size)
        .build(Bb8Nop)
        .await
        .map_err(|e| format!("bb8 build: {e:?}"))
}

pub async fn build_mobc(size: usize) -> Result<MobcPool, String> {
    let size = size as u64;
    Ok(mobc::Pool::builder()
        .max_open(size)
        .max_idle(size)
        .build(MobcNop))
}

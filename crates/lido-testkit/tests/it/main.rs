//! lido-testkit's integration tests, in one binary: real PostgreSQL servers
//! (alone and as a primary with streaming replicas), pgbouncer and the fault
//! proxy.

mod faults;
mod proxy;
mod replicas;
mod server;

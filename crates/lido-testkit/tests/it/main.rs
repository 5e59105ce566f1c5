//! lido-testkit's integration tests, in one binary: real PostgreSQL servers,
//! pgbouncer and the fault proxy.

mod faults;
mod proxy;
mod server;

//! lido-sqlite's integration tests, in one binary (one link, one place to
//! look). The dev-dependency on lido-sqlite turns the `http` feature on for
//! [`http`].

mod blocking;
mod cache;
mod classes;
mod concurrency;
mod errors;
mod files;
mod health;
mod http;
mod lane;
mod leaks;
mod memory;
mod priority;
mod reads;
mod transactions;

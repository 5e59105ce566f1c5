//! lido-postgres integration tests, one binary: each module is one area and
//! starts its own throwaway PostgreSQL servers through lido-testkit.

mod common;

mod blocking;
mod cache_positions;
mod classes;
mod cluster;
mod dirty;
mod errors;
mod explain;
mod faults;
mod faults_suite;
mod frozen;
mod health;
mod lanes;
mod leaks;
mod pg_metrics;
mod pgbouncer;
mod plan;
mod recovery;
mod result_cache;
mod server_errors;
mod session_attrs;
mod setup;
mod slow_query;
mod slow_table;
mod statement_stats;
mod stmt_cache;
mod tenants;
mod timeouts;
mod tls;
mod tls_hba;
mod tracing_spans;
mod transactions;

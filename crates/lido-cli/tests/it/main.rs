//! lido-cli's integration tests, in one binary: they run the real `lido`
//! binary (SQLite by default, a throwaway PostgreSQL from lido-testkit).

mod advise;
mod advise_setup;
mod advise_slow_table;
mod bench_adaptive;
mod bench_chart;
mod bench_cli;
mod check_plan;
mod cluster_cli;
mod common;
mod dashboard_browser;
mod dashboard_endpoints;
mod dashboard_webdriver;
mod postgres_cli;
mod serve_cli;
mod serve_cluster;

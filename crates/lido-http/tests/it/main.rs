//! lido-http's integration tests, in one binary (one link instead of one per
//! file). The fake manager they drive is `lido_testkit::fake`.

mod common;

mod backend_checks;
mod health_states;
mod http;
mod json_shape;
mod leaks;
mod metrics;

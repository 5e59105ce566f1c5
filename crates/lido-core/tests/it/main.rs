//! lido-core's integration tests, in one binary (one link instead of one per
//! file). The fake manager they drive is `lido_testkit::fake`.

mod adaptive;
mod blocking;
mod cancel;
mod cancel_points;
mod close;
mod config;
mod fairness;
mod faults;
mod lanes;
mod lending;
mod lifecycle;
mod maintenance;
mod proptest_ops;
mod recovery;
mod robustness;
mod smoke;

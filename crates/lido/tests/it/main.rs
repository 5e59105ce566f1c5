//! The `lido` facade's integration tests, in one binary: both backends
//! through the facade's re-exports, against a throwaway PostgreSQL.

mod blocking_backends;
mod http_facade;
